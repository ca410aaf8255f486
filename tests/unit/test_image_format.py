"""Pure helpers behind the image commands: Docker's sizes, ages, tables, Go templates,
``--change`` parsing, list rows and reference globs."""

from __future__ import annotations

import pytest

from dockyard.cli import formatting as fmt
from dockyard.cli.images import history_rows, image_rows, parse_filters, split_familiar
from dockyard.cli.system import reclaimable
from dockyard.errors import DockyardError, InvalidArchiveError
from dockyard.images.archive_io import _entry_name, _oci_name
from dockyard.images.changes import ChangeError, apply_changes, parse_words, process_word
from dockyard.images.service import HistoryEntry, ImageSummary, _glob, _is_single_reference, _matches_any, _Ref

pytestmark = pytest.mark.unit

ID = "sha256:" + "ab" * 32


# ---- sizes and ages -------------------------------------------------------------------

@pytest.mark.parametrize("size,precision,expected", [
    (0, 3, "0B"),
    (999, 3, "999B"),
    (1000, 3, "1kB"),
    (1234, 3, "1.23kB"),
    (4_264_000, 3, "4.26MB"),
    (4_264_000, 4, "4.264MB"),
    (999_999, 3, "1e+03kB"),  # go-units really prints this
    (1_500_000_000, 4, "1.5GB"),
    (2 * 10**24, 4, "2YB"),
])
def test_human_size_is_base_1000_with_go_precision(size: int, precision: int, expected: str) -> None:
    assert fmt.human_size(size, precision) == expected


@pytest.mark.parametrize("seconds,expected", [
    (0.4, "Less than a second"),
    (1, "1 second"),
    (59, "59 seconds"),
    (60, "About a minute"),
    (119, "About a minute"),
    (120, "2 minutes"),
    (3599, "59 minutes"),
    (3600, "About an hour"),
    (5399, "About an hour"),
    (5400, "2 hours"),  # Go rounds half an hour up
    (47 * 3600, "47 hours"),
    (48 * 3600, "2 days"),
    (14 * 86400, "2 weeks"),
    (60 * 86400, "2 months"),
    (800 * 86400, "2 years"),
])
def test_human_duration_matches_go_units(seconds: float, expected: str) -> None:
    assert fmt.human_duration(seconds) == expected


def test_time_ago() -> None:
    assert fmt.time_ago(1000.0, now=1075.0) == "About a minute ago"
    assert fmt.time_ago(None) == "N/A"


@pytest.mark.parametrize("text,epoch", [
    ("2024-01-01T00:00:00Z", 1704067200.0),
    ("2024-01-01T00:00:00.123456789Z", 1704067200.123456),
    ("2024-01-01T02:00:00+02:00", 1704067200.0),
    ("2024-01-01T00:00:00.5Z", 1704067200.5),
])
def test_parse_timestamp_reads_go_nanoseconds(text: str, epoch: float) -> None:
    assert fmt.parse_timestamp(text) == pytest.approx(epoch)


def test_parse_timestamp_of_garbage_is_none() -> None:
    assert fmt.parse_timestamp("yesterday") is None
    assert fmt.parse_timestamp(None) is None


def test_rfc3339_nano_utc_trims_zeros() -> None:
    assert fmt.rfc3339_nano_utc(1704067200.0) == "2024-01-01T00:00:00Z"
    assert fmt.rfc3339_nano_utc(1704067200.25) == "2024-01-01T00:00:00.25Z"


def test_short_id_and_ellipsis() -> None:
    assert fmt.short_id(ID) == "abababababab"
    assert fmt.ellipsis("abcdef", 4) == "abc…"
    assert fmt.ellipsis("abc", 4) == "abc"


# ---- tables ---------------------------------------------------------------------------

def test_tabulate_pads_like_docker_tabwriter() -> None:
    out = fmt.tabulate([["REPOSITORY", "TAG", "SIZE"], ["busybox", "latest", "4.26MB"]])
    assert out == "REPOSITORY   TAG       SIZE\nbusybox      latest    4.26MB\n"


def test_tabulate_minimum_width_is_ten() -> None:
    assert fmt.tabulate([["A", "B"]]) == "A         B\n"


