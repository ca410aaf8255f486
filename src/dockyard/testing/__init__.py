"""Helpers shared by the tests, the demo and the benchmarks: test images and test servers.

Nothing here is imported by the engine itself; ``dockyard.testing.images`` builds
rootfs tarballs and OCI layouts, ``dockyard.testing.registry`` runs the CNCF
distribution registry as an interop peer.
"""
