"""The README's Resuming examples, run exactly as written (only `python` is this interpreter)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def resuming_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Resuming\n", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_the_readme_resuming_examples_work_as_written(tmp_path):
    commands = resuming_commands()
    assert len(commands) == 4 and all(c.startswith("python -m trainlab ") for c in commands)
    outputs = []
    for command in commands:
        args = shlex.split(command)
        done = subprocess.run(
            [sys.executable, *args[1:]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
            env=os.environ,
        )
        assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
        outputs.append(done.stdout)
    demo, more = tmp_path / "outputs" / "resume-demo", tmp_path / "outputs" / "resume-demo-more"
    assert json.loads((demo / "metrics.json").read_text())["epochs"] == 2
    log = (demo / "train.log").read_text()
    assert "resumed with a different schedule (scheduler.scheduler.T_max: 1 -> 2)" in log
    assert "lr default=0 before, default=0.0005 now" in log  # as the README says
    assert "nothing left to train" in outputs[2]
    assert json.loads((demo / "status.json").read_text())["status"] == "completed"
    assert json.loads((more / "metrics.json").read_text())["epochs"] == 3
    assert any(p.name.startswith("epoch003-") for p in (more / "checkpoints").iterdir())
