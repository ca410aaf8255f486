"""Go templates side by side with Docker 20.10: the same busybox and the same container
(``create --name c1 -l a=b -e X=1 busybox sleep 1``) in a private dockerd and in dockyard,
and the same templates run through ``inspect -f``, ``ps -a --format`` and ``images --format``.
Outputs are compared live, stdout, stderr and exit code; the templates print only fields
that do not differ by nature (no IDs, times or sizes)."""

from __future__ import annotations

import os
import sys
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from dockyard.testing import dockerd

CREATE = ("create", "--name", "c1", "-l", "a=b", "-e", "X=1", "busybox", "sleep", "1")

INSPECT = [
    "{{range .Config.Env}}{{.}};{{end}}",
    "{{if .State.Running}}up{{else}}down{{end}}",
    '{{if .State.Running}}up{{else if eq .State.Status "created"}}created{{else}}other{{end}}',
    "{{with .Config.Labels}}{{.a}}{{end}}",
    "{{with .Config.Labels.zz}}x{{else}}none{{end}}",
    '{{index .Config.Labels "a"}}',
    '[{{index .Config.Labels "nosuch"}}]',
    "{{.Config.Labels.nosuch}}",
    "{{len .Config.Env}} {{len .Name}}",
    '{{join .Config.Cmd ","}}',
    "{{json .Config.Cmd}}",
    "{{json .Config.Labels}}",
    '{{printf "%s|%5s|%-5s|%q|%d|%03d|%x" .Name "ab" "cd" .Path .State.Pid 7 "hi"}}',
    '{{eq .State.Status "created"}} {{eq .State.Status "running" "created"}} {{ne .Path "sh"}}',
    '{{and .State.Running "x"}}|{{or .State.Running "y"}}|{{not .State.Running}}',
    "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}}{{end}}",
    "{{range $i, $e := .Config.Cmd}}{{$i}}:{{$e}} {{end}}",
    '{{$n := .Name}}{{$n = printf "%s!" $n}}{{$n}} {{$.Path}}',
    '{{.Name | upper}} {{lower "ABC"}} {{title "hello world"}}',
    '{{split "a,b,c" ","}} {{index (split "a,b,c" ",") 1}}',
    '{{pad "x" 2 1}}|{{truncate .Path 3}}',
    '{{- " trimmed " -}}   {{- .Path}}',
    "{{/* a comment */}}{{.Path}}",
    '{{print .Path 1 2 "z"}}|{{println .Path}}',
    "{{slice .Name 1}} {{slice .Config.Cmd 0 1}}",
    "{{range .Mounts}}m{{else}}no mounts{{end}}",
    "{{.Config.Cmd}} {{.Config.Env}} {{.Config.Labels}}",
    '{{lt 1 2}} {{le 2 2}} {{gt "b" "a"}} {{ge 1 2}}',
    '{{range .Config.Env}}{{if eq . "X=1"}}{{break}}{{end}}{{.}}{{end}}done',
    "{{(index .Config.Cmd 0) | len}}",
    '{{html "<a&b>"}} {{js "it\'s"}} {{urlquery "a b&c"}}',
    "{{.State.Running}} {{.State.Pid}} {{.State.ExitCode}}",
    '{{define "t"}}[{{.}}]{{end}}{{template "t" .Path}}',
    '{{json "<a>&"}}',
    "{{json .State.Health}}",
    "{{.Config.Volumes}} {{.HostConfig.PortBindings}} {{.NetworkSettings.Ports}}",
]
INSPECT_ERRORS = [
    "{{.Bogus}}",
    "{{.State.Health.Status}}",
    "{{nosuch .}}",
    "{{range .Config.Env}}",
    "{{range}}{{end}}",
    "{{end}}",
    "{{.Path",
    "{{$x}}",
    "{{eq 1 1.0}}",
    "{{index .Config.Cmd 5}}",
    "{{len 3}}",
    "{{upper .State.Pid}}",
    "a\n{{.Nope}}",
    "{{.Config.Nope}}",
]
# Compared whether they succeed or fail: printf's verbs, nil and missing values, argument
# types, Docker's raw fallback (a template that fails on the typed struct runs on the JSON).
INSPECT_MORE = [
    '{{ .Name | len | printf "%03d" }}',
    '{{with $l := .Config.Labels}}{{range $k, $v := $l}}{{$k}}{{end}}{{end}}',
    '{{if and .Config.Env (not .State.Running)}}yes{{end}}',
    '{{if or (eq .State.Status "exited") (eq .State.Status "created")}}ok{{end}}',
    '{{.Config.Env | join ","}}',
    '{{index .Config.Env 0 | printf "%q"}}',
    '{{len (index .Config.Labels "a")}}',
    '{{range $i, $_ := .Config.Cmd}}{{$i}}{{end}}',
    '{{ $.Config.Labels.a }}',
    '{{if not .State.Running}}stopped{{end}}',
    '{{.Config.Labels | len}}',
    '{{ .Path | printf "%.3s" }}',
    '{{println}}|{{print}}|',
    '{{range .Config.Env}}{{.}}{{"\\n"}}{{end}}',
    '{{"a" | printf "%s-%s" "b"}}',
    '{{if eq (len .Config.Env) 1}}one{{end}}',
    '{{.State.Status | title}}',
    '{{range $k, $v := .Config.Labels}}{{if eq $k "a"}}{{$v}}{{end}}{{end}}',
    '{{- range .Config.Env }} {{ . }} {{- end }}',
    '{{with .State}}{{.Status}}{{end}}',
    '{{json .State.Status}} {{json .Config.Env}} {{json .State.Running}} {{json .State.Pid}}',
    '{{.RestartCount}} {{.Platform}}',
    '{{lower .State.Status | upper}}',
    '{{split .Name "/"}} {{index (split .Name "/") 1}} {{len (split "a,b,c" ",")}}',
    '{{slice "abcdef" 1 3}} {{eq .State.ExitCode 0}}',
    '{{printf "%s" .Config.Env}} {{printf "%q" .Config.Cmd}} {{printf "%v" .Config.Labels}}',
    '{{printf "%5.1f|%t|%-10s|" 3.14159 .State.Running .Path}}',
    '{{printf "%x" .Config.Cmd}} {{printf "%d" .Config.Cmd}}',
    '{{printf "%s" .Config.Labels}} {{printf "%q" .Config.Labels}}',
    '{{printf "%v %s" nil nil}}',
    '{{printf "%d %s" true 1.5}}',
    '{{printf "%e %g %G %E" 1234.5678 0.000012 1e21 5.0}}',
    '{{printf "%8.3e|%+.2f|% d|%x" 1234.5678 2.5 5 -255}}',
    '{{printf "%c%c" 72 105}} {{printf "%U" 65}}',
    '{{printf "%*d|%-*d|" 5 1 4 2}}',
    '{{printf "%[2]s %[1]s" "a" "b"}}',
    '{{printf "%v" .HostConfig.RestartPolicy}}',
    '{{.Config.Cmd | len | printf "%d args"}}',
    '{{index .Config.Labels "a" | len}}',
    '{{if .Config.Entrypoint}}ep{{else}}noep{{end}} {{.Config.Entrypoint}}',
    '{{range $i, $e := .Config.Env}}{{if $i}},{{end}}{{$e}}{{end}}',
    '{{$x := 0}}{{range .Config.Cmd}}{{$x = 1}}{{end}}{{$x}}',
    '{{printf "%v" (slice .Config.Cmd 1)}} {{slice .Config.Cmd 1 2 2}}',
    '{{and}}',
    '{{or 1}}',
    '{{not 1 2}}',
    '{{.Config.Labels.a.b}}',
    '{{index 1 0}}',
    '{{index .Config.Labels 1}}',
    '{{slice .Path 3 1}}',
    '{{.State.Status | eq "created"}}',
    '{{html .Config.Cmd}} {{urlquery .Config.Cmd}} {{js 1}}',
    '{{printf "%s"}}',
    '{{printf}}',
    '{{title 1}}',
    '{{truncate .Path "2"}}',
    '{{range .State}}{{.}}{{end}}',
    '{{range .Path}}{{.}}{{end}}',
    '{{template "nosuch"}}',
    '{{.Path.X}}',
    '{{$.Bogus}}',
    '{{with .Bogus}}x{{end}}',
    '{{if .Config.Labels.nosuch}}x{{else}}y{{end}}',
    '{{.Config.Labels.nosuch | len}}',
    '{{json .Config.Labels.nosuch}}',
    '{{printf "%v" .Config.Labels.nosuch}}',
    '{{else if}}',
    '{{if 1}}{{else}}{{else}}{{end}}',
    '{{with 1}}{{else with 2}}b{{end}}',
    '{{range .Config.Env}}{{end}}{{end}}',
    '{{"a" "b"}}',
    '{{.Path "x"}}',
    '{{$.Path | .Path}}',
    '{{- /* c */ -}} x',
    '{{/* unclosed',
    '{{ .Path }',
    '{{ .Path }}}',
    '{{(1)}} {{(.Path)}} {{((len .Path))}}',
    '{{1 | printf "%d"}}',
    '{{printf "%s" .State.Pid}}',
    '{{printf "%d" .State.Pid}} {{printf "%v" .State.Pid}} {{printf "%05.1f" 2.25}}',
    '{{and .State.Running .Bogus}}',
    '{{or 1 .Bogus}}',
    '{{and 1 (index .Config.Cmd 9)}}',
    '{{if and .State.Running (index .Config.Cmd 9)}}x{{end}}',
    '{{index . "Name"}}',
    '{{range $k, $v := .HostConfig.RestartPolicy}}{{$k}}={{$v}};{{end}}',
    '{{len .Config}}',
    '{{printf "%v" .Config.Healthcheck}}',
    '{{.State.Dead}} {{.State.OOMKilled}}',
]
IMAGE_INSPECT = [
    "{{.RepoTags}} {{.Config.Cmd}} {{.Os}} {{.Architecture}} {{json .RepoDigests}} {{.Config.Env}}",
    "{{.ContainerConfig.Cmd}} {{.Config.Entrypoint}} {{.Config.Volumes}} {{.Config.Labels}} {{.Comment}}",
    "{{range .RepoTags}}{{.}} {{end}}{{len .RootFS.Layers}} {{.RootFS.Type}}",
    # null maps and slices are Docker's nil ones: <no value>, "", null, [], 0, false
    '{{.Config.Labels.x}}|{{index .Config.Labels "x"}}|{{json .Config.Labels}}|{{json .Config.Entrypoint}}|'
    "{{.Config.Entrypoint}}|{{len .Config.Labels}}|{{if .Config.Labels}}y{{else}}n{{end}}|"
    '{{range .Config.Entrypoint}}x{{end}}|{{printf "%v" .Config.Labels}}',
    "{{.Bogus}}",
    "{{nosuch}}",
]
PS = [
    "{{.Names}} {{.Image}} {{.Command}} {{.State}}",
    "{{.Labels}}",
    '{{.Label "a"}}|{{.Label "zz"}}',
    "{{.Mounts}}|{{.LocalVolumes}}",
    'table {{.Names}}\\t{{.Label "a"}}',
    'table {{.Names}}\\t{{.Label "com.x.my-key_z"}}\\t{{.State}}',
    "table {{json .Names}}\\t{{upper .Names}}",
    "{{json .Labels}}",
    '{{if eq .State "created"}}new{{end}} {{.Names | printf "%q"}}',
    "  {{.Names}}  ",
    "table {{.Names}}{{if .Names}}Y{{end}}",
    '{{range split .Labels ","}}<{{.}}>{{end}}',
]
PS_ERRORS = [
    "{{.Bogus}}",
    "{{nosuch}}",
    "{{range}}{{end}}",
    "{{.Label}}",
    '{{.Labels "a"}}',
    "{{.Names.Foo}}",
    "{{index .Names 0}}",
    "a\n{{.Nope}}",
    "{{range $k,$v := .Labels}}{{$k}}{{end}}",
    "{{.Names",
]
IMAGES = [
    "{{.Repository}}:{{.Tag}}",
    "table {{.Repository}}\\t{{.Tag}}",
    "{{.Repository | upper}} {{len .Tag}}",
    '{{if eq .Tag "latest"}}L{{end}}',
    "{{json .Repository}}",
]
IMAGES_ERRORS = ['{{.Label "a"}}', "{{.Bogus}}", "{{nosuch}}"]

