"""``llmos plugin new --kind <extension kind>``: every kind's project passes its own
generated tests (each runs the standard tiny pipeline with the plugin selected), and an
optimizer, a schedule and a CSV reader, pip-installed into a fresh environment, are listed
by ``llmos components`` under their plugin and selected by ``llmos run pipelines/tiny.toml
--set ...`` — the done-criterion of issue 14."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from community_helpers import has_dist, llmos

from llmos_community.scaffold import EXTENSION_KINDS, KINDS, scaffold

ROOT = Path(__file__).resolve().parents[3]
HEAVY = ("import torch", "import numpy", "import transformers", "from torch", "from transformers")
SHORT = ["stages.train.config.max_steps=6", "stages.train.config.eval_every=6", "stages.train.config.log_every=1",
         "stages.train.config.checkpoint_every=3", "stages.train.config.warmup_steps=2",
         "stages.evaluate.config.max_blocks=8"]


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("LLMOS_PLUGINS", None)
    return env


def _write_csv(path: Path) -> int:
    """A CSV corpus (columns: title, body): docstrings of some stdlib modules."""
    import csv
    import inspect
    import textwrap

    rows = [{"title": f"{m.__name__}.{n}", "body": inspect.getdoc(o)}
            for m in (csv, json, inspect, textwrap, subprocess, os.path) for n, o in vars(m).items()
            if not n.startswith("_") and len(inspect.getdoc(o) or "") > 40]
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, ["title", "body"])
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def test_every_kind_is_written_and_none_is_refused():
    assert set(EXTENSION_KINDS) | {"stage", "sink"} == set(KINDS)
    out = llmos("plugin", "new", "--help", check=True).stdout
    assert all(k in out for k in KINDS)


@pytest.mark.slow
def test_optimizer_schedule_and_csv_reader_install_list_and_run_the_tiny_pipeline(tmp_path, make_venv, llmos_home):
    from llmos.sdk import open_registry

    made = {}
    for kind, name in (("optimizer", "llmos-lion"), ("schedule", "llmos-isqrt"), ("reader", "llmos-csvdocs")):
        out = llmos("plugin", "new", name, "--kind", kind, "--dir", str(tmp_path), check=True)
        assert "Created" in out.stdout
        made[kind] = tmp_path / name
        assert "OK" in llmos("plugin", "test", str(made[kind]), check=True).stdout
    # a real install into a fresh environment (never into .venv): pip builds each project
    py = make_venv()
    pip = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                          *map(str, made.values())], capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr[-2000:]
    assert all(has_dist(py, n) for n in ("llmos-lion", "llmos-isqrt", "llmos-csvdocs"))
    assert not has_dist(sys.executable, "llmos-lion")

    listed = json.loads(llmos("components", "--json", python=str(py), check=True).stdout)
    exts = {(e["kind"], e["name"]): e["plugin"] for e in listed if "kind" in e}
    assert exts[("optimizers", "lion")] == "llmos-lion"
    assert exts[("lr_schedules", "isqrt")] == "llmos-isqrt"
    assert exts[("data_readers", "csvdocs")] == "llmos-csvdocs"
    table = llmos("components", "--kind", "optimizers", python=str(py), check=True).stdout
    assert "lion" in table and "llmos-lion" in table

    corpus = tmp_path / "docs.csv"
    assert _write_csv(corpus) > 50
    sets = [*SHORT, "stages.train.config.optimizer=lion", "stages.train.config.schedule=isqrt",
            f"stages.data.config.paths=[{str(corpus)!r}]", "stages.data.config.format=csvdocs",
            "stages.data.config.text_field=body"]
    args = [a for s in sets for a in ("--set", s)]
    run = llmos("run", str(ROOT / "pipelines" / "tiny.toml"), *args, "--json", python=str(py))
    assert run.returncode == 0, run.stderr[-3000:]

    reg = open_registry()
    (r,) = reg.list_runs()
    assert r.status == "completed"
    version = reg.resolve(reg.list_versions("tiny")[-1].ref)
    assert version.lineage["settings"]["optimizer"] == "lion"
    assert version.lineage["settings"]["schedule"] == "isqrt"
    lr = 3e-3  # pipelines/tiny.toml
    logged = [p["value"] for p in reg.run_metrics(r.id, "lr")]
    assert logged == pytest.approx([lr * min(s / 2, (2 / s) ** 0.5) for s in range(1, 7)])


@pytest.mark.slow
def test_every_extension_kind_scaffold_passes_its_own_tests(tmp_path):
    """One project per extension kind (and a sink); their generated tests (each a tiny
    pipeline run with the plugin selected) in one interpreter, as a plugin author runs them."""
    projects = [scaffold("llmos-demo-sink", None, tmp_path, kind="sink")]
    for kind in EXTENSION_KINDS:
        project = scaffold(f"llmos-demo-{kind}", None, tmp_path, kind=kind)
        pkg = f"llmos_demo_{kind.replace('-', '_')}"
        hook = (project / "src" / pkg / "plugin.py").read_text()
        assert "LLMOS_API = 2" in hook and not any(h in hook for h in HEAVY), kind
        assert EXTENSION_KINDS[kind].hook in hook
        assert (project / "tests" / "tiny.toml").read_text() == (ROOT / "pipelines" / "tiny.toml").read_text()
        readme = (project / "README.md").read_text()
        assert f"demo-{kind}" in readme and "__" not in readme.replace("__init__", "")
        projects.append(project)
    env = _env()
    env["PYTHONPATH"] = os.pathsep.join(str(p / "src") for p in projects)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "--import-mode=importlib", "-p", "no:cacheprovider",
                           *(str(p / "tests") for p in projects)], cwd=tmp_path, capture_output=True, text=True,
                          env=env, timeout=900)
    assert proc.returncode == 0 and " failed" not in proc.stdout, proc.stdout[-4000:]
    n_tests = sum((p / "tests" / "test_plugin.py").read_text().count("\ndef test_") for p in projects)
    assert f"{n_tests} passed" in proc.stdout, proc.stdout[-3000:]