# ---- templates ------------------------------------------------------------------------

DATA = {
    "Id": ID,
    "Config": {"Cmd": ["sh", "-c", "x"], "Env": None, "Labels": {"b": "2", "a": "1"}, "User": ""},
    "Size": 42,
    "Flag": True,
    "RepoTags": ["busybox:latest", "busybox:v1"],
}


@pytest.mark.parametrize("template,expected", [
    ("{{.Id}}", ID),
    ("{{.Config.Cmd}}", "[sh -c x]"),
    ("{{json .Config.Cmd}}", '["sh","-c","x"]'),
    ("{{.Config.Labels}}", "map[a:1 b:2]"),
    ("{{index .Config.Labels \"b\"}}", "2"),
    ("{{join .RepoTags \",\"}}", "busybox:latest,busybox:v1"),
    ("{{.Size}} {{.Flag}}", "42 true"),
    ("{{.Config.Env}}", "[]"),  # a nil slice, as Docker's typed struct prints it
    ("{{.Config.Labels.nope}}", "<no value>"),  # a missing map key; a missing field is an error
    ("{{.Id | upper}}", ID.upper()),
    ("{{- .Size -}} x", "42x"),
    ("{{json .}}", None),
])
def test_template_subset(template: str, expected: str | None) -> None:
    out = fmt.Template(template, nil={"Env": "[]"}).render(DATA)
    if expected is None:
        assert out.startswith('{"Id":"sha256:')
    else:
        assert out == expected


def test_inspect_template_missing_field_is_an_error() -> None:
    with pytest.raises(fmt.TemplateError, match='template parsing error: .*map has no entry for key "Nope"'):
        fmt.Template("{{.Nope}}").render(DATA)


def test_go_json_escapes_html_characters() -> None:
    assert fmt.go_json({"a": "<none>&"}) == '{"a":"\\u003cnone\\u003e\\u0026"}'


def test_strict_template_rejects_unknown_fields() -> None:
    with pytest.raises(fmt.TemplateError, match="can't evaluate field Nope"):
        fmt.Template("{{.Nope}}", strict=True).render({"ID": "x"})


def test_template_rejects_unknown_functions() -> None:
    with pytest.raises(fmt.TemplateError, match='function "frobnicate" not defined'):
        fmt.Template("{{frobnicate .ID}}")


def test_render_rows_table_json_and_plain() -> None:
    rows = [{"Repository": "busybox", "Tag": "latest"}, {"Repository": "nginx", "Tag": "1"}]
    headers = {"Repository": "REPOSITORY", "Tag": "TAG"}
    assert fmt.render_rows("table {{.Repository}}\\t{{.Tag}}", rows, headers) == (
        "REPOSITORY   TAG\nbusybox      latest\nnginx        1\n")
    assert fmt.render_rows("{{.Repository}}:{{.Tag}}", rows, headers) == "busybox:latest\nnginx:1\n"
    assert fmt.render_rows("json", rows, headers).splitlines()[0] == '{"Repository":"busybox","Tag":"latest"}'


# ---- --change ---------------------------------------------------------------------------

def test_cmd_exec_and_shell_forms() -> None:
    assert apply_changes({}, ['CMD ["sh"]'])["Cmd"] == ["sh"]
    assert apply_changes({}, ["CMD sh -c x"])["Cmd"] == ["/bin/sh", "-c", "sh -c x"]
    # not a JSON array of strings: the shell form, verbatim
    assert apply_changes({}, ["CMD [1, 2]"])["Cmd"] == ["/bin/sh", "-c", "[1, 2]"]


def test_entrypoint_resets_an_inherited_cmd_only() -> None:
    assert apply_changes({"Cmd": ["old"]}, ['ENTRYPOINT ["/e"]'])["Cmd"] is None
    both = apply_changes({}, ['CMD ["c"]', "ENTRYPOINT /e --flag"])
    assert both["Cmd"] == ["c"] and both["Entrypoint"] == ["/bin/sh", "-c", "/e --flag"]


