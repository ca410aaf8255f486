import sys

from dockyard.runtime.pyrunc.cli import main

sys.exit(main(sys.argv[1:]))
