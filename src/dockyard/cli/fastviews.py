"""The fast path for everyday commands beyond ``fastpath.py``'s container verbs: ``inspect``,
``top``, ``port``, ``tag``, ``rmi`` and the volume/network listings, with their group spellings
(``container inspect``, ``image rm``, ``volume ls`` ...). Parsed by ``fastpath.parse_args`` (the
same click-compatible rules), run by the click-free bodies in ``quick.py``; anything not plain
goes to click. ``tests/integration/test_containers_fastpath.py`` holds these tables to the
click commands.
"""

from __future__ import annotations

from dockyard.cli.fastpath import BOOL, FLAG, MULTI, OFF, Fallback, Spec, _o, parse_args

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

_FORMAT = _o("-f --format", "format_")
# command path -> (spec, positionals: (at least, at most or None), body name in quick.py)
VIEWS: "dict[str, tuple[Spec, tuple[int, int | None], str]]" = {
    "inspect": (Spec([_FORMAT, _o("-s --size", "size", FLAG),
                      _o("--type", "type_", ("container", "image", "volume", "network"))], True), (1, None), "inspect"),
    "container inspect": (Spec([_FORMAT, _o("-s --size", "size", FLAG)], True), (1, None), "container_inspect"),
    "image inspect": (Spec([_FORMAT], True), (1, None), "image_inspect"),
    "volume inspect": (Spec([_FORMAT], True), (1, None), "volume_inspect"),
    "network inspect": (Spec([_FORMAT, _o("-v --verbose", "verbose", FLAG)], True), (1, None), "network_inspect"),
    "volume ls": (Spec([_o("-f --filter", "filters", MULTI), _o("--format", "format_"),
                        _o("-q --quiet", "quiet", FLAG)], True), (0, 0), "volume_ls"),
    "network ls": (Spec([_o("-f --filter", "filters", MULTI), _o("--format", "format_"),
                         _o("--no-trunc", "no_trunc", FLAG), _o("-q --quiet", "quiet", FLAG)], True), (0, 0),
                   "network_ls"),
    "top": (Spec([], False), (1, None), "top"),
    "port": (Spec([], True), (1, 2), "port"),
    "tag": (Spec([], True), (2, 2), "tag"),
    "images": (Spec([_o("-a --all", "all_", FLAG), _o("--digests", "digests", FLAG), _o("-f --filter", "filters", MULTI),
                     _o("--format", "format_"), _o("--no-trunc", "no_trunc", FLAG), _o("-q --quiet", "quiet", FLAG)],
                    True), (0, 1), "images"),
    "history": (Spec([_o("--format", "format_"), _o("-H --human", "human", BOOL, True), _o("--no-trunc", "no_trunc", FLAG),
                      _o("-q --quiet", "quiet", FLAG)], True), (1, 1), "history"),
    "version": (Spec([_FORMAT], True), (0, 0), "version"),
    "info": (Spec([_FORMAT], True), (0, 0), "info"),
    "events": (Spec([_o("-f --filter", "filters", MULTI), _o("--format", "format_"), _o("--since", "since"),
                     _o("--until", "until")], True), (0, 0), "events"),
    "stats": (Spec([_o("-a --all", "all_", FLAG), _o("--no-stream", "no_stream", FLAG),
                    _o("--no-trunc", "no_trunc", FLAG), _o("--format", "format_")], True), (0, None), "stats"),
    "rmi": (Spec([_o("-f --force", "force", FLAG), _o("--no-prune", "no_prune", FLAG)], True), (1, None), "rmi"),
    "kube play": (Spec([_o("--down", "down", FLAG), _o("--replace", "replace", FLAG), _o("--start", "start", FLAG, True),
                        _o("--no-start", "start", OFF, True)], True), (1, 1), "kube_play"),
    "kube down": (Spec([], True), (1, 1), "kube_down"),
}
ALIASES = {"system info": "info", "system events": "events", "image ls": "images", "image list": "images", "image history": "history", "container stats": "stats", "container top": "top", "container port": "port", "image tag": "tag", "image rm": "rmi",
           "image remove": "rmi", "volume list": "volume ls", "network list": "network ls"}
GROUPS = ("container", "image", "volume", "network", "system", "kube")


