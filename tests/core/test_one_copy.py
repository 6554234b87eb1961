"""One MetricBuffer and one run-id format in the whole code base (issue 17.1): the
runner, llmos-monitor and the registry use ``llmos.runs``; nobody keeps a copy."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _sources() -> list[Path]:
    return [p for p in [*ROOT.glob("llmos/**/*.py"), *ROOT.glob("plugins/*/llmos_*/**/*.py")]
            if "migrations" not in p.parts]


def test_one_metric_buffer_and_one_run_id_format() -> None:
    buffers = [p.relative_to(ROOT) for p in _sources() if re.search(r"^class MetricBuffer\b", p.read_text(), re.M)]
    assert buffers == [Path("llmos/runs.py")]
    run_id_formats = [p.relative_to(ROOT) for p in _sources() if "%Y%m%d-%H%M%S" in p.read_text()]
    assert run_id_formats == [Path("llmos/runs.py")]


def test_the_run_id_format() -> None:
    from llmos.runs import new_run_id

    ids = {new_run_id() for _ in range(50)}
    assert len(ids) == 50 and all(re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", i) for i in ids)
