"""``kube generate`` and ``kube play`` on busybox: generated YAML validates against Kubernetes'
schemas; a played file's env, files and published port are what the YAML says; ``--down``
leaves nothing; ``--replace``; what is not supported is listed; a failed play leaves nothing."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

import kubernetes_validate
import pytest
import yaml

from dockyard.testing.registry import free_port

pytestmark = pytest.mark.integration

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def dy(run_cli: Run, busybox_tar: Path) -> Run:
    run_cli("import", "-c", 'CMD ["sh"]', "-c", "ENV FOO=img", str(busybox_tar), "busybox", check=True)
    return run_cli


def validated(text: str) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    version = kubernetes_validate.latest_version()
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)
    return docs


def get(url: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def leftovers(dy: Run) -> tuple[str, str, list[str]]:
    containers = dy("ps", "-aq", check=True).stdout.strip()
    volumes = dy("volume", "ls", "-q", check=True).stdout.strip()
    networks = dy("network", "ls", "--format", "{{.Name}}", check=True).stdout.split()
    return containers, volumes, sorted(set(networks) - {"bridge", "host", "none"})


def test_generate_from_a_container_validates(dy: Run, tmp_path: Path) -> None:
    bind = tmp_path / "bind"
    bind.mkdir()
    port = free_port()
    dy("create", "--name", "web", "-p", f"{port}:80", "-e", "A=1", "-v", "data:/data", "-v", f"{bind}:/bind:ro",
       "-m", "64m", "--cpus", "0.5", "--cap-add", "NET_ADMIN", "--cap-drop", "MKNOD", "--read-only", "-u", "1000",
       "--restart", "on-failure:3", "--health-cmd", "wget -q localhost", "--health-interval", "5s",
       "busybox", "httpd", "-f", "-p", "80", check=True)
    pod_yaml = dy("kube", "generate", "-s", "web", check=True)
    claim, pod, service = validated(pod_yaml.stdout)
    assert (claim["kind"], pod["kind"], service["kind"]) == ("PersistentVolumeClaim", "Pod", "Service")
    c = pod["spec"]["containers"][0]
    assert c["args"] == ["httpd", "-f", "-p", "80"] and c["env"] == [{"name": "A", "value": "1"}]
    assert c["ports"] == [{"containerPort": 80, "protocol": "TCP", "hostPort": port}]
    assert c["resources"]["limits"] == {"memory": "64Mi", "cpu": "500m"}
    assert c["securityContext"]["capabilities"] == {"add": ["NET_ADMIN"], "drop": ["MKNOD"]}
    assert c["securityContext"]["runAsUser"] == 1000 and c["securityContext"]["readOnlyRootFilesystem"]
    assert c["livenessProbe"]["exec"]["command"] == ["/bin/sh", "-c", "wget -q localhost"]
    assert pod["spec"]["restartPolicy"] == "OnFailure"
    assert {"name": "data-pvc", "persistentVolumeClaim": {"claimName": "data"}} in pod["spec"]["volumes"]
    assert any(v.get("hostPath") == {"path": str(bind), "type": "Directory"} for v in pod["spec"]["volumes"])
    assert service["spec"]["type"] == "NodePort"
    out = tmp_path / "web.yaml"
    deployment = dy("kube", "generate", "--type", "deployment", "-f", str(out), "web", check=True)
    assert deployment.stdout == ""
    kinds = [d["kind"] for d in validated(out.read_text())]
    assert kinds == ["PersistentVolumeClaim", "Deployment"]
    missing = dy("kube", "generate", "nope")
    assert missing.returncode == 125 and missing.stderr.startswith("Error: nope: no such container")


def play_file(tmp_path: Path, port: int, node_port: int) -> Path:
    text = f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: site}}
data:
  GREETING: hello from a configmap
  index.html: "<h1>played</h1>"
---
apiVersion: v1
kind: Secret
metadata: {{name: creds}}
data: {{password: {base64.b64encode(b"s3cr3t").decode()}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: kube-test-store}}
spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: web, labels: {{app: web}}}}
spec:
  containers:
  - name: httpd
    image: busybox
    command: [httpd, -f, -p, "80", -h, /www]
    envFrom: [{{configMapRef: {{name: site}}}}]
    env:
    - {{name: PASSWORD, valueFrom: {{secretKeyRef: {{name: creds, key: password}}}}}}
    ports: [{{containerPort: 80, hostPort: {port}}}]
    volumeMounts:
    - {{name: www, mountPath: /www}}
    - {{name: creds, mountPath: /creds}}
    - {{name: store, mountPath: /store}}
  - name: side
    image: busybox
    command: [sleep, "600"]
    volumeMounts: [{{name: store, mountPath: /store}}, {{name: scratch, mountPath: /scratch}}]
  volumes:
  - {{name: www, configMap: {{name: site, items: [{{key: index.html, path: index.html}}]}}}}
  - {{name: creds, secret: {{secretName: creds}}}}
  - {{name: store, persistentVolumeClaim: {{claimName: kube-test-store}}}}
  - {{name: scratch, emptyDir: {{}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: websvc}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 80, nodePort: {node_port}}}]
"""
    path = tmp_path / "play.yaml"
    path.write_text(text)
    return path


