"""Fixtures of the compose tests: an engine on the test's own root, holding busybox."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from dockyard import config
from dockyard.engine import Engine


@pytest.fixture
def engine(dockyard_root: Path, busybox_tar: Path) -> Iterator[Engine]:
    """An Engine on the test's root with busybox:latest imported (CMD sh); test modules that need
    an empty root define their own."""
    engine = Engine(config.load())
    engine.images.import_(str(busybox_tar), "busybox", ['CMD ["sh"]'])
    try:
        yield engine
    finally:
        engine.close()
