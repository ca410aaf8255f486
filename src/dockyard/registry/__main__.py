"""``python -m dockyard.registry [serve|gc] ...`` (``serve`` when no subcommand is given)."""

from __future__ import annotations

import sys


def main() -> None:
    from dockyard.cli.main import main as cli_main

    args = sys.argv[1:]
    if not args or args[0] not in ("serve", "gc", "--help", "-h"):
        args = ["serve", *args]
    # Same error handling as the dockyard CLI: "Error: ..." and an exit code, no traceback.
    from dockyard.cli import main as cli_module

    cli_module.COMMANDS.setdefault("registry", ("dockyard.cli.registry:registry", "Run and manage an OCI registry"))
    cli_main(["registry", *args])


if __name__ == "__main__":
    main()
