"""The Dockerfile language module: the official parser's output checked and shaped into
stages, Docker's messages for bad input, stage selection, ARG scoping and expansion."""

from __future__ import annotations

import pytest

from dockyard.build.dockerfile import (DockerfileError, global_scope, needed_stages, parse, process_word,
                                       unused_build_args)

pytestmark = pytest.mark.unit

MULTI = """\
# syntax=docker/dockerfile:1
ARG BASE=debian:bookworm
ARG VERSION
FROM ${BASE} AS build
ARG VERSION=1.0
RUN --mount=type=cache,target=/var/cache/apt apt-get update && \\
    apt-get install -y make
COPY --chown=1:1 src/ /src/
FROM busybox AS unused
RUN echo never
FROM build AS test
RUN make test
FROM scratch
COPY --from=build /src/out /out
CMD ["/out"]
"""


def test_stages_instructions_and_lines() -> None:
    df = parse(MULTI)
    assert [(s.index, s.name, s.base) for s in df.stages] == [
        (0, "build", "${BASE}"), (1, "unused", "busybox"), (2, "test", "build"), (3, "", "scratch")]
    assert [i.original for i in df.global_args] == ["ARG BASE=debian:bookworm", "ARG VERSION"]
    run = df.stages[0].instructions[1]
    assert (run.keyword, run.line, run.end_line) == ("RUN", 6, 7)
    assert run.flag_values("mount") == ["type=cache,target=/var/cache/apt"]
    copy = df.stages[3].instructions[0]
    assert copy.flag("from") == "build" and copy.args == ["/src/out", "/out"]
    cmd = df.stages[3].instructions[1]
    assert cmd.json and cmd.args == ["/out"]


def test_only_needed_stages_build() -> None:
    df = parse(MULTI)
    scope = global_scope(df, {}, {})
    assert needed_stages(df, None, scope) == [0, 3]
    assert needed_stages(df, "test", scope) == [0, 2]
    assert needed_stages(df, "unused", scope) == [1]
    with pytest.raises(DockerfileError, match='target stage "nope" could not be found'):
        needed_stages(df, "nope", {})


def test_a_stage_cannot_build_on_itself_or_a_later_one() -> None:
    df = parse("FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\n")
    with pytest.raises(DockerfileError, match="Dockerfile:2: circular dependency detected on stage: b"):
        needed_stages(df, "a", {})
    with pytest.raises(DockerfileError, match="circular dependency detected on stage: a"):
        needed_stages(parse("FROM a AS a\n"), None, {})


@pytest.mark.parametrize("text,message", [
    ("FROM busybox\nFOO bar\n", "Dockerfile:2: unknown instruction: FOO"),
    ("RUN true\n", "Dockerfile:1: no build stage in current context"),
    ("ARG X\n", "has no FROM instruction"),
    ("FROM busybox\nCOPY onlyone\n", "Dockerfile:2: COPY requires at least two arguments"),
    ("FROM busybox\nENV\n", "Dockerfile:2: ENV requires at least one argument"),
    ("FROM busybox\nCOPY --form=x a b\n", "Dockerfile:2: unknown flag: --form"),
    ("FROM busybox\nSHELL sh -c\n", "SHELL requires the arguments to be in JSON form"),
    ("FROM a AS b c\n", "FROM requires either one or three arguments"),
    ("FROM a AS 1x\n", "invalid name for build stage"),
    ("FROM a AS x\nFROM b AS x\n", "Dockerfile:2: duplicate stage name 'x'"),
    ("FROM a\nONBUILD FROM b\n", "FROM isn't allowed as an ONBUILD trigger"),
    ("FROM a\nONBUILD COPY x\n", "Dockerfile:2: COPY requires at least two arguments"),
    ("# escape=x\nFROM a\n", "invalid escape token"),
])
def test_bad_dockerfiles_name_the_line(text: str, message: str) -> None:
    with pytest.raises(DockerfileError, match=message):
        parse(text)


def test_onbuild_keeps_its_trigger() -> None:
    onbuild = parse("FROM a\nONBUILD RUN echo hi\n").stages[0].instructions[0]
    assert onbuild.sub is not None and (onbuild.sub.keyword, onbuild.sub.args) == ("RUN", ["echo hi"])


def test_escape_directive_and_heredocs() -> None:
    df = parse("# escape=`\nFROM busybox\nRUN <<EOF\necho hi\nEOF\nCOPY <<conf /etc/x.conf\na=1\nconf\n")
    assert df.escape == "`"
    run, copy = df.stages[0].instructions
    assert run.heredocs == [("EOF", "echo hi\n")] and copy.heredocs == [("conf", "a=1\n")]
    assert process_word("C:`\\dir", {}, df.escape) == "C:\\dir"


def test_arg_scoping_and_expansion() -> None:
    df = parse(MULTI)
    scope = global_scope(df, {"VERSION": "2"}, {"TARGETPLATFORM": "linux/amd64"})
    assert scope == {"TARGETPLATFORM": "linux/amd64", "BASE": "debian:bookworm", "VERSION": "2"}
    assert global_scope(df, {"BASE": "busybox"}, {})["BASE"] == "busybox"
    assert process_word("${BASE}", scope) == "debian:bookworm"
    env = {"A": "1", "EMPTY": ""}
    assert process_word("${A:-x} ${B:-x} ${EMPTY:-x} ${EMPTY-x} ${A:+y} ${B:+y}", env) == "1 x x  y "
    assert process_word("'$A' \"$A\" \\$A", env) == "$A 1 $A"
    with pytest.raises(DockerfileError, match="B: must be set"):
        process_word("${B:?must be set}", env)
    assert unused_build_args(df, ["VERSION", "HTTP_PROXY", "TYPO"]) == ["TYPO"]


def test_a_cached_parse_is_the_parse(tmp_path) -> None:  # noqa: ANN001
    from dockyard.build import dockerfile as d

    text = ("ARG V=1\nFROM busybox AS a\nRUN --mount=type=cache,target=/c echo $V\nONBUILD RUN x\n"
            "RUN <<EOF\nhello\nEOF\nCOPY [\"a b\", \"/c/\"]\n")
    plain = d.parse(text)
    first = d.parse(text, cache_dir=str(tmp_path))    # parses and writes the cache
    cached = d.parse(text, cache_dir=str(tmp_path))   # reads it
    assert len(list(tmp_path.iterdir())) == 1
    assert plain == first == cached
    (next(tmp_path.iterdir())).write_text("not json")   # a broken entry is parsed again
    assert d.parse(text, cache_dir=str(tmp_path)) == plain
