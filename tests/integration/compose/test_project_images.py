"""ComposeProject's images against a real registry (CNCF distribution on loopback): up pulls a
missing image (pull_policy missing) and not a present one, ``never`` refuses a missing one
before anything starts, pull/push/images, and ``down --rmi all`` removes them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from dockyard import config
from dockyard.compose.project import ComposeProject, ProjectError
from dockyard.engine import Engine
from dockyard.testing.images import push_oci_layout, skopeo

pytestmark = pytest.mark.integration


class StandIn:
    def __init__(self, model: dict[str, Any], working_dir: str) -> None:
        self.name, self.model, self.services = model["name"], model, model["services"]
        self.disabled: dict[str, Any] = {}
        self.working_dir, self.files, self.environment = working_dir, [], {}


@pytest.fixture
def engine(dockyard_root: Path) -> Iterator[Engine]:
    engine = Engine(config.load())
    try:
        yield engine
    finally:
        engine.close()


def test_pull_policy_pull_push_images_and_rmi(engine: Engine, distribution: Any, busybox_layout: Path,
                                              repo_name: str, tmp_path: Path) -> None:
    name = f"{distribution.address}/{repo_name}"
    push_oci_layout(busybox_layout, f"{name}:latest")
    service = {"image": f"{name}:latest", "command": ["sleep", "1000"], "stop_signal": "SIGKILL",
               "networks": {"default": None}}
    model = {"name": "imgs", "services": {"app": service}, "networks": {"default": {"name": "imgs_default"}}}

    never = {**model, "services": {"app": {**service, "pull_policy": "never"}}}
    with pytest.raises(ProjectError, match="not found"):
        ComposeProject(engine, StandIn(never, str(tmp_path))).up()
    assert engine.containers.list(all=True) == [] and engine.images.find(f"{name}:latest") is None

    seen: list[tuple[str, str, str]] = []
    p = ComposeProject(engine, StandIn(model, str(tmp_path)))
    try:
        p.up(progress=lambda *a: seen.append(a))
        assert ("Image", f"{name}:latest", "Pulled") in seen
        assert [r.name for r in p.containers()] == ["imgs-app-1"]
        seen.clear()
        p.up(progress=lambda *a: seen.append(a))
        assert not any(kind == "Image" for kind, _, _ in seen)   # present: not pulled again
        p.pull(progress=lambda *a: seen.append(a))
        assert ("Image", f"{name}:latest", "Pulled") in seen
        rows = p.images()
        assert [(r["Container"], r["Repository"], r["Tag"]) for r in rows] == [("imgs-app-1", name, "latest")]
        assert rows[0]["ImageId"] == engine.images.get(f"{name}:latest").id and rows[0]["Size"] > 0

        # push: what the project builds (build and image), under its image name; the rest skipped
        engine.images.tag(f"{name}:latest", f"{name}-copy:v2")
        pushed = {**model, "services": {"app": service, "copy": {**service, "image": f"{name}-copy:v2",
                                                                  "build": {"context": str(tmp_path)}}}}
        seen.clear()
        ComposeProject(engine, StandIn(pushed, str(tmp_path))).push(progress=lambda *a: seen.append(a))
        assert ("Service", "app", "Skipped") in seen and ("Image", f"{name}-copy:v2", "Pushed") in seen
        out = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{name}-copy:v2")
        assert '"layers"' in out.stdout or '"manifests"' in out.stdout
    finally:
        p.down(rmi="all")
    assert engine.containers.list(all=True) == []
    assert engine.images.find(f"{name}:latest") is None
