"""Settings and the insecure-registry rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockyard import config
from dockyard.errors import DockyardError


@pytest.mark.parametrize("host", ["localhost", "localhost:5000", "127.0.0.1:5000", "127.1.2.3", "[::1]:5000"])
def test_loopback_is_insecure_by_default(host: str) -> None:
    assert config.is_insecure_registry(host, [])


@pytest.mark.parametrize("host", ["docker.io", "registry-1.docker.io", "10.0.0.5:5000", "example.com:5000"])
def test_others_need_tls(host: str) -> None:
    assert not config.is_insecure_registry(host, [])


def test_configured_hosts_and_ranges() -> None:
    configured = ["myreg.local:5000", "10.0.0.0/8"]
    assert config.is_insecure_registry("myreg.local:5000", configured)
    assert not config.is_insecure_registry("myreg.local:6000", configured)
    assert config.is_insecure_registry("10.2.3.4:5000", configured)
    assert not config.is_insecure_registry("11.2.3.4:5000", configured)


def test_settings_file_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "settings.json").write_text(json.dumps({"insecure-registries": ["a:1"],
                                                        "max-concurrent-downloads": 5}))
    monkeypatch.setenv("DOCKYARD_INSECURE_REGISTRIES", "b:2, c:3")
    settings = config.load(tmp_path, tmp_path / "run")
    assert settings.insecure_registries == ["a:1", "b:2", "c:3"]
    assert settings.max_concurrent_downloads == 5


def test_broken_settings_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "settings.json").write_text("{not json")
    with pytest.raises(DockyardError, match="settings.json"):
        config.load(tmp_path)