def test_play_pod_configmap_secret_claim_service_and_down(dy: Run, tmp_path: Path) -> None:
    port, node_port = free_port(), free_port()
    path = play_file(tmp_path, port, node_port)
    played = dy("kube", "play", str(path), check=True)
    lines = played.stdout.split()
    assert lines[0] == "Pod:" and lines[2] == "Containers:" and len(lines) == 5
    assert json.loads(dy("pod", "inspect", "web", check=True).stdout)["Id"] == lines[1]
    assert dy("exec", "web-httpd", "sh", "-c", "echo $GREETING/$PASSWORD", check=True).stdout == \
        "hello from a configmap/s3cr3t\n"
    assert dy("exec", "web-httpd", "cat", "/www/index.html", "/creds/password", check=True).stdout == \
        "<h1>played</h1>s3cr3t"
    assert get(f"http://127.0.0.1:{port}/") == "<h1>played</h1>"
    assert get(f"http://127.0.0.1:{node_port}/") == "<h1>played</h1>"   # the Service's node port
    # one pod: the members share localhost and the claim
    assert dy("exec", "web-side", "wget", "-qO-", "http://localhost:80/", check=True).stdout == "<h1>played</h1>"
    dy("exec", "web-side", "sh", "-c", "echo kept > /store/f", check=True)
    assert dy("exec", "web-httpd", "cat", "/store/f", check=True).stdout == "kept\n"
    inspect = json.loads(dy("inspect", "web-httpd", check=True).stdout)[0]
    assert inspect["Config"]["Labels"]["io.dockyard.kube.file"] == str(path)
    again = dy("kube", "play", str(path))
    assert again.returncode == 125 and "--replace" in again.stderr
    down = dy("kube", "play", "--down", str(path), check=True)
    assert down.stdout == "Pods stopped:\nweb\nPods removed:\nweb\n"
    assert leftovers(dy) == ("", "", [])


def test_replace_and_kube_down(dy: Run, tmp_path: Path) -> None:
    path = play_file(tmp_path, free_port(), free_port())
    first = dy("kube", "play", "--no-start", str(path), check=True).stdout.split()[3]
    state = json.loads(dy("inspect", first, check=True).stdout)[0]["State"]["Status"]
    assert state == "created"
    second = dy("kube", "play", "--replace", str(path), check=True).stdout.split()[3]
    assert second != first
    assert json.loads(dy("inspect", second, check=True).stdout)[0]["State"]["Running"] is True
    ids = dy("ps", "-aq", "--no-trunc", check=True).stdout.split()
    assert len(ids) == 3 and second in ids and first not in ids   # the pod's infra and its two members
    dy("kube", "down", str(path), check=True)
    assert leftovers(dy) == ("", "", [])


