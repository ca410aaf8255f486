"""``images``, ``tag``, ``rmi``, ``image prune``, ``history``, ``inspect`` and ``system df``
on a real store: what the user sees, and what is left on disk."""

from __future__ import annotations

import json
import os
import re
import tarfile
from pathlib import Path

import pytest

from dockyard import config
from dockyard.cli.formatting import human_size
from dockyard.engine import Engine
from dockyard.testing.images import ImageSpec, write_oci_layout

pytestmark = pytest.mark.integration

HEX64 = re.compile(r"^sha256:[0-9a-f]{64}$")


# ---- helpers ----------------------------------------------------------------------------

class open_engine:
    """An in-process engine on the test's root (to look at the store), closed afterwards."""

    def __init__(self, root: Path) -> None:
        self.engine = Engine(config.load(root))

    def __enter__(self) -> Engine:
        return self.engine

    def __exit__(self, *exc) -> None:
        self.engine.close()


def inspect(run_cli, name: str) -> dict:
    return json.loads(run_cli("image", "inspect", name, check=True).stdout)[0]


def rows(run_cli, *args: str) -> list[list[str]]:
    """``images`` table rows (header dropped), split on runs of 2+ spaces."""
    out = run_cli("images", *args, check=True).stdout.splitlines()
    return [re.split(r"\s{2,}", line.strip()) for line in out[1:]]


def blobs(root: Path) -> set[str]:
    d = root / "content" / "blobs" / "sha256"
    return {f"sha256:{n}" for n in os.listdir(d)} if d.exists() else set()


def layer_dirs(root: Path) -> set[str]:
    d = root / "layers"
    return {n for n in os.listdir(d) if n not in ("tmp", "locks")} if d.exists() else set()


def tar_dir(src: Path, out: Path) -> Path:
    with tarfile.open(out, "w") as tar:
        for path in sorted(src.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(src)), recursive=False)
    return out


@pytest.fixture
def busybox(run_cli, busybox_tar: Path) -> str:
    """busybox:latest imported with CMD sh; returns its image ID."""
    return run_cli("import", "-c", 'CMD ["sh"]', busybox_tar, "busybox", check=True).stdout.strip()


@pytest.fixture
def two_layer_archive(busybox_tar: Path, tmp_path: Path) -> Path:
    """An OCI layout tar of an image whose first layer is the busybox tar (so it shares the
    imported busybox's base layer) plus one small layer, named app:1."""
    extra_dir = tmp_path / "extra"
    (extra_dir / "app").mkdir(parents=True)
    (extra_dir / "app" / "hello.txt").write_text("hello\n" * 1000)
    extra = tmp_path / "extra.tar"
    with tarfile.open(extra, "w") as tar:
        tar.add(extra_dir / "app", arcname="app")
    layout = tmp_path / "layout"
    write_oci_layout(layout, [ImageSpec([busybox_tar, extra], cmd=["sh"])], tag="app:1")
    return tar_dir(layout, tmp_path / "app.tar")


# ---- images -------------------------------------------------------------------------------

def test_images_table_quiet_no_trunc_and_dangling(run_cli, busybox: str, busybox_tar: Path) -> None:
    run_cli("tag", "busybox", "busybox:v1", check=True)
    untagged = run_cli("import", busybox_tar, check=True).stdout.strip()
    size = human_size(inspect(run_cli, "busybox")["Size"], 3)

    table = run_cli("images", check=True).stdout.splitlines()
    assert re.split(r"\s{2,}", table[0]) == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    got = {(r[0], r[1], r[2], r[4]) for r in rows(run_cli)}
    assert got == {
        ("busybox", "latest", busybox[7:19], size),
        ("busybox", "v1", busybox[7:19], size),
        ("<none>", "<none>", untagged[7:19], size),
    }
    assert all(r[3].endswith("ago") for r in rows(run_cli))

    quiet = run_cli("images", "-q", check=True).stdout.split()
    assert sorted(quiet) == sorted([busybox[7:19], untagged[7:19]])  # unique IDs
    assert sorted(run_cli("images", "-q", "--no-trunc", check=True).stdout.split()) == sorted([busybox, untagged])
    assert {r[2] for r in rows(run_cli, "--no-trunc")} == {busybox, untagged}

    assert [r[:2] for r in rows(run_cli, "--filter", "dangling=true")] == [["<none>", "<none>"]]
    assert sorted(r[1] for r in rows(run_cli, "-f", "dangling=false")) == ["latest", "v1"]
    assert [r[:2] for r in rows(run_cli, "busybox:v1")] == [["busybox", "v1"]]
    assert sorted(r[1] for r in rows(run_cli, "busybox")) == ["latest", "v1"]
    assert rows(run_cli, "nothing") == []