CASES = ([("inspect", t) for t in INSPECT + INSPECT_ERRORS + INSPECT_MORE]
         + [("image inspect", t) for t in IMAGE_INSPECT] + [("ps", t) for t in PS + PS_ERRORS]
         + [("images", t) for t in IMAGES + IMAGES_ERRORS])
ERRORS = set(INSPECT_ERRORS + PS_ERRORS + IMAGES_ERRORS)


def _args(command: str, template: str) -> list[str]:
    return {"inspect": ["inspect", "-f", template, "c1"], "ps": ["ps", "-a", "--format", template],
            "image inspect": ["image", "inspect", "-f", template, "busybox"],
            "images": ["images", "--format", template]}[command]


# ---- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docker(busybox_tar: Path) -> Iterator[dockerd.PrivateDockerd]:
    if not dockerd.available():
        pytest.skip("needs root and Debian's docker.io (/usr/bin/docker, /usr/sbin/dockerd) to compare with")
    with dockerd.PrivateDockerd() as d:
        d.cli("import", "--change", 'CMD ["sh"]', str(busybox_tar), "busybox")
        d.cli(*CREATE)
        yield d


@pytest.fixture(scope="module")
def dy_env(busybox_tar: Path) -> Iterator[dict[str, str]]:
    """One dockyard root for the module with the same image and container (the templates
    only read), given to ``run_cli`` as its environment."""
    base = Path(tempfile.mkdtemp(prefix="dockyard-fmt-"))
    env = {"DOCKYARD_ROOT": str(base / "root"), "DOCKYARD_RUNROOT": str(base / "run"),
           "DOCKER_CONFIG": str(base / "docker-config")}
    for path in env.values():
        os.makedirs(path)
    full = {**os.environ, **env}

    def dy(*args: str) -> None:
        result = subprocess.run([sys.executable, "-m", "dockyard", *args], env=full, capture_output=True,
                                text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, f"dockyard {' '.join(args)}: {result.stderr}"

    try:
        dy("import", "--change", 'CMD ["sh"]', str(busybox_tar), "busybox")
        dy(*CREATE)
        yield env
    finally:
        subprocess.run([sys.executable, "-m", "dockyard", "rm", "-f", "c1"], env=full, capture_output=True,
                       timeout=120, stdin=subprocess.DEVNULL)
        for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
            point = line.split()[4]
            if point.startswith(str(base) + "/"):
                subprocess.run(["umount", "-l", point], check=False)
        shutil.rmtree(base, ignore_errors=True)


# ---- the comparison -----------------------------------------------------------------------


@pytest.mark.parametrize("command,template", CASES, ids=[f"{c}:{t}" for c, t in CASES])
def test_template_like_docker(command: str, template: str, docker: dockerd.PrivateDockerd,
                              dy_env: dict[str, str], run_cli: Callable[..., Any]) -> None:
    theirs = docker.run(*_args(command, template))
    ours = run_cli(*_args(command, template), env=dy_env)
    if template in ERRORS:
        assert theirs.returncode != 0, f"docker accepted {template!r}: {theirs.stdout!r}"
    # template errors print bare, as docker prints them: stdout, stderr and the exit code are docker's
    assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)


