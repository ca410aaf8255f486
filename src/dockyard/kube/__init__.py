"""Kubernetes YAML from containers, pods and compose projects (``kube generate``), and the
same YAML run locally (``kube play``), as podman's ``kube`` commands do."""