def test_images_reference_filters(run_cli, busybox: str) -> None:
    run_cli("tag", "busybox", "busybox:v1", check=True)
    run_cli("tag", "busybox", "127.0.0.1:5000/tools/bb:v1", check=True)
    names = lambda *a: sorted(f"{r[0]}:{r[1]}" for r in rows(run_cli, *a))  # noqa: E731
    assert names("--filter", "reference=busy*") == ["busybox:latest", "busybox:v1"]
    assert names("--filter", "reference=*:v1") == ["busybox:v1"]
    assert names("--filter", "reference=*/*/*:v1") == ["127.0.0.1:5000/tools/bb:v1"]
    assert names("--filter", "reference=busybox", "--filter", "reference=127.0.0.1:5000/tools/bb") == [
        "127.0.0.1:5000/tools/bb:v1", "busybox:latest", "busybox:v1"]
    bad = run_cli("images", "--filter", "colour=red")
    assert (bad.returncode, bad.stderr) == (1, "Error: invalid filter 'colour'\n")
    bad = run_cli("images", "--filter", "dangling=maybe")
    assert (bad.returncode, bad.stderr) == (1, "Error: invalid filter 'dangling=maybe'\n")


def test_images_format_json_and_template(run_cli, busybox: str) -> None:
    lines = run_cli("images", "--format", "json", check=True).stdout.splitlines()
    assert len(lines) == 1
    row = json.loads(lines[0])
    assert row["Repository"] == "busybox" and row["Tag"] == "latest"
    assert row["ID"] == busybox[7:19] and row["Digest"] == "<none>"
    assert row["Size"] == human_size(inspect(run_cli, "busybox")["Size"], 3)
    assert row["CreatedSince"].endswith("ago") and row["CreatedAt"]
    assert list(row) == sorted(row)
    assert "\\u003cnone\\u003e" in lines[0]  # Go's JSON escaping, as `docker images --format json`

    out = run_cli("images", "--format", "{{.Repository}}:{{.Tag}}", check=True).stdout
    assert out == "busybox:latest\n"
    out = run_cli("images", "--format", "table {{.Repository}}\\t{{.ID}}", check=True).stdout
    assert out.splitlines() == ["REPOSITORY   IMAGE ID", f"busybox      {busybox[7:19]}"]
    bad = run_cli("images", "--format", "{{.Colour}}")
    assert bad.returncode == 1 and "can't evaluate field Colour" in bad.stderr