def test_env_forms_quotes_and_expansion() -> None:
    cfg = apply_changes({"Env": ["PATH=/bin"]}, [
        'ENV A=1 B="two words" C=a\\ b',
        "ENV PATH=/opt:$PATH D=${A}x E=${NOPE:-dflt} F=${A:+set}",
        "ENV LEGACY some value here",
        "ENV SINGLE='$A'",
    ])
    assert cfg["Env"] == ["PATH=/opt:/bin", "A=1", "B=two words", "C=a b", "D=1x", "E=dflt", "F=set",
                          "LEGACY=some value here", "SINGLE=$A"]


def test_label_workdir_user_expose_volume_stopsignal() -> None:
    cfg = apply_changes({}, [
        'LABEL a=b "c d"=e',
        "LABEL legacy with spaces",
        "WORKDIR /app",
        "WORKDIR sub/../dir",
        "USER nobody:nogroup",
        "EXPOSE 80 53/udp 8000-8001/tcp",
        'VOLUME ["/data", "/logs"]',
        "VOLUME /cache /tmp/x",
        "STOPSIGNAL SIGINT",
    ])
    assert cfg["Labels"] == {"a": "b", "c d": "e", "legacy": "with spaces"}
    assert cfg["WorkingDir"] == "/app/dir"
    assert cfg["User"] == "nobody:nogroup"
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}}
    assert cfg["Volumes"] == {"/data": {}, "/logs": {}, "/cache": {}, "/tmp/x": {}}
    assert cfg["StopSignal"] == "SIGINT"


def test_changes_do_not_touch_the_input() -> None:
    base = {"Env": ["A=1"]}
    apply_changes(base, ["ENV A=2"])
    assert base == {"Env": ["A=1"]}


@pytest.mark.parametrize("change,message", [
    ("FROM scratch", "FROM is not a valid change command"),
    ("RUN true", "RUN is not a valid change command"),
    ("EXPOSE http", "invalid containerPort: http"),
    ("EXPOSE 80/xyz", "invalid proto: xyz"),
    ("STOPSIGNAL SIGNOPE", "Invalid signal: SIGNOPE"),
    ("ENV A=1 B", "can't find = in 'B'"),
    ("ENV", "ENV requires at least one argument"),
    ('ENV A="unclosed', "matching double-quote"),
    ("", "no instruction"),
])
def test_invalid_changes(change: str, message: str) -> None:
    with pytest.raises(ChangeError, match=message.replace("(", r"\(").replace("[", r"\[")):
        apply_changes({}, [change])


def test_parse_words_keeps_quotes_for_the_lexer() -> None:
    assert parse_words('a="b c" d=e\\ f  g') == ['a="b c"', "d=e\\ f", "g"]
    assert process_word('"a\\"b"\'$X\'\\$X$X', {"X": "1"}) == 'a"b$X$X1'


# ---- list rows and filters ------------------------------------------------------------

def _summary(tags: list[str], digests: list[str] = ()) -> ImageSummary:
    return ImageSummary(id=ID, repo_tags=tags, repo_digests=list(digests), created=None, size=4_264_000)


def test_image_rows_one_per_tag_and_dangling() -> None:
    rows = image_rows([_summary(["busybox:latest", "127.0.0.1:5000/bb:v1"]), _summary([])], digests=False, trunc=True)
    assert [(r["Repository"], r["Tag"], r["ID"], r["Size"]) for r in rows] == [
        ("busybox", "latest", "abababababab", "4.26MB"),
        ("127.0.0.1:5000/bb", "v1", "abababababab", "4.26MB"),
        ("<none>", "<none>", "abababababab", "4.26MB"),
    ]
    assert list(rows[0]) == sorted(rows[0])  # keys sorted, as Go marshals the map


def test_image_rows_digests() -> None:
    digest = "sha256:" + "cd" * 32
    image = _summary(["busybox:latest"], [f"busybox@{digest}", f"other@{digest}"])
    plain = image_rows([image], digests=False, trunc=False)
    assert [(r["Repository"], r["Tag"], r["Digest"]) for r in plain] == [
        ("busybox", "latest", "<none>"), ("other", "<none>", "<none>")]
    assert plain[0]["ID"] == ID
    shown = image_rows([image], digests=True, trunc=True)
    assert [(r["Repository"], r["Tag"], r["Digest"]) for r in shown] == [
        ("busybox", "latest", digest), ("other", "<none>", digest)]


