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
    assert msg == f"{tmp_path}/compose.yaml:2: services.web additional properties 'foo' not allowed"


def test_wrong_type_names_the_item(tmp_path) -> None:
    msg = _error(tmp_path, "services:\n  web:\n    image: nginx\n    ports:\n      - 80\n      - [1]\n")
    assert msg.startswith(f"{tmp_path}/compose.yaml:6: services.web.ports[1] ")


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
    assert msg == "dependency cycle detected: db -> web -> db"


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
