"""Interpolation rules, as compose-go applies them (checked against Docker Compose v2)."""

from __future__ import annotations

import pytest

from dockyard.compose.errors import ComposeError
from dockyard.compose.interpolate import interpolate, substitute

ENV = {"A": "aa", "EMPTY": ""}

CASES = [
    ("$A", "aa"),
    ("${A}", "aa"),
    ("x${A}y", "xaay"),
    ("$A-b", "aa-b"),
    ("${UNSET:-d}", "d"),
    ("${EMPTY:-d}", "d"),
    ("${EMPTY-d}", ""),
    ("${UNSET-d}", "d"),
    ("${A:-d}", "aa"),
    ("${A:+r}", "r"),
    ("${EMPTY:+r}", ""),
    ("${EMPTY+r}", "r"),
    ("${UNSET+r}", ""),
    ("${A:?err}", "aa"),
    ("${EMPTY?err}", ""),
    ("${UNSET:-${A:-x}}", "aa"),
    ("${UNSET:-${UNSET2:-x}}", "x"),
    ("${UNSET:-x:y}", "x:y"),
    ("${UNSET:-a}}", "a}"),
    ("$$A", "$A"),
    ("${UNSET:-x$$y}", "x$y"),
    ("a $ b", "a $ b"),
    ("x $1 y", "x $1 y"),
    ("a$", "a$"),
    ("${UNSET:-}", ""),
]


@pytest.mark.parametrize(("template", "expected"), CASES)
def test_substitution(template: str, expected: str) -> None:
    assert substitute(template, ENV.get) == expected


def test_unset_variable_is_blank_with_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    assert substitute("${H1_TEST_NEVER_SET}", ENV.get) == ""
    assert 'The "H1_TEST_NEVER_SET" variable is not set. Defaulting to a blank string.' in capsys.readouterr().err


def test_unused_default_does_not_warn(capsys: pytest.CaptureFixture[str]) -> None:
    assert substitute("${A:-${H1_TEST_OTHER}}", ENV.get) == "aa"
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("${UNSET:?need it}", "required variable UNSET is missing a value: need it"),
        ("${UNSET?}", "required variable UNSET is missing a value"),
        ("${EMPTY:?must be set}", "required variable EMPTY is missing a value: must be set"),
        ("${A}${B", "invalid interpolation format"),
        ("${A:=d}", "invalid interpolation format"),
        ("${1A}", "invalid interpolation format"),
        ("${A :-d}", "invalid interpolation format"),
    ],
)
def test_errors(template: str, message: str) -> None:
    with pytest.raises(ComposeError, match=message.replace("$", r"\$").replace("{", r"\{")):
        substitute(template, ENV.get, where="services.web.image")


def test_document_values_not_keys_and_casts() -> None:
    doc = {"services": {"web": {"image": "${A}", "${A}": "x", "privileged": "${T:-true}",
                                "scale": "${N:-2}", "ports": ["${P:-80}"]}}}
    out = interpolate(doc, ENV.get)
    web = out["services"]["web"]
    assert web["image"] == "aa"
    assert "${A}" in web
    assert web["privileged"] is True
    assert web["scale"] == 2
    assert web["ports"] == ["80"]


def test_document_error_names_the_path() -> None:
    with pytest.raises(ComposeError, match=r"services\.web\.environment\[0\]: required variable X"):
        interpolate({"services": {"web": {"environment": ["${X:?}"]}}}, ENV.get)
