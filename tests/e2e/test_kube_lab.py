"""The WordPress lab from compose to Kubernetes YAML and back (issue 17's round trip): the lab
up with ``dockyard compose``, ``kube generate`` from its containers and from its compose project
(every document valid for a current Kubernetes release), ``compose down -v``, ``kube play`` of
the project's YAML: the site answers through Nginx on the published port again, and
``kube play --down`` leaves nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.e2e.conftest import EXAMPLES
from tests.e2e.test_labs import Lab, ok, wait_for_site

pytestmark = pytest.mark.e2e

PROJECT = "wpkube"


def validated(text: str) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    version = kubernetes_validate.latest_version()
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)
    return docs


def test_wordpress_lab_generated_then_played(lab: Lab, http_port: str, tmp_path: Path) -> None:
    compose = ("compose", "-p", PROJECT, "-f", str(EXAMPLES / "wordpress" / "compose.yaml"))
    played = tmp_path / "wordpress.yaml"

    def run(*args: str, timeout: float = 600):  # noqa: ANN202 - a CompletedProcess
        return lab.dockyard(*compose, *args, timeout=timeout, HTTP_PORT=http_port)

    try:
        ok(run("up", "-d", "--wait"))
        assert "WordPress" in wait_for_site(f"http://127.0.0.1:{http_port}/", timeout=180)
        names = ok(lab.dockyard("ps", "--filter", f"label=com.docker.compose.project={PROJECT}",
                                "--format", "{{.Names}}")).split()
        assert len(names) == 3

        # from its containers: one Pod of the three, as podman puts containers named together
        docs = validated(ok(lab.dockyard("kube", "generate", "--service", *sorted(names))))
        assert [d["kind"] for d in docs] == ["PersistentVolumeClaim", "Pod", "Service"]
        assert len(docs[1]["spec"]["containers"]) == 3

        # from its compose project: a Deployment and a Service per service, in dependency order
        text = ok(lab.dockyard("kube", "generate", "--service", "--type", "deployment", PROJECT))
        docs = validated(text)
        assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
            ("PersistentVolumeClaim", f"{PROJECT}-db"),
            ("Deployment", "mariadb"), ("Service", "mariadb"),
            ("Deployment", "wordpress"), ("Service", "wordpress"),
            ("Deployment", "nginx"), ("Service", "nginx")]
        nginx = docs[5]["spec"]["template"]["spec"]["containers"][0]
        assert {"containerPort": 80, "protocol": "TCP", "hostPort": int(http_port)} in nginx["ports"]
        mariadb = docs[1]["spec"]["template"]["spec"]["containers"][0]
        assert mariadb["livenessProbe"]["exec"]["command"][0] == "mysqladmin"
        played.write_text(text)
        ok(run("down", "-v"))

        out = ok(lab.dockyard("kube", "play", str(played), timeout=300))
        assert out.count("Pod:\n") == 3
        page = wait_for_site(f"http://127.0.0.1:{http_port}/", timeout=180)
        assert "WordPress" in page
        assert ok(lab.dockyard("ps", "--format", "{{.Names}}")).split().count("nginx-pod-0-nginx") == 1

        down = ok(lab.dockyard("kube", "play", "--down", str(played)))
        assert sorted(down.split("Pods removed:\n")[1].split()) == ["mariadb-pod-0", "nginx-pod-0",
                                                                     "wordpress-pod-0"]
        assert ok(lab.dockyard("ps", "-aq")) == ""
        assert f"{PROJECT}_db" not in ok(lab.dockyard("volume", "ls", "-q")).split()
        assert "dockyard-kube" not in ok(lab.dockyard("network", "ls", "--format", "{{.Name}}")).split()
    finally:
        if played.exists():
            lab.dockyard("kube", "play", "--down", str(played))
        run("down", "-v")
