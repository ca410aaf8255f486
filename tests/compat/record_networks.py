"""Record docker20.10-networks.json (see README.md): needs root, dockerd and the bench's helpers.

    .venv/bin/python tests/compat/record_networks.py
"""
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "src"))
from net import NetDocker, HostNet, sh
from dockyard.testing.images import busybox_rootfs_tar
host = HostNet()
base = Path(tempfile.mkdtemp(prefix="dockyard-rec-"))
d = None
try:
    tar = busybox_rootfs_tar(base / "busybox.tar")
    d = NetDocker(base, tar)
    c = d.cli
    sh(c("network", "create", "--subnet", "10.240.3.0/24", "front"), d.env)
    sh(c("run", "-d", "--name", "db1", "--expose", "3306", "busybox", "sleep", "300"), d.env)
    sh(c("run", "-d", "--name", "web", "-p", "127.0.0.1:18080:80", "--link", "db1:db", "--dns", "1.1.1.1", "--add-host", "x:10.0.0.1", "busybox", "sleep", "300"), d.env)
    sh(c("run", "-d", "--name", "app", "--network", "front", "--network-alias", "appalias", "busybox", "sleep", "300"), d.env)
    out = {}
    out["web"] = json.loads(sh(c("inspect", "web"), d.env))[0]
    out["app"] = json.loads(sh(c("inspect", "app"), d.env))[0]
    out["net_bridge"] = json.loads(sh(c("network", "inspect", "bridge"), d.env))[0]
    out["net_front"] = json.loads(sh(c("network", "inspect", "front"), d.env))[0]
    out["ls"] = sh(c("network", "ls"), d.env)
    out["ps"] = sh(c("ps"), d.env)
    out["port"] = sh(c("port", "web"), d.env)
    out["hosts"] = sh(c("exec", "web", "cat", "/etc/hosts"), d.env)
    out["resolv"] = sh(c("exec", "web", "cat", "/etc/resolv.conf"), d.env)
    out["env"] = sh(c("exec", "web", "env"), d.env)
    out["app_resolv"] = sh(c("exec", "app", "cat", "/etc/resolv.conf"), d.env)
    out = {k: out[k] for k in ("web", "app", "net_bridge", "net_front", "hosts", "env")}
    Path(__file__).with_name("docker20.10-networks.json").write_text(json.dumps(out, indent=1) + "\n")
finally:
    if d is not None:
        sh(d.cli("rm", "-f", "web", "db1", "app"), d.env, check=False)
        sh(d.cli("network", "rm", "front"), d.env, check=False)
        d.close()
    print(host.restore())
    shutil.rmtree(base, ignore_errors=True)
