"""No test, bench, demo or test helper starts ``python``/``python3`` from PATH.

On a fresh machine the interpreter on PATH has no dockyard: only ``sys.executable`` (the
project's virtualenv) does. A bare ``python`` passed here once only because an earlier
session had installed dockyard into the system interpreter."""

from __future__ import annotations

import re
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
SCANNED = ["tests", "bench", "examples", "src/dockyard/testing", "Makefile", ".ci"]

# argv[0] of a command list, the head of a shell string, a shebang, a PATH lookup
PATTERNS = [
    re.compile(r"""\[\s*["'](?:/usr/bin/(?:env\s+)?)?python3?(?:\.\d+)?["']"""),
    re.compile(r"""["'](?:/usr/bin/env\s+)?python3?(?:\.\d+)?\s+(?:-[mcIS]|\S+\.py)"""),
    re.compile(r"^#!.*\bpython", re.MULTILINE),
    re.compile(r"""which\(\s*["']python"""),
]


def _files() -> list[Path]:
    out = []
    for entry in SCANNED:
        path = PROJECT / entry
        if path.is_file():
            out.append(path)
        elif path.is_dir():
            out += [p for p in path.rglob("*") if p.is_file() and p.suffix in (".py", ".sh", "") and "__pycache__" not in p.parts]
    return out


def offending_lines(text: str) -> list[str]:
    return [m.group(0) for pattern in PATTERNS for m in pattern.finditer(text)]


# The samples are assembled, so that this file holds none of what it looks for (a scanner
# of the whole tree, this test's own or another, must not find it here).
PY = "py" + "thon"


def test_patterns_catch_what_broke_ci() -> None:
    assert offending_lines(f'subprocess.run(["{PY}", "-m", "dockyard", "cp"])')
    assert offending_lines(f"#!/usr/bin/env {PY}3\n")
    assert offending_lines(f"os.system('{PY}3 -m dockyard ps')")
    assert offending_lines(f'shutil.which("{PY}3")')
    assert not offending_lines("subprocess.run([sys.executable, '-m', 'dockyard'])")
    assert not offending_lines('".venv/bin/python bench/run.py"')


def test_nothing_starts_python_from_path() -> None:
    found = []
    for path in _files():
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        found += [f"{path.relative_to(PROJECT)}: {hit}" for hit in offending_lines(text)]
    assert not found, "start subprocesses with sys.executable, not python from PATH:\n" + "\n".join(found)
