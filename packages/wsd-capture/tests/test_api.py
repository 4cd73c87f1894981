"""The public API: every documented name resolves, and `python -m wsd_capture` is the command."""

from __future__ import annotations

import runpy
import sys

import pytest

import wsd_capture


def test_every_public_name_resolves() -> None:
    assert dir(wsd_capture) == sorted(wsd_capture.__all__)
    for name in wsd_capture.__all__:
        assert getattr(wsd_capture, name) is not None


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'compile_sd15'"):
        _ = wsd_capture.compile_sd15


def test_python_dash_m_runs_the_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["wsd_capture", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("wsd_capture", run_name="__main__")
    assert exit_info.value.code == 0
    assert "usage: wsd-capture" in capsys.readouterr().out
