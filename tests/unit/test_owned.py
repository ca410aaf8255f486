"""Temp objects tied to their owner's flock, and the image lease (store/owned.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dockyard.store.owned import TempArea, collecting, image_lease


def die_holding(script: str) -> None:
    """Run ``script`` in a child until it prints 'ready', then SIGKILL it."""
    proc = subprocess.Popen([sys.executable, "-c", script + "\nprint('ready', flush=True)\nimport time; time.sleep(60)\n"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
    finally:
        proc.kill()
        proc.wait()


def area_in(tmp_path: Path) -> TempArea:
    return TempArea(str(tmp_path / "tmp"), str(tmp_path / "locks" / "tmp"), "staging")


def test_dead_owners_objects_are_leftovers_live_ones_are_not(tmp_path: Path) -> None:
    setup = (f"from dockyard.store.owned import TempArea\n"
             f"a = TempArea({str(tmp_path / 'tmp')!r}, {str(tmp_path / 'locks' / 'tmp')!r})\n")
    die_holding(setup + "cm = a.new_dir('load-'); d = cm.__enter__()\nopen(d + '/f', 'wb').write(b'x' * 300)\n"
                 "fd, p = a.create_file('import-')\nos = __import__('os'); os.write(fd, b'y' * 50)\n")
    area = area_in(tmp_path)
    with area.new_dir("live-") as live:
        Path(live, "g").write_bytes(b"z" * 10)
        found = sorted((os.path.basename(i.path)[:5], i.size, i.kind) for i in area.leftovers())
        assert found == [("impor", 50, "staging"), ("load-", 300, "staging")]
        assert sorted(os.path.basename(i.path)[:5] for i in area.reclaim()) == ["impor", "load-"]
        assert [os.path.basename(p)[:5] for p in os.listdir(area.directory)] == ["live-"]
    assert os.listdir(area.directory) == []  # the live one went when its owner finished


def test_reclaim_spares_what_keep_says(tmp_path: Path) -> None:
    setup = (f"from dockyard.store.owned import TempArea\n"
             f"a = TempArea({str(tmp_path / 'tmp')!r}, {str(tmp_path / 'locks' / 'tmp')!r})\n")
    die_holding(setup + "a.create_file('a-'); a.create_file('b-')\n")
    area = area_in(tmp_path)
    removed = area.reclaim(keep=lambda item: os.path.basename(item.path).startswith("a-"))
    assert [os.path.basename(i.path)[:2] for i in removed] == ["b-"]
    assert [p[:2] for p in os.listdir(area.directory)] == ["a-"]


def test_open_named_refuses_a_live_owners_file_and_takes_a_dead_ones(tmp_path: Path) -> None:
    area = area_in(tmp_path)
    fd = area.open_named("sha256-x")
    assert fd is not None
    os.write(fd, b"partial")
    assert area.open_named("sha256-x") is None  # held by a live owner (this process, another fd)
    os.close(fd)  # the owner is gone: the file stays, for the next one to take over
    again = area.open_named("sha256-x")
    assert again is not None and os.read(again, 100) == b"partial"
    os.close(again)


def test_collecting_waits_for_no_image_operation(tmp_path: Path) -> None:
    script = (f"from dockyard.store.owned import image_lease\n"
              f"lease = image_lease({str(tmp_path)!r}); lease.__enter__()\n"
              "print('ready', flush=True)\nimport sys; sys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        with collecting(tmp_path) as free:
            assert free is False  # a pull (here: the child) is alive
        with image_lease(tmp_path):  # two operations share the lease
            pass
    finally:
        proc.kill()
        proc.wait()
    with collecting(tmp_path) as free:
        assert free is True


def test_a_create_in_progress_is_not_an_orphan_a_dead_one_is(tmp_path: Path) -> None:
    """A container's or volume's dir is held from its mkdir until its row is written: a
    collector of row-less dirs skips it while the creator lives, and finds it once it died."""
    from dockyard.store.owned import recording_dir, unrecorded_dirs

    base = tmp_path / "containers"
    base.mkdir()
    (base / "recorded").mkdir()
    recorded = {"recorded"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from dockyard.store.owned import recording_dir\n"
         f"cm = recording_dir({str(tmp_path)!r}, {str(base / 'creating')!r}); cm.__enter__()\n"
         "print('ready', flush=True)\nimport time; time.sleep(60)\n"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert unrecorded_dirs(tmp_path, str(base), recorded.__contains__) == []  # its row may come yet
    finally:
        proc.kill()
        proc.wait()
    assert unrecorded_dirs(tmp_path, str(base), recorded.__contains__) == [str(base / "creating")]
    with recording_dir(tmp_path, str(base / "mine")):
        recorded.add("mine")  # the row, written while the dir is held
    assert unrecorded_dirs(tmp_path, str(base), recorded.__contains__) == [str(base / "creating")]
