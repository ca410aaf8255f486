"""Image reference grammar and normalization (docker/distribution's reference package is the spec)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.errors import InvalidReferenceError
from dockyard.reference import Reference, parse, parse_repository

H256 = "sha256:" + "a1" * 32
H512 = "sha512:" + "0f" * 64

pytestmark = pytest.mark.unit

# input -> (domain, path, tag, digest)
VALID = [
    ("nginx", ("docker.io", "library/nginx", "latest", None)),
    ("nginx:1.25", ("docker.io", "library/nginx", "1.25", None)),
    ("user/app", ("docker.io", "user/app", "latest", None)),
    ("user/app:1", ("docker.io", "user/app", "1", None)),
    ("docker.io/nginx", ("docker.io", "library/nginx", "latest", None)),
    ("docker.io/library/nginx:latest", ("docker.io", "library/nginx", "latest", None)),
    ("index.docker.io/x", ("docker.io", "library/x", "latest", None)),
    ("index.docker.io/u/x:t", ("docker.io", "u/x", "t", None)),
    ("docker.io/library/a/b", ("docker.io", "library/a/b", "latest", None)),
    ("127.0.0.1:5000/nginx:alpine", ("127.0.0.1:5000", "nginx", "alpine", None)),
    ("localhost/x", ("localhost", "x", "latest", None)),
    ("localhost:5000/a/b/c:v", ("localhost:5000", "a/b/c", "v", None)),
    ("example.com/team/app", ("example.com", "team/app", "latest", None)),
    ("example:5000/app", ("example:5000", "app", "latest", None)),
    ("Example.COM/app", ("Example.COM", "app", "latest", None)),
    ("Foo/bar", ("Foo", "bar", "latest", None)),  # uppercase first component is a domain
    ("[::1]:5000/nginx", ("[::1]:5000", "nginx", "latest", None)),
    ("[2001:db8::1]/a:b", ("[2001:db8::1]", "a", "b", None)),
    # without "/" the name is always a Hub name, even if it looks like a host
    ("localhost", ("docker.io", "library/localhost", "latest", None)),
    ("localhost:5000", ("docker.io", "library/localhost", "5000", None)),
    ("example.com", ("docker.io", "library/example.com", "latest", None)),
    (f"nginx@{H256}", ("docker.io", "library/nginx", None, H256)),
    (f"nginx:1@{H256}", ("docker.io", "library/nginx", "1", H256)),
    (f"localhost:5000/x@{H512}", ("localhost:5000", "x", None, H512)),
    ("a_b__c-e---f/g.h", ("docker.io", "a_b__c-e---f/g.h", "latest", None)),
    ("example.com/a_b__c.d-e---f", ("example.com", "a_b__c.d-e---f", "latest", None)),
    ("x:" + "T" * 128, ("docker.io", "library/x", "T" * 128, None)),
    ("x:_.-", ("docker.io", "library/x", "_.-", None)),
    ("a" * 63 + ":tag", ("docker.io", "library/" + "a" * 63, "tag", None)),
]

# input -> words the message must contain
INVALID = [
    ("", "empty"),
    ("Nginx", "must be lowercase"),
    ("Foo/Bar", "must be lowercase"),
    ("docker.io/User/app", "must be lowercase"),
    ("nginx:", "invalid tag"),
    ("nginx:-x", "invalid tag"),
    ("nginx:.x", "invalid tag"),
    ("nginx:a/b", "invalid registry domain"),  # "nginx:a" can only be a host:port
    ("a_b.c/d", "invalid registry domain"),  # a "." makes the first component a domain
    ("x:" + "t" * 129, "invalid tag"),
    ("nginx:täg", "invalid tag"),
    ("nginx@", "invalid digest"),
    ("nginx@sha256:abc", "invalid digest"),
    ("nginx@md5:" + "a" * 32, "invalid digest"),
    ("nginx@SHA256:" + "a" * 64, "invalid digest"),
    ("nginx@sha256:" + "A" * 64, "invalid digest"),
    (f"@{H256}", "empty"),
    (":tag", "empty"),
    ("a" * 64, "image ID"),
    ("a//b", "empty path component"),
    ("a/", "empty path component"),
    ("/a", "empty path component"),
    ("-a", "invalid repository name component"),
    ("a-", "invalid repository name component"),
    ("a..b", "invalid repository name component"),
    ("a___b", "invalid repository name component"),
    ("a b", "invalid repository name component"),
    ("exa_mple.com/x", "invalid registry domain"),
    ("-example.com/x", "invalid registry domain"),
    ("example.com:port/x", "invalid registry domain"),
    ("http://example.com/x", "invalid registry domain"),
    ("example.com/", "empty path component"),
    ("x/" + "a" * 250, "name too long"),
    ("example.com/" + "a" * 244, "name too long"),
]


@pytest.mark.parametrize("value, expected", VALID)
def test_valid(value: str, expected: tuple) -> None:
    ref = parse(value)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == expected


@pytest.mark.parametrize("value, words", INVALID)
def test_invalid(value: str, words: str) -> None:
    with pytest.raises(InvalidReferenceError) as err:
        parse(value)
    message = str(err.value)
    assert message.startswith('invalid reference "')
    assert words in message


def test_message_shape() -> None:
    with pytest.raises(InvalidReferenceError, match=r'^invalid reference "Nginx": repository name must be lowercase$'):
        parse("Nginx")


def test_long_input_is_shortened_in_message() -> None:
    with pytest.raises(InvalidReferenceError) as err:
        parse("a" * 1000)
    assert len(str(err.value)) < 200


def test_name_length_limit_counts_the_domain() -> None:
    ok = "example.com/" + "a" * (255 - len("example.com/"))
    assert parse(ok).path == "a" * 243
    with pytest.raises(InvalidReferenceError, match="name too long"):
        parse(ok + "a")


def test_no_default_tag() -> None:
    assert parse("nginx", default_tag=False).tag is None
    assert str(parse("nginx", default_tag=False)) == "docker.io/library/nginx"
    assert parse(f"nginx@{H256}").tag is None  # a digest is enough


@pytest.mark.parametrize(
    "value, full, familiar, familiar_repo, host",
    [
        ("nginx", "docker.io/library/nginx:latest", "nginx:latest", "nginx", "registry-1.docker.io"),
        ("user/app:1", "docker.io/user/app:1", "user/app:1", "user/app", "registry-1.docker.io"),
        ("library/a/b", "docker.io/library/a/b:latest", "library/a/b:latest", "library/a/b", "registry-1.docker.io"),
        ("127.0.0.1:5000/nginx:alpine", "127.0.0.1:5000/nginx:alpine", "127.0.0.1:5000/nginx:alpine",
         "127.0.0.1:5000/nginx", "127.0.0.1:5000"),
        ("localhost/x", "localhost/x:latest", "localhost/x:latest", "localhost/x", "localhost"),
        (f"nginx@{H256}", f"docker.io/library/nginx@{H256}", f"nginx@{H256}", "nginx", "registry-1.docker.io"),
        (f"nginx:1@{H256}", f"docker.io/library/nginx:1@{H256}", f"nginx:1@{H256}", "nginx", "registry-1.docker.io"),
        # a Hub path that reads like a domain keeps docker.io/ to stay unambiguous
        ("docker.io/foo.bar/app", "docker.io/foo.bar/app:latest", "docker.io/foo.bar/app:latest",
         "docker.io/foo.bar/app", "registry-1.docker.io"),
        ("docker.io/localhost/app", "docker.io/localhost/app:latest", "docker.io/localhost/app:latest",
         "docker.io/localhost/app", "registry-1.docker.io"),
    ],
)
def test_forms(value: str, full: str, familiar: str, familiar_repo: str, host: str) -> None:
    ref = parse(value)
    assert str(ref) == full
    assert ref.familiar() == familiar
    assert ref.familiar_repository == familiar_repo
    assert ref.registry_host == host
    assert full.startswith(ref.repository) and full[len(ref.repository)] in ":@"


def test_with_tag_and_digest() -> None:
    ref = parse("nginx:1")
    assert str(ref.with_tag("2")) == "docker.io/library/nginx:2"
    pinned = ref.with_digest(H256)
    assert str(pinned) == f"docker.io/library/nginx:1@{H256}"
    assert pinned.with_tag("3").digest == H256  # WithTag keeps the digest, as Docker's does
    with pytest.raises(InvalidReferenceError, match="invalid tag"):
        ref.with_tag("-bad")
    with pytest.raises(InvalidReferenceError, match="invalid digest"):
        ref.with_digest("sha256:nope")


def test_frozen_and_hashable() -> None:
    ref = parse("nginx")
    assert ref == Reference("docker.io", "library/nginx", "latest", None)
    assert len({ref, parse("docker.io/library/nginx:latest")}) == 1
    with pytest.raises(AttributeError):
        ref.tag = "x"  # type: ignore[misc]


def test_parse_repository() -> None:
    assert parse_repository("nginx") == Reference("docker.io", "library/nginx", None, None)
    assert str(parse_repository("localhost:5000/a/b")) == "localhost:5000/a/b"
    for value in ("nginx:1", f"nginx@{H256}", "localhost:5000"):
        with pytest.raises(InvalidReferenceError, match="without tag or digest"):
            parse_repository(value)
    with pytest.raises(InvalidReferenceError, match="lowercase"):
        parse_repository("Nginx")


def test_import_cost_is_tiny() -> None:
    # reference is imported by every CLI command: it must not pull in hashlib & co.
    code = "import sys, dockyard.reference; print(' '.join(sorted(sys.modules)))"
    modules = set(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                 text=True).stdout.split())
    assert not modules & {"hashlib", "json", "dockyard.digest", "click", "aiohttp"}


# --- properties -------------------------------------------------------------------------

_component = st.from_regex(r"[a-z0-9]{1,6}(?:(?:[._]|__|-{1,3})[a-z0-9]{1,6}){0,2}", fullmatch=True)
# Without a domain, a first component with a "." would be read as a domain.
_first_component = st.from_regex(r"[a-z0-9]{1,6}(?:(?:_|__|-{1,3})[a-z0-9]{1,6}){0,2}", fullmatch=True)
_domain = st.one_of(
    st.sampled_from(["docker.io", "index.docker.io", "localhost", "localhost:5000", "127.0.0.1:5000",
                     "[::1]:5000", "Registry.Example.com", "Foo"]),
    st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,8}[a-z0-9])?\.[a-z]{2,6}(?::[0-9]{1,5})?", fullmatch=True),
)
_TAG_CHARS = "ABCXYZabcxyz0189_"
_tag = st.builds(lambda a, b: a + b, st.sampled_from(_TAG_CHARS),
                 st.text(alphabet=_TAG_CHARS + ".-", max_size=127))
_digest = st.one_of(
    st.binary(min_size=32, max_size=32).map(lambda b: "sha256:" + b.hex()),
    st.binary(min_size=64, max_size=64).map(lambda b: "sha512:" + b.hex()),
)


@st.composite
def references(draw: st.DrawFn) -> str:
    components = draw(st.lists(_component, min_size=1, max_size=4))
    text = "/".join(components)
    if draw(st.booleans()):
        text = f"{draw(_domain)}/{text}"
    elif len(components) > 1 and "." in components[0]:
        text = f"{draw(_first_component)}/{text}"
    if draw(st.booleans()):
        text += ":" + draw(_tag)
    if draw(st.booleans()):
        text += "@" + draw(_digest)
    return text


@settings(max_examples=200)
@given(references())
def test_str_round_trips(text: str) -> None:
    ref = parse(text)
    assert parse(str(ref)) == ref
    assert str(parse(str(ref))) == str(ref)


@settings(max_examples=200)
@given(references())
def test_familiar_round_trips(text: str) -> None:
    ref = parse(text)
    assert parse(ref.familiar()) == ref
    assert parse(ref.familiar_repository, default_tag=False) == Reference(ref.domain, ref.path)


@settings(max_examples=200)
@given(references(), _tag)
def test_with_tag_matches_parse(text: str, tag: str) -> None:
    parsed = parse(text)
    ref = Reference(parsed.domain, parsed.path)
    assert ref.with_tag(tag) == parse(f"{ref.repository}:{tag}")


@settings(max_examples=500)
@given(st.text(max_size=80))
def test_arbitrary_text_parses_or_raises_invalid_reference(text: str) -> None:
    try:
        ref = parse(text)
    except InvalidReferenceError as e:
        assert str(e).startswith("invalid reference ")
    else:
        assert parse(str(ref)) == ref
