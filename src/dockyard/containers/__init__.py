"""Containers: records (store), names and IDs, the lifecycle (manager), the per-container
monitor (shim), json-file logs, attach."""