def test_ps_template_errors_come_without_containers(docker: dockerd.PrivateDockerd, dy_env: dict[str, str],
                                                    run_cli: Callable[..., Any]) -> None:
    """docker ps runs --format on an empty container first: a bad field fails with no container
    listed (c1 is not running, so plain ``ps`` lists none)."""
    for template in ("{{.Bogus}}", "{{nosuch}}"):
        theirs = docker.run("ps", "--format", template)
        ours = run_cli("ps", "--format", template, env=dy_env)
        assert theirs.returncode == 1 and theirs.stdout == ""
        assert (ours.returncode, ours.stdout, ours.stderr) == (1, "", theirs.stderr)


@pytest.mark.parametrize("args", [
    ("inspect", "-f", "{{.State.Status}}", "busybox", "c1"),  # the image has no State: c1 still prints
    ("inspect", "-f", "{{.Name}}", "nosuch"),                 # nothing printed: a lone newline
    ("image", "inspect", "-f", "{{.Nope}}", "busybox"),
])
def test_inspect_goes_on_past_a_template_error(args: tuple[str, ...], docker: dockerd.PrivateDockerd,
                                               dy_env: dict[str, str], run_cli: Callable[..., Any]) -> None:
    theirs = docker.run(*args)
    ours = run_cli(*args, env=dy_env)
    assert theirs.returncode == 1
    assert (ours.returncode, ours.stdout, ours.stderr) == (1, theirs.stdout, theirs.stderr)


