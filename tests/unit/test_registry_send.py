"""Range parsing for blob GETs (the one function both the sendfile and the S3 paths use)."""

from __future__ import annotations

import pytest

from dockyard.registry.handlers.send import Unsatisfiable, parse_range


@pytest.mark.parametrize("header,expected", [
    (None, None),
    ("", None),
    ("bytes=0-0", (0, 0)),
    ("bytes=2-5", (2, 5)),
    ("bytes=4-", (4, 9)),
    ("bytes=-3", (7, 9)),
    ("bytes=-30", (0, 9)),  # a suffix longer than the blob is the whole blob
    ("bytes=5-100", (5, 9)),  # an end past the blob is clamped
    ("bytes=1-2,4-5", None),  # several ranges: ignored, the whole blob goes out
    ("items=1-2", None),
    ("bytes=-", None),
])
def test_parse_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 10) == expected


@pytest.mark.parametrize("header", ["bytes=10-", "bytes=10-20", "bytes=5-4"])
def test_unsatisfiable(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, 10)
