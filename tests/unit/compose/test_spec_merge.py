"""The examples of the compose-spec's merge chapter (13-merge.md), as Docker Compose v2 applies them."""

from __future__ import annotations

from dockyard.compose.files import load_yaml
from dockyard.compose.merge import enforce_unicity, merge
from dockyard.compose.model import LoadOptions, load


def _merge(*texts: str) -> dict:
    tree: dict = {}
    for i, text in enumerate(texts):
        tree = enforce_unicity(merge(tree, load_yaml(text, f"f{i}.yaml").data))
    return tree


def test_mapping() -> None:
    tree = _merge("services:\n  foo:\n    key1: value1\n    key2: value2\n",
                  "services:\n  foo:\n    key2: VALUE\n    key3: value3\n")
    assert tree == {"services": {"foo": {"key1": "value1", "key2": "VALUE", "key3": "value3"}}}


def test_sequence() -> None:
    tree = _merge("services:\n  foo:\n    DNS:\n      - 1.1.1.1\n", "services:\n  foo:\n    DNS:\n      - 8.8.8.8\n")
    assert tree["services"]["foo"]["DNS"] == ["1.1.1.1", "8.8.8.8"]


def test_shell_commands_are_replaced() -> None:
    tree = _merge('services:\n  foo:\n    command: ["echo", "foo"]\n', 'services:\n  foo:\n    command: ["echo", "bar"]\n')
    assert tree["services"]["foo"]["command"] == ["echo", "bar"]


def _project(tmp_path, base: str, override: str) -> dict:
    (tmp_path / "compose.yaml").write_text(base)
    (tmp_path / "compose.override.yaml").write_text(override)
    return load(LoadOptions(cwd=str(tmp_path), environ={})).services


def test_unique_resources(tmp_path) -> None:
    services = _project(tmp_path, "services:\n  foo:\n    image: x\n    volumes:\n      - foo:/work\nvolumes: {foo: {}, bar: {}}\n",
                        "services:\n  foo:\n    volumes:\n      - bar:/work\n")
    assert services["foo"]["volumes"] == [{"type": "volume", "source": "bar", "target": "/work", "volume": {}}]


def test_reset_value(tmp_path) -> None:
    services = _project(tmp_path, 'services:\n  app:\n    image: myapp\n    ports:\n      - "8080:80"\n'
                                  "    environment:\n      FOO: BAR\n",
                        "services:\n  app:\n    image: myapp\n    ports: !reset []\n    environment:\n      FOO: !reset null\n")
    assert services["app"] == {"command": None, "entrypoint": None, "image": "myapp", "networks": {"default": None}}


def test_replace_value(tmp_path) -> None:
    services = _project(tmp_path, 'services:\n  app:\n    image: myapp\n    ports:\n      - "8080:80"\n',
                        'services:\n  app:\n    ports: !override\n      - "8443:443"\n')
    assert services["app"]["ports"] == [{"mode": "ingress", "target": 443, "published": "8443", "protocol": "tcp"}]