def test_images_digests(run_cli, busybox: str, dockyard_root: Path) -> None:
    with open_engine(dockyard_root) as engine:
        image = engine.image_store.lookup("busybox")
        engine.image_store.add(image, repo_digest=("docker.io/library/busybox", image.manifest_digest))
    table = run_cli("images", "--digests", check=True).stdout.splitlines()
    assert re.split(r"\s{2,}", table[0]) == ["REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "CREATED", "SIZE"]
    assert [r[:4] for r in rows(run_cli, "--digests")] == [["busybox", "latest", image.manifest_digest, busybox[7:19]]]
    assert [r[:3] for r in rows(run_cli)] == [["busybox", "latest", busybox[7:19]]]
    assert inspect(run_cli, "busybox")["RepoDigests"] == [f"busybox@{image.manifest_digest}"]
    # by that digest the image is found too
    assert inspect(run_cli, f"busybox@{image.manifest_digest}")["Id"] == busybox


# ---- tag ------------------------------------------------------------------------------------

def test_tag_by_name_id_and_prefix(run_cli, busybox: str) -> None:
    assert run_cli("tag", "busybox", "127.0.0.1:5000/app", check=True).stdout == ""
    run_cli("tag", busybox, "by-id:1", check=True)
    run_cli("tag", busybox[7:15], "by-prefix", check=True)
    assert sorted(inspect(run_cli, "busybox")["RepoTags"]) == [
        "127.0.0.1:5000/app:latest", "busybox:latest", "by-id:1", "by-prefix:latest"]


def test_tag_moves_between_images(run_cli, busybox: str, busybox_tar: Path) -> None:
    second = run_cli("import", "-c", "USER nobody", busybox_tar, check=True).stdout.strip()
    run_cli("tag", second, "busybox", check=True)
    assert inspect(run_cli, "busybox")["Id"] == second
    assert inspect(run_cli, busybox)["RepoTags"] == []


@pytest.mark.parametrize("source,target,message", [
    ("nope", "x", "Error: No such image: nope"),
    ("busybox", "x@sha256:" + "0" * 64, "Error: refusing to create a tag with a digest reference"),
    ("busybox", "UPPER", 'Error: invalid reference "UPPER": repository name must be lowercase'),
])
def test_tag_errors(run_cli, busybox: str, source: str, target: str, message: str) -> None:
    result = run_cli("tag", source, target)
    assert (result.returncode, result.stderr) == (1, message + "\n")


# ---- rmi ------------------------------------------------------------------------------------

def test_rmi_untags_then_deletes_layers_and_blobs(run_cli, busybox: str, dockyard_root: Path) -> None:
    run_cli("tag", "busybox", "busybox:v1", check=True)
    layer = inspect(run_cli, "busybox")["RootFS"]["Layers"][0]
    assert blobs(dockyard_root) and layer_dirs(dockyard_root) == {layer[7:]}

    result = run_cli("rmi", "busybox:v1", check=True)
    assert result.stdout == "Untagged: busybox:v1\n"
    assert inspect(run_cli, busybox)["RepoTags"] == ["busybox:latest"]

    result = run_cli("rmi", "busybox", check=True)
    assert result.stdout == f"Untagged: busybox:latest\nDeleted: {busybox}\nDeleted: {layer}\n"
    assert run_cli("images", "-q", check=True).stdout == ""
    assert blobs(dockyard_root) == set()
    assert layer_dirs(dockyard_root) == set()


def test_rmi_by_id_with_several_tags_needs_force(run_cli, busybox: str) -> None:
    run_cli("tag", "busybox", "other:1", check=True)
    result = run_cli("rmi", busybox[7:19])
    assert result.returncode == 1
    assert result.stderr == (f"Error: conflict: unable to delete {busybox[7:19]} (must be forced) - "
                             "image is referenced in multiple repositories\n")
    assert sorted(inspect(run_cli, busybox)["RepoTags"]) == ["busybox:latest", "other:1"]

    result = run_cli("rmi", "-f", busybox[7:19], check=True)
    lines = result.stdout.splitlines()
    assert sorted(lines[:2]) == ["Untagged: busybox:latest", "Untagged: other:1"]
    assert lines[2] == f"Deleted: {busybox}"
    assert run_cli("images", "-q", check=True).stdout == ""


def test_rmi_by_id_with_one_tag_deletes(run_cli, busybox: str) -> None:
    result = run_cli("rmi", busybox, check=True)
    assert result.stdout.splitlines()[:2] == ["Untagged: busybox:latest", f"Deleted: {busybox}"]


def test_rmi_unknown_and_partial_failure(run_cli, busybox: str) -> None:
    result = run_cli("rmi", "x")
    assert (result.returncode, result.stdout, result.stderr) == (1, "", "Error: No such image: x\n")
    result = run_cli("rmi", "nope", "busybox")
    assert result.returncode == 1
    assert result.stderr == "Error: No such image: nope\n"
    assert result.stdout.startswith("Untagged: busybox:latest\nDeleted: ")


def test_rmi_keeps_layers_and_blobs_another_image_uses(run_cli, busybox: str, two_layer_archive: Path,
                                                       dockyard_root: Path) -> None:
    run_cli("load", "-i", two_layer_archive, check=True)
    app = inspect(run_cli, "app:1")
    base = inspect(run_cli, "busybox")["RootFS"]["Layers"][0]
    assert app["RootFS"]["Layers"][0] == base
    with open_engine(dockyard_root) as engine:
        busybox_blobs = _image_blobs(engine, "busybox")
        app_blobs = _image_blobs(engine, "app:1")

    run_cli("rmi", "app:1", check=True)
    assert layer_dirs(dockyard_root) == {base[7:]}  # the shared base stays, the top went
    assert blobs(dockyard_root) == busybox_blobs
    assert not (app_blobs - busybox_blobs) & blobs(dockyard_root)
    # busybox is intact: it saves (which reads every layer) and its layer is unpacked
    assert run_cli("history", "busybox", check=True).returncode == 0

    run_cli("rmi", "busybox", check=True)
    assert blobs(dockyard_root) == set() and layer_dirs(dockyard_root) == set()


def _image_blobs(engine: Engine, name: str) -> set[str]:
    image = engine.image_store.lookup(name)
    manifest = engine.image_store.manifest(image)
    return {image.id, image.manifest_digest} | {layer["digest"] for layer in manifest["layers"]}


# ---- prune ----------------------------------------------------------------------------------

def test_prune_dangling_asks_then_removes(run_cli, busybox: str, busybox_tar: Path, dockyard_root: Path) -> None:
    dangling = run_cli("import", "-c", "USER nobody", busybox_tar, check=True).stdout.strip()

    declined = run_cli("image", "prune", input="n\n", check=True)
    assert declined.stdout == ("WARNING! This will remove all dangling images.\n"
                               "Are you sure you want to continue? [y/N] ")
    assert len(run_cli("images", "-q", check=True).stdout.split()) == 2

    result = run_cli("image", "prune", input="y\n", check=True)
    body = result.stdout.split("[y/N] ", 1)[1]
    assert body.startswith(f"Deleted Images:\ndeleted: {dangling}\n")
    assert body.endswith("\nTotal reclaimed space: 0B\n")  # its layer is busybox's: still used
    assert run_cli("images", "-q", "--no-trunc", check=True).stdout.split() == [busybox]

    result = run_cli("image", "prune", "-f", check=True)
    assert result.stdout == "Total reclaimed space: 0B\n"


def test_prune_all(run_cli, busybox: str, dockyard_root: Path) -> None:
    size = inspect(run_cli, "busybox")["Size"]
    run_cli("tag", "busybox", "busybox:v1", check=True)
    result = run_cli("image", "prune", "-a", "-f", check=True)
    lines = result.stdout.splitlines()
    assert lines[0] == "Deleted Images:"
    assert sorted(lines[1:3]) == ["untagged: busybox:latest", "untagged: busybox:v1"]
    assert lines[3] == f"deleted: {busybox}"
    assert lines[-2:] == ["", f"Total reclaimed space: {human_size(size)}"]
    assert run_cli("images", "-q", check=True).stdout == ""
    assert blobs(dockyard_root) == set()

    warning = run_cli("image", "prune", "-a", input="\n", check=True).stdout
    assert warning.startswith("WARNING! This will remove all images without at least one container associated to them.")


# ---- history, inspect -----------------------------------------------------------------------

def test_history(run_cli, busybox: str, two_layer_archive: Path) -> None:
    lines = run_cli("history", "busybox", check=True).stdout.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
    cells = re.split(r"\s{2,}", lines[1])  # an import has no CREATED BY, as in Docker: its words are the COMMENT
    assert cells[0] == busybox[7:19] and cells[2:] == [human_size(inspect(run_cli, "busybox")["Size"], 3), "Imported from -"]

    run_cli("load", "-i", two_layer_archive, check=True)
    app = inspect(run_cli, "app:1")
    table = [re.split(r"\s{2,}", line) for line in run_cli("history", "app:1", check=True).stdout.splitlines()[1:]]
    assert [r[0] for r in table] == [app["Id"][7:19], "<missing>"]
    assert [r[2] for r in table] == ["dockyard.testing layer 1", "dockyard.testing layer 0"]
    assert run_cli("history", "-q", "app:1", check=True).stdout.split() == [app["Id"][7:19], "<missing>"]
    assert run_cli("history", "-q", "--no-trunc", "app:1", check=True).stdout.split()[0] == app["Id"]

    entries = [json.loads(line) for line in run_cli("history", "--format", "json", "app:1", check=True).stdout.splitlines()]
    assert sorted(entries[0]) == ["Comment", "CreatedAt", "CreatedBy", "CreatedSince", "ID", "Size"]
    assert entries[0]["CreatedAt"] == "2024-01-01T00:00:00Z" or entries[0]["CreatedAt"].startswith("2024-01-01T")
    assert entries[1]["Size"] == human_size(inspect(run_cli, "busybox")["Size"], 3)

    missing = run_cli("history", "nope")
    assert (missing.returncode, missing.stderr) == (1, "Error: No such image: nope\n")


def test_inspect_shapes_and_errors(run_cli, busybox: str) -> None:
    info = inspect(run_cli, "busybox")
    for key in ("Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "DockerVersion", "Author",
                "Config", "Architecture", "Os", "Size", "RootFS", "Metadata"):
        assert key in info
    assert HEX64.match(info["Id"])
    assert info["RootFS"]["Type"] == "layers" and all(HEX64.match(x) for x in info["RootFS"]["Layers"])
    assert info["Config"]["Cmd"] == ["sh"] and info["Config"]["Entrypoint"] is None
    assert info["Config"]["Hostname"] == "" and info["Config"]["Labels"] is None
    assert info["Metadata"]["LastTagTime"].endswith("Z")

    top = json.loads(run_cli("inspect", "busybox", check=True).stdout)
    assert top == [info]
    assert run_cli("inspect", "-f", "{{.Id}}", "busybox", check=True).stdout == busybox + "\n"
    assert run_cli("inspect", "--format", "{{.Config.Cmd}} {{.Config.Entrypoint}} {{.Os}}", busybox[7:19],
                   check=True).stdout == "[sh] [] linux\n"
    assert json.loads(run_cli("image", "inspect", "-f", "{{json .Config}}", "busybox", check=True).stdout) == info["Config"]

    missing = run_cli("inspect", "nope")
    assert (missing.returncode, missing.stdout, missing.stderr) == (1, "[]\n", "Error: No such object: nope\n")
    missing = run_cli("image", "inspect", "busybox", "nope")
    assert missing.returncode == 1 and missing.stderr == "Error: No such image: nope\n"
    assert json.loads(missing.stdout) == [info]


# ---- system df --------------------------------------------------------------------------------

def test_system_df_counts_shared_layers_once(run_cli, busybox: str, two_layer_archive: Path) -> None:
    run_cli("load", "-i", two_layer_archive, check=True)
    busybox_size = inspect(run_cli, "busybox")["Size"]
    app_size = inspect(run_cli, "app:1")["Size"]
    unique_total = app_size  # app holds busybox's layer plus its own

    lines = run_cli("system", "df", check=True).stdout.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert re.split(r"\s{2,}", lines[1]) == ["Images", "2", "0", human_size(unique_total),
                                             f"{human_size(unique_total)} (100%)"]
    assert human_size(unique_total) != human_size(busybox_size + app_size)
    assert [re.split(r"\s{2,}", line) for line in lines[2:]] == [
        ["Containers", "0", "0", "0B", "0B"], ["Local Volumes", "0", "0", "0B", "0B"],
        ["Build Cache", "0", "0", "0B", "0B"]]

    verbose = run_cli("system", "df", "-v", check=True).stdout
    assert verbose.startswith("Images space usage:\n\n")
    table = verbose.split("\n\n")[1].splitlines()
    assert re.split(r"\s{2,}", table[0]) == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE",
                                             "UNIQUE SIZE", "CONTAINERS"]
    by_repo = {r[0]: r for r in (re.split(r"\s{2,}", line) for line in table[1:])}
    assert by_repo["busybox"][5:8] == [human_size(busybox_size), "0B", "0"]
    assert by_repo["app"][5:8] == [human_size(busybox_size), human_size(app_size - busybox_size), "0"]
    assert "Containers space usage:" in verbose and "Build cache usage: 0B" in verbose


def test_system_df_empty(run_cli) -> None:
    lines = run_cli("system", "df", check=True).stdout.splitlines()
    assert re.split(r"\s{2,}", lines[1]) == ["Images", "0", "0", "0B", "0B"]


def test_images_imports_no_heavy_modules(run_cli, busybox: str) -> None:
    result = run_cli("images", env={"PYTHONPROFILEIMPORTTIME": "1"}, check=True)
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "aiohttp" not in imported and "rich.progress" not in imported and "rich" not in imported