@pytest.mark.parametrize("args", [("network", "ls"), ("history", "busybox"), ("system", "df")])
def test_other_formatters_name_their_context(args: tuple[str, ...], docker: dockerd.PrivateDockerd,
                                             dy_env: dict[str, str], run_cli: Callable[..., Any]) -> None:
    theirs = docker.run(*args, "--format", "{{.Bogus}}")
    ours = run_cli(*args, "--format", "{{.Bogus}}", env=dy_env)
    assert theirs.returncode == 1
    assert (ours.returncode, ours.stderr) == (1, theirs.stderr)


def test_volume_ls_label_method(docker: dockerd.PrivateDockerd, dy_env: dict[str, str],
                                run_cli: Callable[..., Any]) -> None:
    """``volume ls`` rows have Docker's ``Label`` method too (its header: the key's last part)."""
    docker.cli("volume", "create", "--label", "com.x.my-key=b", "vlab")
    try:
        run_cli("volume", "create", "--label", "com.x.my-key=b", "vlab", env=dy_env, check=True)
        try:
            for template in ('{{.Name}} {{.Labels}} {{.Label "com.x.my-key"}}|{{.Label "zz"}}',
                             'table {{.Name}}\\t{{.Label "com.x.my-key"}}', "{{.Label}}"):
                theirs = docker.run("volume", "ls", "--format", template)
                ours = run_cli("volume", "ls", "--format", template, env=dy_env)
                assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)
        finally:
            run_cli("volume", "rm", "vlab", env=dy_env)
    finally:
        docker.run("volume", "rm", "vlab")
