"""Usage errors read and exit as the docker CLI's do (cobra's wording, 125 for a flag error,
1 for a wrong number of arguments or an unknown command). The expected lines are docker
20.10's, recorded with a private dockerd for the same arguments (`docker` replaced by
`dockyard`); tests/integration/test_docker_parity.py checks a live docker too."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CASES = [
    (["run"], 1, '"dockyard run" requires at least 1 argument.\nSee \'dockyard run --help\'.\n\n'
                 "Usage:  dockyard run [OPTIONS] IMAGE [COMMAND] [ARG...]\n"),
    (["exec"], 1, '"dockyard exec" requires at least 2 arguments.\nSee \'dockyard exec --help\'.\n'),
    (["tag", "a"], 1, '"dockyard tag" requires exactly 2 arguments.\nSee \'dockyard tag --help\'.\n'),
    (["ps", "x"], 1, '"dockyard ps" accepts no arguments.\nSee \'dockyard ps --help\'.\n'),
    (["run", "--bogus", "x"], 125, "unknown flag: --bogus\nSee 'dockyard run --help'.\n"),
    (["ps", "--bogus"], 125, "unknown flag: --bogus\nSee 'dockyard ps --help'.\n"),
    (["ps", "--last", "x"], 125,
     'invalid argument "x" for "-n, --last" flag: strconv.ParseInt: parsing "x": invalid syntax\n'
     "See 'dockyard ps --help'.\n"),
    (["stop", "-t", "x", "c"], 125,
     'invalid argument "x" for "-t, --time" flag: strconv.ParseInt: parsing "x": invalid syntax\n'),
    (["stop", "-t"], 125, "flag needs an argument: 't' in -t\nSee 'dockyard stop --help'.\n"),
    (["image", "ls", "--filter"], 125, "flag needs an argument: --filter\nSee 'dockyard image ls --help'.\n"),
    (["frobnicate"], 1, "dockyard: 'frobnicate' is not a dockyard command.\nSee 'dockyard --help'\n"),
    (["image", "frobnicate"], 1, "\nUsage:  dockyard image COMMAND\n\nManage images\n\nCommands:\n"),
]


@pytest.mark.parametrize("args,code,start", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_usage_error_as_docker(args: list[str], code: int, start: str, tmp_path) -> None:  # noqa: ANN001
    env = {**os.environ, "DOCKYARD_ROOT": str(tmp_path / "root"), "DOCKYARD_RUNROOT": str(tmp_path / "run")}
    result = subprocess.run([sys.executable, "-m", "dockyard", *args], env=env, capture_output=True, text=True,
                            timeout=60)
    assert (result.returncode, result.stdout) == (code, "")
    assert result.stderr.startswith(start), result.stderr
    assert "Traceback" not in result.stderr
