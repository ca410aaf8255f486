"""Containers at the OCI runtime boundary: bundles (spec), rootfs mounts, the runtime
adapter (oci) and pyrunc, our own runtime. Kept import-free: pyrunc starts from here."""

RUNTIMES = ("pyrunc", "crun", "runc")  # the OCI runtimes a container may name