def parse(args: "list[str]") -> "Callable[[], None] | None":
    """The command to run for ``dockyard ARGS``, or None to leave it to click."""
    words = 2 if args[0] in GROUPS and len(args) > 1 else 1
    path = " ".join(args[:words])
    path = ALIASES.get(path, path)
    entry = VIEWS.get(path)
    if entry is None:
        return None
    spec, (least, most), body = entry
    try:
        values, positionals = parse_args(spec, args[words:])
    except Fallback:
        return None
    if len(positionals) < least or (most is not None and len(positionals) > most):
        return None
    if path == "events" and any(not f.partition("=")[0] or "=" not in f for f in values["filters"]):
        return None   # click's check words the usage error
    return lambda: globals()["_" + body](values, positionals)


def _engine() -> "Any":
    from dockyard.cli.fastpath import _engine as engine

    return engine()


def _quick() -> "Any":
    from dockyard.cli import quick

    return quick


def _inspect(v: "dict[str, Any]", names: "list[str]") -> None:
    _quick().inspect_objects(_engine(), names, v["format_"], v["type_"], size=v["size"])


def _container_inspect(v: "dict[str, Any]", names: "list[str]") -> None:
    _quick().inspect_objects(_engine(), names, v["format_"], "container", size=v["size"])


def _image_inspect(v: "dict[str, Any]", names: "list[str]") -> None:
    _quick().image_inspect(_engine(), names, v["format_"])


def _volume_inspect(v: "dict[str, Any]", names: "list[str]") -> None:
    _quick().volume_inspect(_engine(), names, v["format_"])


def _network_inspect(v: "dict[str, Any]", names: "list[str]") -> None:
    _quick().network_inspect(_engine(), names, v["format_"])


def _volume_ls(v: "dict[str, Any]", _: "list[str]") -> None:
    _quick().volume_ls(_engine(), v["filters"], v["format_"], v["quiet"])


def _network_ls(v: "dict[str, Any]", _: "list[str]") -> None:
    _quick().network_ls(_engine(), v["filters"], v["format_"], v["no_trunc"], v["quiet"])


def _top(v: "dict[str, Any]", args: "list[str]") -> None:
    _quick().top(_engine(), args[0], tuple(args[1:]))


def _port(v: "dict[str, Any]", args: "list[str]") -> None:
    _quick().port(_engine(), args[0], args[1] if len(args) > 1 else None)


def _tag(v: "dict[str, Any]", args: "list[str]") -> None:
    _quick().tag(_engine(), args[0], args[1])


def _images(v: "dict[str, Any]", args: "list[str]") -> None:
    from dockyard.cli import imageviews

    imageviews.images(_engine(), v["all_"], v["digests"], v["filters"], v["format_"], v["no_trunc"], v["quiet"],
                      args[0] if args else None)


def _history(v: "dict[str, Any]", args: "list[str]") -> None:
    from dockyard.cli import imageviews

    imageviews.history(_engine(), v["format_"], v["human"], v["no_trunc"], v["quiet"], args[0])


def _version(v: "dict[str, Any]", _: "list[str]") -> None:
    from dockyard.cli import infoviews

    infoviews.show_version(v["format_"])


def _info(v: "dict[str, Any]", _: "list[str]") -> None:
    from dockyard.cli import infoviews

    infoviews.show_info(_engine(), v["format_"], False)


def _events(v: "dict[str, Any]", _: "list[str]") -> None:
    from dockyard.cli import eventviews

    eventviews.show(_engine().root, v["filters"], v["format_"], v["since"], v["until"])


def _stats(v: "dict[str, Any]", names: "list[str]") -> None:
    _quick().stats(_engine(), v["all_"], v["no_stream"], v["no_trunc"], v["format_"], names)


def _rmi(v: "dict[str, Any]", names: "list[str]") -> None:
    _quick().rmi(_engine(), v["force"], v["no_prune"], names)


def _kube_play(v: "dict[str, Any]", args: "list[str]") -> None:
    from dockyard.cli import kubeops

    kubeops.play(_engine, args[0], v["down"], v["replace"], v["start"])


def _kube_down(v: "dict[str, Any]", args: "list[str]") -> None:
    from dockyard.cli import kubeops

    kubeops.play(_engine, args[0], True, False, True)
