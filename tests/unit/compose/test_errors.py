"""Bad compose files: one message naming file:line and the path in the document."""

from __future__ import annotations

import os

import pytest

from dockyard.compose.errors import ComposeError
from dockyard.compose.model import LoadOptions, load


def _load(tmp_path, text: str, **kw) -> object:
    path = tmp_path / "compose.yaml"
    path.write_text(text)
    return load(LoadOptions(cwd=str(tmp_path), environ=kw.pop("environ", {}), **kw))


def _error(tmp_path, text: str, **kw) -> str:
    with pytest.raises(ComposeError) as info:
        _load(tmp_path, text, **kw)
    message = str(info.value)
    assert "\n" not in message.strip() or "cycle" in message
    return message


def test_unknown_key(tmp_path) -> None:
    msg = _error(tmp_path, "services:\n  web:\n    image: nginx\n    foo: 1\n")
    assert msg == f"{tmp_path}/compose.yaml:4: services.web additional properties 'foo' not allowed"


def test_wrong_type_names_the_item(tmp_path) -> None:
    msg = _error(tmp_path, "services:\n  web:\n    image: nginx\n    ports:\n      - 80\n      - [1]\n")
    assert msg == f"{tmp_path}/compose.yaml:6: services.web.ports[1] must be a number"
    msg = _error(tmp_path, "services:\n  web:\n    image: nginx\n    environment: 5\n")
    assert msg == f"{tmp_path}/compose.yaml:4: services.web.environment must be a mapping"


def test_wrong_scalar_type(tmp_path) -> None:
    msg = _error(tmp_path, "services:\n  web:\n    image: nginx\n    privileged: 3\n")
    assert msg == f"{tmp_path}/compose.yaml:4: services.web.privileged must be a boolean or string"


def test_required_variable(tmp_path) -> None:
    msg = _error(tmp_path, "services:\n  web:\n    image: ${TAG:?set TAG}\n")
    assert msg == f"{tmp_path}/compose.yaml:3: services.web.image: required variable TAG is missing a value: set TAG"


def test_duplicate_key(tmp_path) -> None:
    msg = _error(tmp_path, "services:\n  web:\n    image: a\n    image: b\n")
    assert msg == f'{tmp_path}/compose.yaml:4: services.web: mapping key "image" already defined at line 3'


def test_dependency_cycle(tmp_path) -> None:
    msg = _error(tmp_path, "services:\n  web:\n    image: a\n    depends_on: [db]\n"
                           "  db:\n    image: b\n    depends_on: [web]\n")
    assert msg == f"{tmp_path}/compose.yaml:7: services.db.depends_on: dependency cycle detected: db -> web -> db"


def test_undefined_dependency(tmp_path) -> None:
    msg = _error(tmp_path, "services:\n  web:\n    image: a\n    depends_on: [xx]\n")
    assert msg == f'{tmp_path}/compose.yaml:4: service "web" depends on undefined service "xx"'


def test_no_image_no_build(tmp_path) -> None:
    msg = _error(tmp_path, "services:\n  web:\n    command: x\n")
    assert msg == f'{tmp_path}/compose.yaml:2: service "web" has neither an image nor a build context specified'


def test_invalid_template(tmp_path) -> None:
    msg = _error(tmp_path, "services:\n  web:\n    image: ${X\n")
    assert msg.startswith(f"{tmp_path}/compose.yaml:3: services.web.image: invalid interpolation format")


def test_yaml_syntax_error(tmp_path) -> None:
    msg = _error(tmp_path, "services:\n  web:\n    image: [a\n")
    assert msg.startswith(f"failed to parse {tmp_path}/compose.yaml:")


def test_bad_explicit_project_name(tmp_path) -> None:
    msg = _error(tmp_path, "services:\n  web:\n    image: a\n", project_name="My App")
    assert msg.startswith('invalid project name "My App"')


def test_extends_cycle(tmp_path) -> None:
    msg = _error(tmp_path, "services:\n  a:\n    image: x\n    extends: b\n  b:\n    image: x\n    extends: a\n")
    assert "Circular reference" in msg


def test_no_file_found(tmp_path) -> None:
    with pytest.raises(ComposeError, match="no configuration file provided"):
        load(LoadOptions(cwd=str(tmp_path), environ={}))
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize(
    ("body", "where", "what"),
    [
        ('    ports: ["80:abc"]', "services.web.ports", "invalid port spec '80:abc'"),
        ("    healthcheck: {interval: 5x}", "services.web.healthcheck.interval", 'time: invalid duration "5x"'),
        ("    mem_limit: lots", "services.web.mem_limit", "invalid size: 'lots'"),
        ('    devices: ["a:b:c:d"]', "services.web.devices[0]", "confusing device mapping"),
    ],
)
def test_bad_values_are_placed(tmp_path, body: str, where: str, what: str) -> None:
    msg = _error(tmp_path, f"services:\n  web:\n    image: a\n{body}\n")
    assert msg.startswith(f"{tmp_path}/compose.yaml:4: {where}: {what}")


def test_error_in_an_override_file_names_that_file(tmp_path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: a\n")
    override = tmp_path / "o.yaml"
    override.write_text("services:\n  web:\n    ports: [{}]\n")
    with pytest.raises(ComposeError) as info:
        load(LoadOptions(files=[str(tmp_path / "compose.yaml"), str(override)], environ={}))
    assert str(info.value) == f"{override}:3: service ports services.web.ports[0] is missing a target port"


def test_conflicting_resource_settings(tmp_path) -> None:
    msg = _error(tmp_path, "services:\n  web:\n    image: a\n    scale: 2\n    deploy: {replicas: 3}\n")
    assert msg == f"{tmp_path}/compose.yaml:4: services.web: can't set distinct values on 'scale' and 'deploy.replicas'"
    msg = _error(tmp_path, "services:\n  web:\n    image: a\n    network_mode: host\n    networks: [x]\nnetworks: {x: {}}\n")
    assert msg.endswith("service web declares mutually exclusive `network_mode` and `networks`")


def test_validation_cache_remembers_only_valid_files(tmp_path) -> None:
    cache = tmp_path / "cache"
    project_dir = tmp_path / "p"
    project_dir.mkdir()
    (project_dir / "compose.yaml").write_text("services:\n  web:\n    image: a\n")
    load(LoadOptions(cwd=str(project_dir), environ={}, validation_cache=str(cache)))
    assert len(os.listdir(cache)) == 1
    load(LoadOptions(cwd=str(project_dir), environ={}, validation_cache=str(cache)))
    assert len(os.listdir(cache)) == 1
    (project_dir / "compose.yaml").write_text("services:\n  web:\n    image: a\n    foo: 1\n")
    with pytest.raises(ComposeError, match="additional properties 'foo' not allowed"):
        load(LoadOptions(cwd=str(project_dir), environ={}, validation_cache=str(cache)))
    assert len(os.listdir(cache)) == 1