def test_split_familiar() -> None:
    assert split_familiar("127.0.0.1:5000/app") == ("127.0.0.1:5000/app", "")
    assert split_familiar("127.0.0.1:5000/app:v1") == ("127.0.0.1:5000/app", "v1")
    assert split_familiar("app@sha256:00") == ("app", "sha256:00")


@pytest.mark.parametrize("pattern,name,expected", [
    ("busy*", "busybox:latest", True),
    ("*:v1", "busybox:v1", True),
    ("*:v1", "busybox:latest", False),
    ("busybox", "busybox:v1", True),          # the bare name matches every tag
    ("*", "127.0.0.1:5000/app:1", False),    # * stops at /
    ("*/*", "127.0.0.1:5000/app:1", True),
    ("busybox:[lv]*", "busybox:v1", True),
    ("b?sybox", "busybox:latest", True),
])
def test_reference_glob_like_docker(pattern: str, name: str, expected: bool) -> None:
    assert _matches_any([pattern], name) is expected


def test_bad_glob_is_an_error() -> None:
    with pytest.raises(DockyardError, match="syntax error in pattern"):
        _glob("busy[")


def test_parse_filters() -> None:
    assert parse_filters(["reference=busy*", "dangling=true", "reference=x"]) == {
        "reference": ["busy*", "x"], "dangling": ["true"]}
    with pytest.raises(DockyardError, match="bad format of filter"):
        parse_filters(["dangling"])


def test_single_reference_rule() -> None:
    tag = _Ref("docker.io/library/a:1", "docker.io/library/a", False)
    tag2 = _Ref("docker.io/library/b:1", "docker.io/library/b", False)
    dig = _Ref("docker.io/library/a@sha256:" + "0" * 64, "docker.io/library/a", True)
    assert _is_single_reference([tag])
    assert _is_single_reference([tag, dig])
    assert not _is_single_reference([tag, tag2])
    assert not _is_single_reference([])


def test_history_rows_truncate_created_by() -> None:
    entries = [
        HistoryEntry(id=ID, created=None, created_by="/bin/sh -c\t" + "x" * 60, size=1234, comment="c"),
        HistoryEntry(id="<missing>", created=None, created_by="short", size=0, comment=""),
    ]
    rows = history_rows(entries, human=True, trunc=True)
    assert rows[0]["ID"] == "abababababab" and rows[1]["ID"] == "<missing>"
    assert rows[0]["CreatedBy"] == "/bin/sh -c " + "x" * 33 + "…" and len(rows[0]["CreatedBy"]) == 45
    assert rows[0]["Size"] == "1.23kB" and rows[1]["Size"] == "0B"
    assert history_rows(entries, human=False, trunc=False)[0]["Size"] == "1234"


def test_reclaimable() -> None:
    assert reclaimable(4_264_000, 0) == "4.264MB (100%)"
    assert reclaimable(0, 0) == "0B"
    assert reclaimable(1000, 250) == "750B (75%)"


# ---- archive names ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../evil", "/etc/passwd", "a/../../b", "blobs/../x"])
def test_entry_names_that_climb_out_are_refused(name: str) -> None:
    with pytest.raises(InvalidArchiveError, match="outside the archive"):
        _entry_name(name)


def test_entry_names_and_link_targets() -> None:
    assert _entry_name("./manifest.json") == "manifest.json"
    assert _entry_name("blobs/sha256/") == "blobs/sha256"
    assert _entry_name("abc/../def/layer.tar", link_of="x/layer.tar") == "def/layer.tar"
    assert _entry_name("/abc/layer.tar", link_of="x") == "abc/layer.tar"
    with pytest.raises(InvalidArchiveError):
        _entry_name("../../x", link_of="a/b")


def test_oci_names() -> None:
    assert _oci_name({"org.opencontainers.image.ref.name": "latest"}) is None
    assert _oci_name({"org.opencontainers.image.ref.name": "sk/bb:t1"}) == "docker.io/sk/bb:t1"
    assert _oci_name({"io.containerd.image.name": "docker.io/library/busybox:latest",
                      "org.opencontainers.image.ref.name": "latest"}) == "docker.io/library/busybox:latest"
