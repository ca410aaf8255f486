"""Discovery, project name, .env, profiles, -f merging (checked against Docker Compose v2)."""

from __future__ import annotations

import io
import os

import pytest

from dockyard.compose.errors import ComposeError
from dockyard.compose.files import normalize_project_name
from dockyard.compose.merge import enforce_unicity, merge
from dockyard.compose.model import LoadOptions, list_images, list_volumes, load, render, service_order


def _write(path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def test_discovery_walks_up_and_prefers_compose_yaml(tmp_path) -> None:
    root = tmp_path / "My_Proj.1"
    _write(root / "docker-compose.yml", "services:\n  old:\n    image: a\n")
    _write(root / "compose.yaml", "services:\n  web:\n    image: a\n")
    _write(root / "compose.override.yaml", "services:\n  web:\n    image: b\n")
    sub = root / "deep" / "er"
    sub.mkdir(parents=True)
    project = load(LoadOptions(cwd=str(sub), environ={}))
    assert project.files == [str(root / "compose.yaml"), str(root / "compose.override.yaml")]
    assert project.working_dir == str(root)
    assert project.name == "my_proj1"
    assert project.services["web"]["image"] == "b"


def test_project_name_precedence(tmp_path) -> None:
    f = _write(tmp_path / "app" / "compose.yaml", "name: fromfile\nservices:\n  web:\n    image: a\n")
    assert load(LoadOptions(files=[f], environ={})).name == "fromfile"
    assert load(LoadOptions(files=[f], environ={"COMPOSE_PROJECT_NAME": "env"})).name == "env"
    assert load(LoadOptions(files=[f], project_name="flag", environ={"COMPOSE_PROJECT_NAME": "env"})).name == "flag"
    assert normalize_project_name("-My Project!") == "myproject"


def test_compose_file_variable_and_stdin(tmp_path) -> None:
    a = _write(tmp_path / "a.yaml", "services:\n  web:\n    image: a\n    ports: ['80:80']\n")
    b = _write(tmp_path / "b.yaml", "services:\n  web:\n    image: b\n")
    project = load(LoadOptions(cwd=str(tmp_path), environ={"COMPOSE_FILE": f"{a}:{b}"}))
    assert project.services["web"]["image"] == "b"
    assert project.services["web"]["ports"][0]["published"] == "80"
    stdin = io.StringIO("services:\n  x:\n    image: busybox\n")
    project = load(LoadOptions(files=["-"], cwd=str(tmp_path), environ={}, stdin=stdin))
    assert list(project.services) == ["x"]


def test_dotenv_and_os_environment_wins(tmp_path) -> None:
    _write(tmp_path / ".env", "TAG=fromfile\nOTHER=o\n")
    _write(tmp_path / "custom.env", "TAG=custom\n")
    f = _write(tmp_path / "compose.yaml", "services:\n  web:\n    image: app:${TAG}-${OTHER:-none}\n")
    assert load(LoadOptions(files=[f], environ={})).services["web"]["image"] == "app:fromfile-o"
    assert load(LoadOptions(files=[f], environ={"TAG": "os"})).services["web"]["image"] == "app:os-o"
    project = load(LoadOptions(files=[f], environ={}, env_files=[str(tmp_path / "custom.env")]))
    assert project.services["web"]["image"] == "app:custom-none"


def test_profiles(tmp_path) -> None:
    f = _write(tmp_path / "compose.yaml", "services:\n  app:\n    image: a\n"
               "  dbg:\n    image: b\n    profiles: [debug]\n    depends_on: [helper]\n"
               "  helper:\n    image: c\n    profiles: [other]\n")
    project = load(LoadOptions(files=[f], environ={}))
    assert sorted(project.services) == ["app"]
    assert sorted(project.disabled) == ["dbg", "helper"]
    assert project.profiles == ["debug", "other"]
    project = load(LoadOptions(files=[f], environ={"COMPOSE_PROFILES": "debug,other"}))
    assert sorted(project.services) == ["app", "dbg", "helper"]
    project = load(LoadOptions(files=[f], environ={}, services_requested=["dbg"]))
    assert sorted(project.services) == ["app", "dbg", "helper"]
    with pytest.raises(ComposeError, match="depends on undefined service"):
        load(LoadOptions(files=[f], environ={}, profiles=["debug"]))


def test_merge_rules_of_the_spec(tmp_path) -> None:
    base = _write(tmp_path / "compose.yaml", """
services:
  web:
    image: a
    command: ["one", "two"]
    environment: [A=1, B=2]
    labels: {l1: x}
    ports: ["80:80", "443:443"]
    expose: ["1"]
    volumes: ["./a:/data", "vol:/other"]
    secrets: [s]
    dns: [1.1.1.1]
    depends_on: [db]
    healthcheck: {test: ["CMD", "a"], interval: 5s}
  db:
    image: d
volumes: {vol: {}}
secrets: {s: {file: ./s}}
""")
    override = _write(tmp_path / "o.yaml", """
services:
  web:
    command: three
    environment: {B: "3", C: "4"}
    labels: [l2=y]
    ports: ["80:80", "8080:8080"]
    expose: ["2", "1"]
    volumes: ["./b:/data"]
    secrets: [{source: s, target: /run/secrets/s, mode: 0440}]
    dns: 8.8.8.8
    depends_on: {db: {condition: service_healthy}}
    healthcheck: {test: ["CMD", "b"]}
""")
    web = load(LoadOptions(files=[base, override], environ={})).services["web"]
    assert web["command"] == ["three"]
    assert web["environment"] == {"A": "1", "B": "3", "C": "4"}
    assert web["labels"] == {"l1": "x", "l2": "y"}
    assert [p["published"] for p in web["ports"]] == ["80", "443", "8080"]
    assert web["expose"] == ["1", "2"]
    assert web["volumes"][0] == {"type": "bind", "source": str(tmp_path / "b"), "target": "/data",
                                 "bind": {"create_host_path": True}}
    assert web["volumes"][1]["source"] == "vol"
    assert web["secrets"] == [{"source": "s", "target": "/run/secrets/s", "mode": "0440"}]
    assert web["dns"] == ["1.1.1.1", "8.8.8.8"]
    assert web["depends_on"] == {"db": {"condition": "service_healthy", "required": True}}
    assert web["healthcheck"] == {"test": ["CMD", "b"], "interval": "5s"}


def test_merge_helpers() -> None:
    merged = merge({"services": {"a": {"networks": ["x"], "tmpfs": "/t"}}},
                   {"services": {"a": {"networks": {"y": {"aliases": ["z"]}}, "tmpfs": ["/u", "/t"]}}})
    merged = enforce_unicity(merged)
    assert merged["services"]["a"]["networks"] == {"x": None, "y": {"aliases": ["z"]}}
    assert merged["services"]["a"]["tmpfs"] == ["/t", "/u"]


def test_include_conflict_is_an_error(tmp_path) -> None:
    _write(tmp_path / "inc" / "compose.yaml", "services:\n  web:\n    image: a\n")
    f = _write(tmp_path / "compose.yaml", "include: [inc/compose.yaml]\nservices:\n  web:\n    image: b\n")
    with pytest.raises(ComposeError, match="services.web conflicts with imported resource"):
        load(LoadOptions(files=[f], environ={}))


def test_helpers_for_config_flags(tmp_path) -> None:
    f = _write(tmp_path / "compose.yaml", "services:\n  web:\n    image: w\n    depends_on: [db, cache]\n"
               "  db:\n    image: d\n    volumes: [data:/x]\n  cache:\n    build: .\n    depends_on: [db]\n"
               "volumes:\n  data: {}\n")
    project = load(LoadOptions(files=[f], project_name="p", environ={}))
    assert service_order(project) == ["db", "cache", "web"]
    assert list_volumes(project) == ["data"]
    assert list_images(project) == ["p-cache", "d", "w"]
    assert project.model["volumes"] == {"data": {"name": "p_data"}}
    assert render(project).startswith("name: p\nservices:\n  cache:\n")
    assert os.path.isabs(project.services["cache"]["build"]["context"])


def test_dotenv_of_the_working_dir_first_and_compose_file_from_it(tmp_path) -> None:
    _write(tmp_path / "compose.yaml", "services:\n  s:\n    image: ${IMG:-unset}\n")
    _write(tmp_path / ".env", "IMG=fromparent\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    assert load(LoadOptions(cwd=str(sub), environ={})).services["s"]["image"] == "fromparent"
    _write(sub / ".env", "IMG=fromsub\n")
    assert load(LoadOptions(cwd=str(sub), environ={})).services["s"]["image"] == "fromsub"
    _write(tmp_path / "other" / "alt.yaml", "services:\n  alt:\n    image: a\n")
    _write(tmp_path / "other" / ".env", "COMPOSE_FILE=alt.yaml\nCOMPOSE_PROJECT_NAME=viaenv\n")
    project = load(LoadOptions(cwd=str(tmp_path / "other"), environ={}))
    assert (project.name, list(project.services)) == ("viaenv", ["alt"])


def test_disabled_services_are_in_canonical_form(tmp_path) -> None:
    f = _write(tmp_path / "compose.yaml", "services:\n  a:\n    image: x\n"
               "  b:\n    image: y\n    profiles: [p]\n    ports: ['80']\n    command: run it\n")
    project = load(LoadOptions(files=[f], environ={}))
    assert project.disabled["b"]["ports"] == [{"mode": "ingress", "target": 80, "protocol": "tcp"}]
    assert project.disabled["b"]["command"] == ["run", "it"]
