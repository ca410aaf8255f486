"""Go's text/template as Docker runs it: each expected output or error text below is what
docker 20.10 printed for the same template (``inspect -f`` on a container created with
``create --name c1 -l a=b -e X=1 busybox sleep 1``, ``ps -a --format``), unless marked Go."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.cli import formatting as fmt
from dockyard.cli.gotemplate import GoTemplate, TemplateError, go_float, go_value, sprintf

# inspect's data: JSON as dockyard's inspect gives it (structs are dicts with capitalised keys)
C1: dict[str, Any] = {
    "Id": "3e1d840efde0",
    "Path": "sleep",
    "Args": ["1"],
    "State": {"Status": "created", "Running": False, "Paused": False, "Pid": 0, "ExitCode": 0},
    "Name": "/c1",
    "RestartCount": 0,
    "HostConfig": {"RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}, "Memory": 0, "Binds": None},
    "Mounts": [],
    "Config": {"Env": ["X=1"], "Cmd": ["sleep", "1"], "Labels": {"a": "b"}, "Entrypoint": None,
               "Volumes": None},
}

RENDER = [
    # fields, maps, printing
    ("{{.Name}}", "/c1"),
    ("{{.Config.Env}}", "[X=1]"),
    ("{{.Config.Cmd}}", "[sleep 1]"),
    ("{{.Config.Labels}}", "map[a:b]"),
    ("{{.Config.Labels.a}}", "b"),
    ("{{.Config.Labels.nosuch}}", "<no value>"),
    ("{{.State.Running}} {{.State.Pid}} {{.State.ExitCode}}", "false 0 0"),
    ("{{.HostConfig.RestartPolicy}}", "{no 0}"),
    ("{{.Mounts}}", "[]"),
    ("{{.}}" , None),  # printable, whatever it is
    # trimming and comments
    ('{{- " a " -}}  {{- "b"}}', " a b"),
    ("x  {{- .Path}}", "xsleep"),
    ("{{.Path -}}  \n y", "sleepy"),
    ("{{/* c */}}x", "x"),
    ("a {{- /* c */ -}} b", "ab"),
    ("{{-3}}", "-3"),
    # literals
    ("{{1e6}} {{1.5}} {{0x10}} {{-2}}", "1e+06 1.5 16 -2"),
    ("{{'a'}}", "97"),
    ('{{"q\\t\\"x\\""}}', 'q\t"x"'),
    ("{{`raw\\n`}}", "raw\\n"),
    ("{{true}} {{false}}", "true false"),
    ("{{nil | print}}", "<nil>"),
    # if / else if / else, with, range
    ("{{if .State.Running}}yes{{else}}no{{end}}", "no"),
    ('{{if .State.Running}}yes{{else if eq .State.Status "created"}}created{{else}}no{{end}}', "created"),
    ("{{if .Config.Env}}env{{end}}", "env"),
    ('{{if ""}}x{{else}}empty{{end}}{{if 0}}x{{else}}zero{{end}}{{if .Mounts}}x{{else}}nolist{{end}}',
     "emptyzeronolist"),
    ("{{with .Config.Labels}}{{.a}}{{else}}none{{end}}", "b"),
    ("{{with .Config.Labels.zz}}x{{else}}none{{end}}", "none"),
    ('{{with $x := "a"}}{{$x}}{{end}}', "a"),
    ("{{range .Config.Env}}{{.}};{{end}}", "X=1;"),
    ("{{range .Mounts}}x{{else}}empty{{end}}", "empty"),
    ("{{range $i, $e := .Config.Cmd}}{{$i}}:{{$e}} {{end}}", "0:sleep 1:1 "),
    ("{{range $i, $e := .Config.Env}}{{$i}}:{{$e}} {{$.Name}}{{end}}", "0:X=1 /c1"),
    ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}}{{end}}", "a=b"),
    ('{{range $k, $v := .M}}{{$k}}{{$v}},{{end}}', "a1,b2,c3,"),  # maps in sorted key order (Go)
    ('{{range .M}}{{.}}{{end}}', "123"),
    ('{{range split "a,b,c" ","}}{{if eq . "b"}}{{continue}}{{end}}{{.}}{{end}}', "ac"),
    ('{{range split "a,b" ","}}{{.}}{{break}}{{end}}', "a"),
    # variables
    ("{{$x := 1}}{{$x = 2}}{{$x}}", "2"),
    ('{{$n := .Name}}{{$n = printf "%s!" $n}}{{$n}} {{$.Path}}', "/c1! sleep"),
    ("{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}", "2"),
    ("{{$x := 1}}{{if true}}{{$x := 3}}{{end}}{{$x}}", "1"),
    ("{{with .State}}{{$.Name}} {{.Status}}{{end}}", "/c1 created"),
    ("{{$s := .State}}{{$s.Status}}", "created"),
    # pipelines and parentheses
    ('{{.Name | printf "%s!"}}', "/c1!"),
    ("{{.Config.Env | len}}", "1"),
    ("{{(index .Config.Env 0)}}", "X=1"),
    ("{{(index .Config.Cmd 0) | len}}", "5"),
    ("{{(.Config).Env}}", "[X=1]"),
    ("{{.State.Running | not}}", "true"),
    ('{{"abc" | upper | lower}}', "abc"),
    # comparisons and logic
    ('{{eq .State.Status "created"}} {{eq .State.Status "running" "created"}} {{ne .Path "sh"}}',
     "true true true"),
    ("{{eq .State.Pid 0}} {{lt .State.Pid 1}}", "true true"),
    ('{{lt 1 2}} {{le 2 2}} {{gt "b" "a"}} {{ge 1 2}}', "true true true false"),
    ('{{and 1 0 2}} {{or 0 "" "x"}} {{and 1 2}} {{or 0 ""}}', "0 x 2 "),
    ('{{and .State.Running "x"}}|{{or .State.Running "y"}}', "false|y"),
    ('{{not 0}} {{not ""}} {{not .Config.Env}}', "true true false"),
    ("{{and .State.Running .Bogus}}", "false"),  # and stops at the first false
    # builtins
    ("{{len .Config.Env}} {{len .Name}} {{len .Config.Labels}}", "1 3 1"),
    ('{{index .Config.Labels "a"}}', "b"),
    ('[{{index .Config.Labels "nosuch"}}]', "[]"),
    ("{{index .Config.Cmd 1}}", "1"),
    ('{{index . "Name"}}', "/c1"),
    ("{{slice .Name 1 3}} {{slice .Name 1}} {{slice .Config.Cmd 0 1}}", "c1 c1 [sleep]"),
    ('{{print "a" 1 2 "b" "c"}}', "a1 2bc"),
    ('{{print 1 2 "a" 3 nil}}', "1 2a3 <nil>"),
    ('{{println "a" 1}}', "a 1\n"),
    ('{{printf "%5d|%-5s|%q|%v|%x" .State.Pid "ab" "q" .Config.Cmd "hi"}}', '    0|ab   |"q"|[sleep 1]|6869'),
    ('{{printf "%6.2f|%-4d|%04d|%x|%X|%q" 3.14159 7 7 255 255 5}}', "  3.14|7   |0007|ff|FF|'\\x05'"),
    ('{{printf "%v %v %v" 1.5 true .Config.Labels}}', "1.5 true map[a:b]"),
    ('{{printf "%d" "x"}}', "%!d(string=x)"),
    ('{{printf "%s %s" "x"}}', "x %!s(MISSING)"),
    ('{{printf "%s" "x" 2}}', "x%!(EXTRA int=2)"),
    ('{{printf "%T %T %T" 1 "s" .Config.Cmd}}', "int string []string"),
    ('{{printf "100%%"}}', "100%"),
    ('{{html "<a>"}} {{js "it\'s"}} {{urlquery "a b&c"}}', "&lt;a&gt; it\\'s a+b%26c"),
    ('{{printf "%s" .Config.Env}} {{printf "%q" .Config.Cmd}} {{printf "%x" .Config.Cmd}}',
     '[X=1] ["sleep" "1"] [736c656570 31]'),
    ('{{printf "%q" .Config.Labels}} {{printf "%v %s" nil nil}}', 'map["a":"b"] <nil> %!s(<nil>)'),
    ('{{printf "%e %g %G %E" 1234.5678 0.000012 1e21 5.0}}', "1.234568e+03 1.2e-05 1E+21 5.000000E+00"),
    ('{{printf "%c%c" 72 105}} {{printf "%U" 65}} {{printf "%[2]s %[1]s" "a" "b"}}', "Hi U+0041 b a"),
    ('{{printf "%v" .Config.Labels.nosuch}}', "<nil>"),  # a missing value passed to a function is nil
    ("{{.Config.Entrypoint}} {{.Config.Volumes}} {{.HostConfig.Binds}}", "[] map[] []"),  # nil slices, maps
    ("{{index . \"Name\"}} {{len .Config}}", "/c1 5"),
    ('{{.Config.Volumes.x}}|{{index .Config.Volumes "x"}}|{{json .Config.Volumes}}|{{json .Config.Entrypoint}}|'
     "{{len .Config.Volumes}}|{{if .Config.Entrypoint}}y{{else}}n{{end}}", "<no value>||null|null|0|n"),
    # Docker's functions
    ("{{json .Config.Cmd}}", '["sleep","1"]'),
    ("{{json .Config.Labels}}", '{"a":"b"}'),
    ('{{json "<a>&"}}', '"<a>&"'),
    ("{{json 1.0}} {{json 2.5}}", "1 2.5"),
    ("{{json .Config.Entrypoint}}", "null"),
    ("{{json .State.Health}}", "null"),  # a nil pointer in Docker's struct
    ('{{join .Config.Cmd "+"}}', "sleep+1"),
    ('{{split "a,b" ","}} {{index (split "a,b,c" ",") 1}}', "[a b] b"),
    ('{{title "hELLO wor_ld x-y"}}', "HELLO Wor_ld X-Y"),
    ('{{upper .Name}} {{lower "ABC"}}', "/C1 abc"),
    ('{{pad "x" 1 2}}|', " x  |"),
    ('{{truncate "hello" 2}} {{truncate "hi" 5}}', "he hi"),
    # define / template / block
    ('{{define "x"}}X{{.}}{{end}}{{template "x" 5}}', "X5"),
    ('{{block "x" .Name}}B{{.}}{{end}}', "B/c1"),
    ('{{define "t"}}[{{.}}]{{end}}{{template "t" .Path}}{{template "t"}}', "[sleep][<no value>]"),
]


@pytest.mark.parametrize("template,expected", RENDER)
def test_render_like_docker(template: str, expected: str | None) -> None:
    data = dict(C1, M={"c": 3, "a": 1, "b": 2})
    out = GoTemplate(template).execute(data)
    if expected is not None:
        assert out == expected


ERRORS = [
    # parse errors: template: :LINE: MSG
    ("{{nosuch .}}", 'template: :1: function "nosuch" not defined'),
    ("{{.Name | nosuch}}", 'template: :1: function "nosuch" not defined'),
    ("{{.Name}}\n{{nosuch}}", 'template: :2: function "nosuch" not defined'),
    ("{{range .Config.Env}}", "template: :1: unexpected EOF"),
    ("{{range}}{{end}}", "template: :1: missing value for range"),
    ("{{if}}", "template: :1: missing value for if"),
    ("{{end}}", "template: :1: unexpected {{end}}"),
    ("{{else}}", "template: :1: unexpected {{else}}"),
    ("{{.Path", "template: :1: unclosed action"),
    ("{{$x}}", 'template: :1: undefined variable "$x"'),
    ('{{ "abc }}', "template: :1: unterminated quoted string"),
    ("{{break}}", "template: :1: {{break}} outside {{range}}"),
    # execution errors: template: :LINE:COL: executing "" at <NODE>: MSG
    ("{{.Bogus}}", 'template: :1:2: executing "" at <.Bogus>: map has no entry for key "Bogus"'),
    ("{{.Bogus.X}}", 'template: :1:8: executing "" at <.Bogus.X>: map has no entry for key "Bogus"'),
    ("{{.State.Health.Status}}",
     'template: :1:8: executing "" at <.State.Health.Status>: map has no entry for key "Health"'),
    ("a\n{{.Nope}}", 'template: :2:2: executing "" at <.Nope>: map has no entry for key "Nope"'),
    ("{{eq 1 1.0}}", 'template: :1:2: executing "" at <eq 1 1.0>: error calling eq: incompatible types for comparison'),
    ('{{eq "a" 1}}', 'template: :1:2: executing "" at <eq "a" 1>: error calling eq: incompatible types for comparison'),
    ("{{lt 1 2.5}}", 'template: :1:2: executing "" at <lt 1 2.5>: error calling lt: incompatible types for comparison'),
    ("{{index .Config.Cmd 5}}",
     'template: :1:2: executing "" at <index .Config.Cmd 5>: error calling index: index out of range: 5'),
    ("{{len 3}}", 'template: :1:2: executing "" at <len 3>: error calling len: len of type int'),
    ("{{upper .State.Pid}}",
     'template: :1:14: executing "" at <.State.Pid>: wrong type for value; expected string; got json.Number'),
    ('{{template "x"}}', 'template: :1:11: executing "" at <{{template "x"}}>: template "x" not defined'),
    # what docker's raw fallback (JSON in maps, missingkey=error) reports when the typed run failed
    ('{{join .Args 1}}',
     'template: :1:7: executing "" at <.Args>: wrong type for value; expected []string; got []interface {}'),
    ('{{.Config.Env | join ","}}', 'template: :1:21: executing "" at <",">: can\'t handle "," for arg of type []string'),
    ("{{.Config.Labels.nosuch | len}}",
     'template: :1:9: executing "" at <.Config.Labels.nosuch>: map has no entry for key "nosuch"'),
    ("{{.Config.Labels.a.b}}",
     'template: :1:9: executing "" at <.Config.Labels.a.b>: can\'t evaluate field b in type interface {}'),
    ("{{title 1}}", 'template: :1:8: executing "" at <1>: expected string; found 1'),
    ('{{truncate .Path "2"}}', 'template: :1:17: executing "" at <"2">: expected integer; found "2"'),
    ("{{not 1 2}}", 'template: :1:2: executing "" at <not>: wrong number of args for not: want 1 got 2'),
    ("{{index .Config.Labels 1}}", 'template: :1:2: executing "" at <index .Config.Labels 1>: '
                                   "error calling index: value has type int; should be string"),
    ("{{slice .Path 3 1}}",
     'template: :1:2: executing "" at <slice .Path 3 1>: error calling slice: invalid slice index: 3 > 1'),
    ("{{with 1}}{{else with 2}}b{{end}}", "template: :1: unexpected <with> in else"),
    ("{{range 3}}{{.}}{{end}}", 'template: :1:8: executing "" at <3>: range can\'t iterate over 3'),  # Go 1.19's
    ("{{ .Path }", 'template: :1: unexpected "}" in operand'),
]


@pytest.mark.parametrize("template,message", ERRORS)
def test_errors_like_docker(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as e:
        GoTemplate(template).execute(C1)
    assert e.value.message == message


# ---- typed contexts: ps rows ---------------------------------------------------------

ROW = {"Names": "c1", "State": "created", "Labels": "a=b", "Label": lambda name: {"a": "b"}.get(name, "")}
PS_TYPE = "*formatter.ContainerContext"

ROW_CASES = [
    ('{{.Label "a"}}|{{.Label "zz"}}', "b|"),
    ('{{"a" | .Label}}', "b"),
    ("{{.Labels}}", "a=b"),
    ('{{if eq .State "created"}}new{{end}} {{.Names | printf "%q"}}', 'new "c1"'),
    ('{{range split .Labels ","}}<{{.}}>{{end}}', "<a=b>"),
    ("{{json .Names}}", '"c1"'),
]


@pytest.mark.parametrize("template,expected", ROW_CASES)
def test_row_methods(template: str, expected: str) -> None:
    assert GoTemplate(template, strict=True, type_name=PS_TYPE).execute(ROW) == expected


ROW_ERRORS = [
    ("{{.Bogus}}", f'template: :1:2: executing "" at <.Bogus>: can\'t evaluate field Bogus in type {PS_TYPE}'),
    ("a\n{{.Nope}}", f'template: :2:2: executing "" at <.Nope>: can\'t evaluate field Nope in type {PS_TYPE}'),
    ("{{.Label}}", 'template: :1:2: executing "" at <.Label>: wrong number of args for Label: want 1 got 0'),
    ('{{.Labels "a"}}', 'template: :1:2: executing "" at <.Labels>: wrong number of args for Labels: want 0 got 1'),
    ("{{.Names.Foo}}", 'template: :1:8: executing "" at <.Names.Foo>: can\'t evaluate field Foo in type string'),
]


@pytest.mark.parametrize("template,message", ROW_ERRORS)
def test_row_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as e:
        GoTemplate(template, strict=True, type_name=PS_TYPE).execute(ROW)
    assert e.value.message == message


def test_index_of_an_empty_string_is_reflects_panic() -> None:
    """docker ps runs --format on an empty container first: ``index .Names 0`` fails there."""
    with pytest.raises(TemplateError, match="error calling index: reflect: string index out of range"):
        GoTemplate("{{index .Names 0}}", strict=True).execute({"Names": ""})


# ---- render_rows: Docker's formatter --------------------------------------------------

PS_HEADERS = {"Names": "NAMES", "State": "STATE", "Labels": "LABELS", "Command": "COMMAND"}


def test_table_header_runs_the_template_over_the_headers() -> None:
    rows = [dict(ROW)]
    assert fmt.render_rows('table {{.Names}}\\t{{.Label "com.x.my-key_z"}}\\t{{.State}}', rows, PS_HEADERS) == (
        "NAMES     my key z   STATE\nc1                   created\n")
    assert fmt.render_rows("table {{json .Names}}\\t{{upper .Names}}", rows, PS_HEADERS) == (
        'NAMES     NAMES\n"c1"      C1\n')
    assert fmt.render_rows("table {{.Names}}{{if .Names}}Y{{end}}", rows, PS_HEADERS) == "NAMESY\nc1Y\n"
    # an unknown field in the header map is <no value> (the rows would fail; here there are none)
    assert fmt.render_rows("table {{.Names}}{{.Nope}}", [], PS_HEADERS) == "NAMES<no value>\n"


def test_plain_format_is_trimmed_of_spaces_and_json_rows_skip_methods() -> None:
    rows = [dict(ROW)]
    assert fmt.render_rows("  {{.Names}}  ", rows, PS_HEADERS) == "c1\n"
    assert fmt.render_rows("json", rows, PS_HEADERS) == '{"Labels":"a=b","Names":"c1","State":"created"}\n'
    assert fmt.render_rows("{{json .}}", rows, PS_HEADERS) == '{"Labels":"a=b","Names":"c1","State":"created"}\n'


def test_render_rows_errors_carry_dockers_prefixes_and_type() -> None:
    with pytest.raises(fmt.TemplateError) as e:
        fmt.render_rows("{{.Bogus}}", [dict(ROW)], PS_HEADERS)
    assert e.value.message == ('template parsing error: template: :1:2: executing "" at <.Bogus>: '
                               "can't evaluate field Bogus in type *formatter.ContainerContext")
    assert e.value.exit_code == 1
    with pytest.raises(fmt.TemplateError) as e:
        fmt.render_rows("{{nosuch}}", [], PS_HEADERS)
    assert e.value.message == 'template parsing error: template: :1: function "nosuch" not defined'
    assert e.value.exit_code == 1


def test_ps_probe_fails_even_without_rows() -> None:
    probe = dict.fromkeys(PS_HEADERS, "") | {"Label": lambda name: ""}
    with pytest.raises(fmt.TemplateError) as e:
        fmt.render_rows("{{.Bogus}}", [], PS_HEADERS, probe=probe)
    assert e.value.message == ('failed to execute template: template: :1:2: executing "" at <.Bogus>: '
                               "can't evaluate field Bogus in type *formatter.ContainerContext")
    with pytest.raises(fmt.TemplateError) as e:
        fmt.render_rows("{{range}}{{end}}", [], PS_HEADERS, probe=probe)
    assert e.value.message == "failed to parse template: template: :1: missing value for range"
    assert e.value.exit_code == 1


def test_inspect_template_parse_error_exits_64() -> None:
    with pytest.raises(fmt.TemplateError) as e:
        fmt.Template("{{nosuch .}}")
    assert e.value.message == 'template parsing error: template: :1: function "nosuch" not defined'
    assert e.value.exit_code == 64
    with pytest.raises(fmt.TemplateError) as e:
        fmt.Template("{{.Bogus}}").render(C1)
    assert e.value.exit_code == 1


def test_render_inspected_goes_on_past_errors() -> None:
    errors: list[Any] = []
    out = fmt.render_inspected([{"Path": "x"}, {"Name": "y"}], fmt.Template("{{.Name}}"), errors)
    assert out == "y\n"
    assert [e.message for e in errors] == [
        'template parsing error: template: :1:2: executing "" at <.Name>: map has no entry for key "Name"']
    assert fmt.render_inspected([], fmt.Template("{{.Name}}"), []) == "\n"


def test_fields_used() -> None:
    assert fmt.Template("{{.Names}} {{if .Size}}{{.Size}}{{end}} {{$.ID}}").fields_used() == {"Names", "Size"}


# ---- Go's formatting of values ---------------------------------------------------------

@pytest.mark.parametrize("value,expected", [
    (1e6, "1e+06"), (1.5, "1.5"), (123456.0, "123456"), (1234567.0, "1.234567e+06"), (0.0001, "0.0001"),
    (0.00001, "1e-05"), (100.0, "100"), (-2.5, "-2.5"), (1e21, "1e+21"),
])
def test_go_float(value: float, expected: str) -> None:
    assert go_float(value) == expected


@pytest.mark.parametrize("value,expected", [
    (None, "<nil>"), (True, "true"), ([1, "a", None], "[1 a <nil>]"), ({"b": 1, "a": [2]}, "map[a:[2] b:1]"),
    ({"Name": "no", "Max": 0}, "{no 0}"), ([{"k": "v"}], "[map[k:v]]"),
])
def test_go_value(value: Any, expected: str) -> None:
    assert go_value(value) == expected


@pytest.mark.parametrize("args,expected", [
    (("%s", "x"), "x"), (("%5s|%-5s|", "a", "b"), "    a|b    |"), (("%d", 42), "42"), (("%+d", 3), "+3"),
    (("%x %X %o %b", 255, 255, 8, 5), "ff FF 10 101"), (("%#x", 255), "0xff"), (("%q", "a\"b"), '"a\\"b"'),
    (("%v", [1, 2]), "[1 2]"), (("%t", True), "true"), (("%.2f", 2.0), "2.00"), (("%c", 65), "A"),
    (("%s", 1), "%!s(int=1)"), (("%.1s", "abc"), "a"), (("%05d", -42), "-0042"),
])
def test_sprintf(args: tuple, expected: str) -> None:
    assert sprintf(*args) == expected
