"""Helpers shared by the tests, the demo and the benchmarks: test images and test servers.

Nothing here is imported by the engine or the registry server:

- ``images``: rootfs tarballs and OCI layouts
- ``servers``: the process lifecycle every test server shares (``ServerProcess``, ``free_port``)
- ``registry``: CNCF distribution and dockyard's registry as private processes
- ``s3``: moto's S3 server
- ``client``: a small synchronous HTTP client for registry API tests
"""
