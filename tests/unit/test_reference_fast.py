"""The regex-free checks behind ``dockyard images`` (issue 14: as quick as ``podman images``).

``reference.py`` checks the usual tags, path components and domains with string methods and
leaves the rest to the grammar's regular expressions; ``images.service`` reads the usual
timestamps and ID prefixes without ``re``; ``config`` loads ``json`` only for a settings
file. Each fast check may only accept what the full one accepts, and gives the same answer:
that is what these tests hold, on tables and on generated input."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dockyard import reference
from dockyard.errors import DockyardError
from dockyard.images import service
from dockyard.timefmt import parse_timestamp

pytestmark = pytest.mark.unit

TAG = re.compile(reference._TAG_RE)
COMPONENT = re.compile(reference._COMPONENT_RE)
DOMAIN = re.compile(reference._DOMAIN_RE)
H256 = "sha256:" + "0123456789abcdef" * 4

# Characters that matter to the grammar, a few that are wrong everywhere, and non-ASCII
# look-alikes (a Unicode digit, a dotless i) that str methods might take for ASCII.
GRAMMAR = "abcz09AZ._-:/@[]" + " \n+Ａ١ı"
pieces = st.text(alphabet=GRAMMAR, max_size=20)

COMMON = [
    "busybox", "busybox:latest", "nginx:1.25-alpine", "docker.io/library/nginx:latest", "user/app:v1",
    "registry.example.com:5000/team/app1:1.1", "localhost:5000/a/b/c:v", "127.0.0.1:5000/x:y",
    "my-registry.local/my_app__x.y---z:T_1.2-3", "ghcr.io/owner/repo", f"nginx@{H256}", f"a/b:c@{H256}",
    "Example.COM/app", "x:" + "T" * 128, "a" * 200,
]
UNUSUAL = ["[::1]:5000/nginx", "[2001:db8::1]/a:b", "nginx:", "nginx:-x", "Nginx", "a//b", "a/-b", "a/b_", "a..b",
           "a___b", "exa_mple.com/a", "-bad.com/a", "bad-.com/a", "x:" + "T" * 129, "a:b:c", "nginx@sha256:abc",
           f"nginx@sha512:{'0f' * 64}", "a" * 64, "0" * 64, "a/" + "b" * 260, "", "@", ":", "/", "a:1/b",
           "host:/a", "host:12a/a", "host:١/a", "ıo/a", "a b"]


def _result(value: str) -> tuple[str, ...]:
    try:
        ref = reference.parse(value)
    except DockyardError as e:
        return ("error", e.message)
    return (ref.domain, ref.path, str(ref.tag), str(ref.digest), ref.familiar())


@given(pieces)
@example("a__b")
@example("a.-b")
@example("a-_b")
@example("a--b")
@example("a___b")
@example("_a")
@example("9")
@settings(max_examples=400)
def test_fast_component_equals_the_regex(text: str) -> None:
    assert reference._fast_component(text) == bool(COMPONENT.fullmatch(text))


@given(pieces | st.text(alphabet="aZ9_.-", min_size=120, max_size=135))
@settings(max_examples=400)
def test_fast_tag_equals_the_regex(text: str) -> None:
    assert reference._fast_tag(text) == bool(TAG.fullmatch(text))


@given(pieces)
@example("a-b.c:5000")
@example("a:")
@example("a:0")
@example("[::1]:1")
@example("a.-b")
@example("a..b")
@settings(max_examples=400)
def test_fast_domain_accepts_only_what_the_regex_accepts(text: str) -> None:
    if reference._fast_domain(text):
        assert DOMAIN.fullmatch(text)


def test_fast_domain_takes_the_usual_hosts() -> None:
    for host in ("docker.io", "localhost:5000", "127.0.0.1:5000", "Example.COM", "a-b.c-d.e:1"):
        assert reference._fast_domain(host), host
    assert not reference._fast_domain("[::1]:5000")   # left to the regex, which takes it
    assert reference._domain_ok("[::1]:5000")


@pytest.mark.parametrize("value", COMMON + UNUSUAL)
def test_parse_equals_the_full_grammar_on_tables(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = _result(value)
    for name in ("_fast_tag", "_fast_component", "_fast_domain"):
        monkeypatch.setattr(reference, name, lambda _text: False)
    assert fast == _result(value)


reference_like = st.builds(
    lambda domain, path, tag, digest: domain + path + tag + digest,
    st.sampled_from(["", "docker.io/", "localhost:5000/", "a.b/", "[::1]/", "Up/", "x_y.z/"]) | pieces.map(lambda t: t + "/"),
    st.lists(pieces, min_size=1, max_size=3).map("/".join),
    st.sampled_from(["", ":latest", ":v1.2-rc_3", ":", ":.x"]) | pieces.map(lambda t: ":" + t),
    st.sampled_from(["", "@" + H256, "@sha256:xyz", "@" + H256.upper()]),
) | st.text(alphabet=GRAMMAR, max_size=40)


@given(reference_like)
@settings(max_examples=500)
def test_parse_equals_the_full_grammar_on_generated_input(value: str) -> None:
    fast = _result(value)
    saved = {n: getattr(reference, n) for n in ("_fast_tag", "_fast_component", "_fast_domain")}
    try:
        for name in saved:
            setattr(reference, name, lambda _text: False)
        full = _result(value)
    finally:
        for name, fn in saved.items():
            setattr(reference, name, fn)
    assert fast == full


def test_common_references_parse_without_re() -> None:
    """In a fresh interpreter: the usual names (and the image listing's stored ones) need no regex."""
    code = (
        "import sys\n"
        "from dockyard import reference\n"
        f"for v in {COMMON!r}:\n"
        "    reference.parse(v).familiar()\n"
        "reference.parse('nginx').with_tag('v2')\n"
        "print(sorted(m for m in ('re', 'enum', 'json') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---- images.service: timestamps and ID prefixes without re -----------------------------------

moments = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 31))


