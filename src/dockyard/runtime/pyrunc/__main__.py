from dockyard.runtime.pyrunc.cli import entry

entry()
