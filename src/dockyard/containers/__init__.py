"""Containers: records (store), names and IDs, the lifecycle (manager), the per-container
monitor (shim), json-file logs, attach."""

DEVNULL = -3  # subprocess.DEVNULL, for exec's stdio, without importing subprocess on its path