@given(moments, st.text(alphabet="0123456789", max_size=12), st.booleans())
@settings(max_examples=300)
def test_created_equals_parse_timestamp(moment: datetime, fraction: str, dot: bool) -> None:
    value = moment.strftime("%Y-%m-%dT%H:%M:%S") + ("." + fraction if dot else "") + "Z"
    assert service._created(value) == parse_timestamp(value)


@pytest.mark.parametrize("value", [
    None, "", "2024-05-06T10:00:00Z", "2024-05-06T10:00:00.123456789Z", "2024-05-06T10:00:00.Z",
    "2024-05-06T10:00:00.1x2Z", "2024-05-06T10:00:00.١Z", "2024-02-30T10:00:00Z", " 024-05-06T10:00:00Z",
    "2024-05-06T10:00:00+02:00", "2024-05-06T10:00:00.5+02:00", "2024-05-06 10:00:00Z", "2024-05-06T10:00:00z",
    "2024-05-06T10:00:00", "garbage", "2024-05-06T10:00Z",
])
def test_created_equals_parse_timestamp_on_odd_values(value: str | None) -> None:
    assert service._created(value) == parse_timestamp(value)


def test_created_reads_go_nanoseconds() -> None:
    expected = (datetime(2024, 5, 6, 10, 0, 0, 123456, tzinfo=timezone.utc)
                - datetime(1970, 1, 1, tzinfo=timezone.utc)) / timedelta(seconds=1)
    assert service._created("2024-05-06T10:00:00.123456789Z") == pytest.approx(expected, abs=1e-6)


@given(st.text(alphabet="sha256:0123456789abcdefgA ", max_size=20))
@example("sha256:")
@example("sha256:abc")
@example("abc")
@example("")
@example("sha256:sha256:a")
def test_id_prefix_equals_the_regex(name: str) -> None:
    image_id = "sha256:" + "abc" + "0" * 61
    expected = bool(re.fullmatch(r"(sha256:)?[0-9a-f]+", name)) and (
        image_id.startswith(name) or image_id.startswith("sha256:" + name))
    assert service._is_id_prefix(image_id, name) == expected


# ---- config: json only for a settings file ---------------------------------------------------

_LOAD = ("import sys\nfrom dockyard import config\ns = config.load()\n"
         "print(s.max_concurrent_downloads, 'json' in sys.modules)\n")


def _load_in_fresh_interpreter(root: str) -> str:
    env = {**os.environ, "DOCKYARD_ROOT": root, "DOCKYARD_RUNROOT": root + "/run"}
    return subprocess.run([sys.executable, "-c", _LOAD], capture_output=True, text=True, env=env,
                          check=True).stdout.strip()


def test_settings_without_a_file_do_not_load_json(tmp_path: os.PathLike) -> None:
    assert _load_in_fresh_interpreter(str(tmp_path)) == "3 False"


def test_settings_file_is_still_read(tmp_path: os.PathLike) -> None:
    with open(os.path.join(tmp_path, "settings.json"), "w") as f:
        f.write('{"max-concurrent-downloads": 7}')
    assert _load_in_fresh_interpreter(str(tmp_path)) == "7 True"
