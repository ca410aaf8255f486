"""dockyard.records.record behaves as dataclasses.dataclass for the subset it supports."""

from __future__ import annotations

import dataclasses

import pytest

from dockyard.records import field, record, replace


def _pair(frozen: bool):  # noqa: ANN202
    """The same class body under @record and under @dataclass."""

    def body(decorate, field):  # noqa: ANN001, ANN202
        @decorate
        class Point:
            x: int
            y: int = 0
            tags: list = field(default_factory=list)
            note: str = field(default="", repr=False)

            @property
            def norm(self) -> int:
                return abs(self.x) + abs(self.y)

        return Point

    return body(record(frozen=frozen), field), body(dataclasses.dataclass(frozen=frozen), dataclasses.field)


@pytest.mark.parametrize("frozen", [False, True])
def test_same_init_repr_eq_as_dataclass(frozen: bool) -> None:
    ours, theirs = _pair(frozen)
    for args, kwargs in [((1,), {}), ((1, 2), {}), ((), {"x": 3, "tags": ["a"]}), ((1, 2, [3], "n"), {})]:
        a, b = ours(*args, **kwargs), theirs(*args, **kwargs)
        assert repr(a).replace("Point", "") == repr(b).replace("Point", "")
        assert (a.x, a.y, a.tags, a.note, a.norm) == (b.x, b.y, b.tags, b.note, b.norm)
    assert ours(1) == ours(1) and ours(1) != ours(2)
    assert ours(1).tags is not ours(1).tags            # a fresh list per instance
    for bad_args, bad_kwargs in [((), {}), ((1, 2, 3, 4, 5), {}), ((1,), {"x": 2}), ((1,), {"z": 1})]:
        with pytest.raises(TypeError):
            ours(*bad_args, **bad_kwargs)
        with pytest.raises(TypeError):
            theirs(*bad_args, **bad_kwargs)


def test_frozen_is_hashable_and_immutable() -> None:
    ours, _ = _pair(frozen=True)
    p = ours(1, 2, ())
    assert hash(p) == hash(ours(1, 2, ()))
    assert {p, ours(1, 2, ())} == {p}
    with pytest.raises(AttributeError):
        p.x = 5
    assert replace(p, y=7) == ours(1, 7, ())
    assert p.y == 2


def test_mutable_is_unhashable_and_settable() -> None:
    ours, _ = _pair(frozen=False)
    p = ours(1)
    p.y = 4
    assert p.norm == 5
    with pytest.raises(TypeError):
        hash(p)