def test_unsupported_kinds_and_fields_are_listed(dy: Run, tmp_path: Path) -> None:
    text = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: ing}
---
apiVersion: v1
kind: Pod
metadata: {name: odd}
spec:
  hostNetwork: true
  containers:
  - name: main
    image: busybox
    command: [sleep, "600"]
    readinessProbe: {exec: {command: ["true"]}}
"""
    played = dy("kube", "play", "-", input=text, check=True)
    assert "Warning: kind Ingress (ing) is not supported\n" in played.stderr
    assert "Warning: Pod odd: spec: field hostNetwork is not supported\n" in played.stderr
    assert "Warning: Pod odd: spec.containers[0]: field readinessProbe is not supported\n" in played.stderr
    dy("kube", "down", "-", input=text, check=True)
    only = dy("kube", "play", "-", input=text.split("---")[0])
    assert only.returncode == 125
    assert only.stderr == ("Warning: kind Ingress (ing) is not supported\n"
                           "Error: the file has no Pod or Deployment to run\n")
    assert leftovers(dy) == ("", "", [])


def test_a_failed_play_leaves_nothing(dy: Run, tmp_path: Path) -> None:
    text = """
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {a: b}
---
apiVersion: v1
kind: Pod
metadata: {name: first}
spec:
  volumes: [{name: c, configMap: {name: cfg}}, {name: s, emptyDir: {}}]
  containers: [{name: main, image: busybox, command: [sleep, "600"], volumeMounts: [{name: c, mountPath: /c}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: second}
spec:
  volumes: [{name: h, hostPath: {path: %s, type: Directory}}]
  containers: [{name: main, image: busybox, volumeMounts: [{name: h, mountPath: /h}]}]
""" % (tmp_path / "missing")
    failed = dy("kube", "play", "-", input=text)
    assert failed.returncode == 125
    assert failed.stderr == f"Error: pod second: hostPath {tmp_path / 'missing'} does not exist\n"
    assert leftovers(dy) == ("", "", [])


def test_round_trip_of_a_container(dy: Run, tmp_path: Path) -> None:
    """generate a running container's YAML, remove it, play the YAML: it answers again; down."""
    port = free_port()
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("round trip\n")
    dy("run", "-d", "--name", "site", "-p", f"{port}:80", "-v", f"{www}:/www:ro", "-e", "MSG=hi",
       "busybox", "httpd", "-f", "-p", "80", "-h", "/www", check=True)
    assert get(f"http://127.0.0.1:{port}/") == "round trip\n"
    generated = dy("kube", "generate", "--service", "site", check=True).stdout
    validated(generated)
    path = tmp_path / "site.yaml"
    path.write_text(generated)
    dy("rm", "-f", "site", check=True)
    assert dy("kube", "play", "--down", str(path), check=True).stdout == ""   # nothing of it was running
    dy("kube", "play", str(path), check=True)
    assert get(f"http://127.0.0.1:{port}/") == "round trip\n"
    assert dy("exec", "site-pod-site", "sh", "-c", "echo $MSG", check=True).stdout == "hi\n"
    dy("kube", "play", "--down", str(path), check=True)
    assert leftovers(dy) == ("", "", [])


def test_round_trip_of_a_pod(dy: Run, tmp_path: Path) -> None:
    """generate a pod's YAML (its published port on its member), remove the pod, play the YAML:
    the site answers again from a pod of that name; down removes it."""
    port = free_port()
    dy("pod", "create", "--name", "rt", "-p", f"{port}:80", check=True)
    dy("run", "-d", "--pod", "rt", "--name", "rt-web", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc",
       check=True)
    assert "root:" in get(f"http://127.0.0.1:{port}/passwd")
    generated = dy("kube", "generate", "rt", check=True).stdout
    (pod,) = validated(generated)
    assert pod["metadata"]["name"] == "rt"
    (c,) = pod["spec"]["containers"]
    assert c["name"] == "rt-web" and {"containerPort": 80, "protocol": "TCP", "hostPort": port} in c["ports"]
    path = tmp_path / "rt.yaml"
    path.write_text(generated)
    dy("pod", "rm", "-f", "rt", check=True)
    dy("kube", "play", str(path), check=True)
    assert "root:" in get(f"http://127.0.0.1:{port}/passwd")
    assert dy("pod", "ps", "--format", "{{.Name}}", check=True).stdout.split() == ["rt"]
    dy("kube", "play", "--down", str(path), check=True)
    assert leftovers(dy) == ("", "", [])
    assert dy("pod", "ps", "-q", check=True).stdout == ""


def test_both_cli_paths_print_the_same(dy: Run, tmp_path: Path) -> None:
    """``kube play`` and ``kube down`` run on the click-free fast path (cli/fastviews.py);
    click's path (DOCKYARD_NO_FASTPATH) prints and exits the same, warnings, errors and all."""
    import re

    text = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: ing}
---
apiVersion: v1
kind: Pod
metadata: {name: same}
spec:
  containers: [{name: main, image: busybox, command: [sleep, "600"], readinessProbe: {exec: {command: ["true"]}}}]
"""
    (tmp_path / "pod.yaml").write_text(text)
    slow = {"DOCKYARD_NO_FASTPATH": "1"}

    def both(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        results = []
        for env in (None, slow):
            if args[1] == "down" and "nosuch" not in args[-1]:   # something to take down
                dy("kube", "play", "--no-start", args[-1], check=True)
            results.append(dy(*args, input=input, env=env))
            if args[1] == "play" and results[-1].returncode == 0:
                dy("kube", "down", args[-1], input=input, check=True)
        fast, clicked = results
        ids = re.compile(r"\b[0-9a-f]{64}\b")
        seen = [(r.returncode, ids.sub("ID", r.stdout), r.stderr) for r in (fast, clicked)]
        assert seen[0] == seen[1], seen
        return fast

    played = both("kube", "play", "--no-start", str(tmp_path / "pod.yaml"))
    assert played.returncode == 0 and played.stdout.startswith("Pod:\n") and played.stdout.endswith("\n\n")
    assert "Warning: kind Ingress (ing) is not supported\n" in played.stderr
    down = both("kube", "down", str(tmp_path / "pod.yaml"))
    assert down.stdout == "Pods stopped:\nsame\nPods removed:\nsame\n"
    assert both("kube", "play", "-", input=text.split("---")[0]).returncode == 125
    assert both("kube", "play", str(tmp_path / "nosuch.yaml")).returncode == 125
    assert both("kube", "down", str(tmp_path / "nosuch.yaml")).returncode == 125
    assert leftovers(dy) == ("", "", [])


def test_a_node_port_service_without_a_node_port_gets_one_of_the_range(dy: Run, tmp_path: Path) -> None:
    """As a cluster does: a NodePort Service port without ``nodePort`` is published on a free
    port of 30000-32767, which ``port`` shows and which answers."""
    text = """
apiVersion: v1
kind: Pod
metadata: {name: auto, labels: {app: auto}}
spec:
  containers: [{name: httpd, image: busybox, command: [sh, -c, "echo auto > /i.html; httpd -f -p 8080 -h /"],
                ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: autosvc}
spec:
  type: NodePort
  selector: {app: auto}
  ports: [{port: 80, targetPort: 8080}]
"""
    played = dy("kube", "play", "-", input=text, check=True)
    assert "nodePort" not in played.stderr
    infra = json.loads(dy("pod", "inspect", "auto", check=True).stdout)["InfraContainerID"]
    mapping = dy("port", infra, "8080/tcp", check=True).stdout.split()
    host_port = int(mapping[0].rsplit(":", 1)[1])
    assert 30000 <= host_port <= 32767
    assert get(f"http://127.0.0.1:{host_port}/i.html") == "auto\n"
    dy("kube", "down", "-", input=text, check=True)
    assert leftovers(dy) == ("", "", [])
