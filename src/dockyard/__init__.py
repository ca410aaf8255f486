"""dockyard: a Docker-compatible container engine and OCI image registry."""

__version__ = "0.1.0"
