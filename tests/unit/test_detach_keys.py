"""--detach-keys: Docker's key syntax, and the scanner that finds the sequence in typed input."""

from __future__ import annotations

import pytest

from dockyard.containers.attach import DEFAULT_DETACH_KEYS, _EscapeScanner, parse_detach_keys
from dockyard.errors import DockyardError


def test_parse_docker_key_syntax() -> None:
    assert parse_detach_keys(None) == DEFAULT_DETACH_KEYS == parse_detach_keys("ctrl-p,ctrl-q")
    assert parse_detach_keys("ctrl-x,x") == b"\x18x"
    assert parse_detach_keys("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_") == bytes([0, 27, 28, 29, 30, 31])
    assert parse_detach_keys("CTRL-A,a,Z") == b"\x01aZ"
    for bad in ("ctrl-", "ctrl-1", "ab", "ctrl-p,,q", "", "é"):
        with pytest.raises(DockyardError, match="Invalid detach keys"):
            parse_detach_keys(bad)


def test_scanner_holds_back_only_a_possible_start() -> None:
    scanner = _EscapeScanner(b"\x10\x11")
    assert scanner.feed(b"ls\n") == (b"ls\n", False)
    assert scanner.feed(b"a\x10") == (b"a", False)          # ctrl-p held: it may begin the sequence
    assert scanner.feed(b"b") == (b"\x10b", False)          # it did not: passed on, in order
    assert scanner.feed(b"\x10\x10") == (b"\x10", False)    # the second may still begin it
    assert scanner.feed(b"\x11rest") == (b"", True)
    split = _EscapeScanner(b"\x18x")
    assert split.feed(b"q\x18") == (b"q", False) and split.feed(b"x") == (b"", True)
