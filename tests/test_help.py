"""Every command-line tool answers --help with what it does and how to call it, and exits 0."""

from __future__ import annotations

import importlib

import pytest

TOOLS = [
    "trainlab.eval",
    "trainlab.predict",
    "trainlab.playground",
    "trainlab.tune",
    "trainlab.runs",
    "trainlab.ckpt",
    "trainlab.data.split",
]


@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_says_how_to_call_the_tool_and_exits_zero(tool, flag, capsys):
    main = importlib.import_module(tool).main
    try:
        code = main([flag])
    except SystemExit as stop:  # argparse's tools
        code = stop.code
    out = capsys.readouterr()
    assert code == 0
    assert f"python -m {tool}" in out.out and "error" not in out.err
    assert len(out.out.splitlines()) < 40  # one screen
