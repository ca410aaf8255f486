"""pyrunc: a runc-compatible OCI runtime in Python (``python -m dockyard.runtime.pyrunc``).

Only the standard library's os, ctypes and C-level modules are imported on the hot
path: every millisecond of start-up is paid by each ``run`` and ``exec``.
"""
