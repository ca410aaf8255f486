"""`make demo` runs the private-registry lab end to end: the demo must keep working."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"


def test_demo_pushes_and_pulls_back(tmp_path: Path) -> None:
    env = dict(os.environ, DOCKYARD_ROOT=str(tmp_path / "root"), DOCKER_CONFIG=str(tmp_path / "docker"))
    result = subprocess.run([sys.executable, str(DEMO)], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Pushed" in out
    assert "Status: Downloaded newer image for 127.0.0.1:" in out
    assert '"repositories": ["busybox"]' in out
    assert '"tags": ["latest"]' in out
    assert "demo finished" in out
