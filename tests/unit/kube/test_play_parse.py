"""kube play's reading of every supported kind into a plan, and the list of what it does not support."""

from __future__ import annotations

import base64

import pytest

from dockyard.kube import play
from dockyard.kube.model import KubeError, load

FILE = """
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {GREETING: hello, index.html: "<h1>kube</h1>"}
---
apiVersion: v1
kind: Secret
metadata: {name: sec}
data: {password: %s}
stringData: {token: abc}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: wordpress-db, annotations: {volume.dockyard.io/name: wordpress_db}}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      hostNetwork: true
      containers:
      - name: httpd
        image: busybox
        command: [httpd, -f]
        args: [-p, "80"]
        envFrom: [{configMapRef: {name: cfg}, prefix: CM_}]
        env:
        - {name: PASSWORD, valueFrom: {secretKeyRef: {name: sec, key: password}}}
        - {name: ONE, valueFrom: {configMapKeyRef: {name: cfg, key: GREETING}}}
        - {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: PLAIN, value: "1"}
        ports: [{containerPort: 80, hostPort: 8080, name: http}]
        resources: {limits: {memory: 64Mi, cpu: 250m}, requests: {cpu: 100m}}
        securityContext: {capabilities: {add: [NET_ADMIN], drop: [MKNOD]}, readOnlyRootFilesystem: true,
                          runAsUser: 1000, runAsGroup: 1000, seLinuxOptions: {level: s0}}
        livenessProbe: {exec: {command: [wget, -q, localhost]}, periodSeconds: 5, timeoutSeconds: 2,
                        failureThreshold: 4, initialDelaySeconds: 3}
        readinessProbe: {httpGet: {path: /, port: 80}}
        volumeMounts:
        - {name: www, mountPath: /www}
        - {name: secret, mountPath: /secret}
        - {name: db, mountPath: /db}
        - {name: host, mountPath: /host, readOnly: true}
        - {name: scratch, mountPath: /scratch}
      volumes:
      - {name: www, configMap: {name: cfg, items: [{key: index.html, path: site/index.html}]}}
      - {name: secret, secret: {secretName: sec}}
      - {name: db, persistentVolumeClaim: {claimName: wordpress-db}}
      - {name: host, hostPath: {path: /srv/data, type: DirectoryOrCreate}}
      - {name: scratch, emptyDir: {}}
---
apiVersion: v1
kind: Service
metadata: {name: web-svc}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: http, nodePort: 30080}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: ing}
""" % base64.b64encode(b"s3cr3t").decode()


def test_every_supported_kind() -> None:
    plan = play.parse(load(FILE, "t"))
    assert plan.config_maps["cfg"] == {"GREETING": b"hello", "index.html": b"<h1>kube</h1>"}
    assert plan.secrets["sec"] == {"password": b"s3cr3t", "token": b"abc"}
    assert plan.claims == {"wordpress-db": "wordpress_db"}
    assert [p.name for p in plan.pods] == ["web-pod-0", "web-pod-1"]
    pod = plan.pods[0]
    assert pod.aliases == ["web-pod-0", "web", "web-svc"]
    (name, body), = pod.containers
    assert name == "httpd"
    assert body["Entrypoint"] == ["httpd", "-f"] and body["Cmd"] == ["-p", "80"]
    env = dict(e.split("=", 1) for e in body["Env"])
    assert env == {"CM_GREETING": "hello", "CM_index.html": "<h1>kube</h1>", "PASSWORD": "s3cr3t",
                   "ONE": "hello", "PLAIN": "1"}
    host = body["HostConfig"]
    assert host["Memory"] == 64 << 20 and host["NanoCpus"] == 250_000_000
    assert host["CapAdd"] == ["NET_ADMIN"] and host["CapDrop"] == ["MKNOD"] and host["ReadonlyRootfs"] is True
    assert body["User"] == "1000:1000"
    assert body["Healthcheck"] == {"Test": ["CMD", "wget", "-q", "localhost"], "Interval": 5_000_000_000,
                                   "Timeout": 2_000_000_000, "Retries": 4, "StartPeriod": 3_000_000_000}
    assert host["RestartPolicy"]["Name"] == "always"
    assert sorted(host["Binds"]) == sorted(["web-pod-0-www:/www:ro", "web-pod-0-secret:/secret:ro",
                                            "wordpress_db:/db", "/srv/data:/host:ro",
                                            "web-pod-0-scratch:/scratch"])
    assert pod.files["www"] == {"site/index.html": b"<h1>kube</h1>"}
    assert pod.files["secret"] == {"password": b"s3cr3t", "token": b"abc"}
    # the container's hostPort, then the Service's node port on the first replica (named targetPort)
    assert pod.publish == [(8080, 80, "tcp", ""), (30080, 80, "tcp", "")]
    assert plan.pods[1].publish == [(8080, 80, "tcp", "")]


