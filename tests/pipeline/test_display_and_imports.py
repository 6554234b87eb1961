"""The progress display without a terminal, and light imports of `llmos run`/`llmos runs`."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from llmos.pipeline.display import Display


def test_plain_progress_lines_have_counts_fields_and_eta() -> None:
    out = io.StringIO()
    with Display(live=False, stream=out, interval=0.0) as display:
        with display.task(total=100, description="train", unit="step") as bar:
            bar.update(20)  # a resumed loop starts at step 20: not counted in the rate
            for _ in range(10):
                bar.update(1, loss=2.5, tokens_per_s=12345.0)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[train] 21/100 step (21%) eta ")
    assert "loss 2.5 · 12.3k tok/s" in lines[0]
    assert lines[-1].startswith("[train] 30/100 step (30%)")
    assert len(lines) == 10  # closing does not repeat the last line


def test_quiet_display_prints_nothing() -> None:
    out = io.StringIO()
    with Display(quiet=True, stream=out) as display:
        with display.task(total=3, description="x") as bar:
            bar.update(3)
        display.print("hello")
    assert out.getvalue() == ""


@pytest.mark.parametrize("args", [["run", "--help"], ["runs", "--help"], ["runs", "list", "--help"]], ids=" ".join)
def test_run_commands_stay_light(args, tmp_path) -> None:
    probe = (
        "import sys, json\nfrom llmos.cli import main\n"
        f"try:\n    main({args!r}, prog_name='llmos')\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(m for m in ('torch', 'transformers', 'numpy', 'sqlalchemy') if m in sys.modules)),"
        " file=sys.stderr)\n"
    )
    env = dict(os.environ, LLMOS_HOME=str(tmp_path))
    cp = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert json.loads(cp.stderr.strip().splitlines()[-1]) == []
    assert "Example" in cp.stdout
