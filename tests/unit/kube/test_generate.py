"""kube generate's conversion from recorded inspect dicts; every document validated against
Kubernetes' OpenAPI schemas (kubernetes-validate, strict, its newest release)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from dockyard.kube import generate as gen
from dockyard.kube.model import dns1123, dump

HERE = Path(__file__).parent
# `dockyard create --name web -p 18080:80 -p 53:53/udp -e A=1 -e FOO=img -v data:/data
#  -v /tmp/kb/bind:/bind:ro -m 64m --cpus 0.5 --cap-add NET_ADMIN --cap-drop MKNOD --read-only -u 1000
#  --restart on-failure:3 --health-cmd true --health-interval 5s --health-retries 2 --health-timeout 3s
#  --health-start-period 1s busybox httpd -f -p 80` on an image with ENV FOO=img, CMD ["sh"]
WEB = json.loads((HERE / "web_inspect.json").read_text())[0]
IMAGE = json.loads((HERE / "busybox_image.json").read_text())[0]["Config"]


def validate(docs: list[dict[str, Any]]) -> None:
    version = kubernetes_validate.latest_version()
    text = dump(docs)
    for doc in yaml.safe_load_all(text):   # what a cluster reads: the YAML, not our dicts
        kubernetes_validate.validate(doc, version, strict=True)


def directory(_path: str) -> str:
    return "Directory"


def generated(members: list[tuple[dict[str, Any], dict[str, Any]]], kind: str = "pod", service: bool = False,
              name: str = "web-pod", replicas: int = 1) -> tuple[list[dict[str, Any]], list[str]]:
    warnings: list[str] = []
    docs = gen.documents([(name, members, replicas)], kind, service, warnings.append, directory)
    validate(docs)
    return docs, warnings


def test_container_fields_as_podman_writes_them() -> None:
    docs, warnings = generated([(WEB, IMAGE)])
    claim, pod = docs
    assert claim["kind"] == "PersistentVolumeClaim" and claim["metadata"]["name"] == "data"
    assert pod["kind"] == "Pod" and pod["metadata"]["name"] == "web-pod"
    spec = pod["spec"]
    assert spec["restartPolicy"] == "OnFailure"
    (c,) = spec["containers"]
    assert c["name"] == "web" and c["image"] == "busybox"
    assert "command" not in c and c["args"] == ["httpd", "-f", "-p", "80"]
    assert c["env"] == [{"name": "A", "value": "1"}]   # FOO=img is the image's own
    assert {"containerPort": 80, "protocol": "TCP", "hostPort": 18080} in c["ports"]
    assert {"containerPort": 53, "protocol": "UDP", "hostPort": 53} in c["ports"]
    assert c["resources"] == {"limits": {"memory": "64Mi", "cpu": "500m"}}
    assert c["securityContext"] == {"capabilities": {"add": ["NET_ADMIN"], "drop": ["MKNOD"]},
                                    "readOnlyRootFilesystem": True, "runAsUser": 1000}
    assert c["livenessProbe"] == {"exec": {"command": ["/bin/sh", "-c", "true"]}, "periodSeconds": 5,
                                  "timeoutSeconds": 3, "failureThreshold": 2, "initialDelaySeconds": 1}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes[mounts["/data"]["name"]]["persistentVolumeClaim"] == {"claimName": "data"}
    assert volumes[mounts["/bind"]["name"]]["hostPath"] == {"path": "/tmp/kb/bind", "type": "Directory"}
    assert mounts["/bind"]["readOnly"] is True and "readOnly" not in mounts["/data"]
    assert warnings == []


def test_deployment_and_service() -> None:
    docs, warnings = generated([(WEB, IMAGE)], kind="deployment", service=True, name="web-pod-deployment")
    _claim, deployment, service = docs
    assert deployment["apiVersion"] == "apps/v1" and deployment["spec"]["replicas"] == 1
    labels = deployment["spec"]["selector"]["matchLabels"]
    assert deployment["spec"]["template"]["metadata"]["labels"] == labels
    assert deployment["spec"]["template"]["spec"]["restartPolicy"] == "Always"   # the one a Deployment takes
    assert service["spec"]["selector"] == labels and service["spec"]["type"] == "NodePort"
    assert {(p["port"], p["protocol"]) for p in service["spec"]["ports"]} == {(80, "TCP"), (53, "UDP")}
    assert all("nodePort" not in p for p in service["spec"]["ports"])   # 18080, 53: outside 30000-32767
    assert any("18080 is outside the NodePort range" in w for w in warnings)


def test_node_port_in_range_and_cluster_ip_without_publish() -> None:
    published = copy.deepcopy(WEB)
    published["HostConfig"]["PortBindings"] = {"80/tcp": [{"HostIp": "", "HostPort": "30080"}]}
    published["Config"]["ExposedPorts"] = {"80/tcp": {}}
    docs, _ = generated([(published, IMAGE)], service=True)
    assert docs[-1]["spec"]["ports"][0]["nodePort"] == 30080
    exposed = copy.deepcopy(published)
    exposed["HostConfig"]["PortBindings"] = {}
    docs, _ = generated([(exposed, IMAGE)], service=True)
    assert docs[-1]["spec"]["type"] == "ClusterIP"
    assert docs[1]["spec"]["containers"][0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]


def test_command_args_against_the_image() -> None:
    same = copy.deepcopy(WEB)
    same["Config"]["Cmd"] = ["sh"]
    same["Config"]["Env"] = ["FOO=img"]
    c = generated([(same, IMAGE)])[0][1]["spec"]["containers"][0]
    assert "command" not in c and "args" not in c and "env" not in c
    entry = copy.deepcopy(WEB)
    entry["Config"]["Entrypoint"] = ["/bin/sh", "-c"]
    entry["Config"]["Cmd"] = ["echo hi"]
    c = generated([(entry, IMAGE)])[0][1]["spec"]["containers"][0]
    assert c["command"] == ["/bin/sh", "-c"] and c["args"] == ["echo hi"]


def test_privileged_capabilities_all_named_user_and_no_health() -> None:
    other = copy.deepcopy(WEB)
    host = other["HostConfig"]
    host.update(Privileged=True, CapAdd=["CAP_SYS_ADMIN", "CHOWN"], CapDrop=["ALL"], ReadonlyRootfs=False,
                RestartPolicy={"Name": "always", "MaximumRetryCount": 0}, Memory=0, NanoCpus=0)
    other["Config"]["User"] = "www-data"
    other["Config"]["Healthcheck"] = {"Test": ["NONE"]}
    (pod,), warnings = [d for d in generated([(other, IMAGE)])[0] if d["kind"] == "Pod"], []
    c = pod["spec"]["containers"][0]
    assert c["securityContext"] == {"capabilities": {"add": ["SYS_ADMIN"], "drop": ["ALL"]}, "privileged": True}
    assert "livenessProbe" not in c and "resources" not in c
    assert pod["spec"]["restartPolicy"] == "Always"
    _docs, warnings = generated([(other, IMAGE)])
    assert any("'www-data' is not numeric" in w for w in warnings)


def test_pod_of_two_members_shares_volumes_and_sanitises_names() -> None:
    second = copy.deepcopy(WEB)
    second["Name"] = "/Side_Car.1"
    second["Id"] = "f" * 64
    second["HostConfig"]["PortBindings"] = {}
    second["Config"]["ExposedPorts"] = {}
    docs, _ = generated([(WEB, IMAGE), (second, IMAGE)], name="My_Pod")
    pod = docs[-1]
    assert pod["metadata"]["name"] == "my-pod"
    assert [c["name"] for c in pod["spec"]["containers"]] == ["web", "side-car-1"]
    assert len(pod["spec"]["volumes"]) == 2   # one claim volume, one hostPath: each source once
    assert [d["kind"] for d in docs].count("PersistentVolumeClaim") == 1


def test_compose_volume_names_keep_their_own_name() -> None:
    compose = copy.deepcopy(WEB)
    compose["Mounts"] = [{"Type": "volume", "Name": "wordpress_db", "Destination": "/var/lib/mysql", "RW": True},
                         {"Type": "volume", "Name": "a" * 64, "Destination": "/anon", "RW": True},
                         {"Type": "tmpfs", "Destination": "/run", "RW": True}]
    docs, _ = generated([(compose, IMAGE)], kind="deployment", name="mariadb", replicas=2)
    claim = docs[0]
    assert claim["metadata"] == {"name": "wordpress-db", "annotations": {gen.VOLUME_NAME: "wordpress_db"}}
    volumes = docs[1]["spec"]["template"]["spec"]["volumes"]
    assert {"persistentVolumeClaim": {"claimName": "wordpress-db"}} in [
        {k: v for k, v in vol.items() if k != "name"} for vol in volumes]
    assert {"emptyDir": {}} in [{k: v for k, v in vol.items() if k != "name"} for vol in volumes]
    assert {"emptyDir": {"medium": "Memory"}} in [{k: v for k, v in vol.items() if k != "name"} for vol in volumes]
    assert docs[1]["spec"]["replicas"] == 2


@pytest.mark.parametrize("name, label", [("web", "web"), ("Wordpress_DB_1", "wordpress-db-1"), ("-x-", "x"),
                                         ("a" * 70, "a" * 63), ("__", "x")])
def test_dns1123(name: str, label: str) -> None:
    assert dns1123(name) == label


def test_a_service_name_starts_with_a_letter() -> None:
    docs, _ = generated([(WEB, IMAGE)], service=True, name="1web")
    assert docs[-1]["metadata"]["name"] == "svc-1web" and docs[-1]["spec"]["selector"] == {"app": "1web"}