def test_unsupported_kinds_and_fields_are_listed() -> None:
    warnings = play.parse(load(FILE, "t")).warnings
    expected = ["kind Ingress (ing) is not supported",
                "Deployment web: spec.template: spec: field hostNetwork is not supported",
                "spec.containers[0].env[2]: field valueFrom.fieldRef is not supported",
                "spec.containers[0].resources.requests: field cpu is not supported",
                "spec.containers[0].securityContext: field seLinuxOptions is not supported",
                "spec.containers[0]: field readinessProbe is not supported",
                "Service web-svc: node port 30080 is published on web-pod-0 only"]
    for text in expected:
        assert any(text in w for w in warnings), (text, warnings)


@pytest.mark.parametrize("text, message", [
    ("kind: Ingress\nmetadata: {name: x}\n", "no Pod or Deployment to run"),
    ("kind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n", "spec.containers is empty"),
    ("kind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a}]}\n", "image is required"),
    ("kind: Pod\nspec: {}\n", "metadata.name is required"),
    ("kind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: b, volumeMounts: "
     "[{name: v, mountPath: /v}]}]}\n", "no volume named 'v'"),
    ("kind: Pod\nmetadata: {name: p}\nspec: {volumes: [{name: v, configMap: {name: nope}}], "
     "containers: [{name: a, image: b}]}\n", "configMap 'nope' is not in the file"),
    ("kind: Pod\nmetadata: {name: p}\nspec: {volumes: [{name: v, nfs: {server: s}}], "
     "containers: [{name: a, image: b}]}\n", "volume source nfs is not supported"),
    ("kind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: b, env: [{name: X, valueFrom: "
     "{secretKeyRef: {name: s, key: k}}}]}]}\n", "Secret 's' is not in the file"),
    ("kind: Secret\nmetadata: {name: s}\ndata: {k: '%%%'}\n", "data.k is not base64"),
    ("kind: ConfigMap\nmetadata: {name: c}\ndata: {k: v}\n---\nkind: Pod\nmetadata: {name: p}\nspec: {volumes: "
     "[{name: v, configMap: {name: c, items: [{key: k, path: ../../etc/x}]}}], containers: [{name: a, image: b}]}\n",
     "path '../../etc/x' must be relative, without '..'"),
    ("a: [", "invalid YAML"),
])
def test_documents_that_cannot_run(text: str, message: str) -> None:
    with pytest.raises(KubeError) as info:
        play.parse(load(text, "t"))
    assert message in info.value.message
    assert info.value.exit_code == 125


def test_what_podman_records_is_read_without_warnings() -> None:
    text = """
apiVersion: v1
kind: Pod
metadata: {name: web-pod, creationTimestamp: "2026-12-05T06:11:44Z", labels: {app: web-pod},
           annotations: {io.podman.annotations.init/web: "FALSE"}}
spec:
  automountServiceAccountToken: false
  enableServiceLinks: false
  containers: [{name: web, image: busybox, command: [httpd, -f]}]
"""
    assert play.parse(load(text, "t")).warnings == []
    warned = play.parse(load(text.replace("enableServiceLinks: false", "enableServiceLinks: true"), "t")).warnings
    assert warned == ["Pod web-pod: spec: field enableServiceLinks is not supported"]
