"""`compose config` of real-world shaped projects compared with Docker Compose v2's output.

Each fixtures/<name>/ holds a project and the output Docker Compose v2.40.3 printed for
it (`config` and `config --format json`, run with the environment below), the project's
absolute directory written as @DIR@.
"""

from __future__ import annotations

import os

import pytest

from dockyard.compose.model import LoadOptions, load, render

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
ENVIRON = {"PATH": "/usr/bin:/bin", "HOME": "/home/user"}
NAMES = sorted(d for d in os.listdir(FIXTURES) if os.path.isfile(os.path.join(FIXTURES, d, "expected.yaml")))


@pytest.fixture(autouse=True)
def _home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", ENVIRON["HOME"])  # `~` in a path expands as it did for v2


def test_fixtures_present() -> None:
    assert len(NAMES) >= 12


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_config_matches_compose_v2(name: str, fmt: str) -> None:
    directory = os.path.join(FIXTURES, name)
    with open(os.path.join(directory, f"expected.{fmt}"), encoding="utf-8") as handle:
        expected = handle.read().replace("@DIR@", directory)
    project = load(LoadOptions(cwd=directory, environ=dict(ENVIRON)))
    assert render(project, fmt).rstrip("\n") == expected.rstrip("\n")
