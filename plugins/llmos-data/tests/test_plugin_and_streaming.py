"""The plugin as llmos loads it, the step in a run context, and bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from llmos.context import RunContext
from llmos.testing import check_plugin_contract


def test_plugin_contract():
    import llmos_data.plugin

    check_plugin_contract(llmos_data.plugin, "llmos-data")


def test_hook_module_is_light():
    code = (
        "import sys, llmos_data.plugin;"
        "bad=[m for m in ('torch','numpy','transformers','tokenizers') if m in sys.modules];"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_corpus_step_through_the_plugin_manager(standard_plugins, tmp_path):
    manager = standard_plugins("llmos-data")
    comp = manager.get_component("data.corpus")
    src = tmp_path / "c.jsonl"
    src.write_text("\n".join(json.dumps({"body": f"Document number {i} talks about topic {i * 7} at length."})
                             for i in range(80)))
    step = comp.create({"paths": [str(src)], "text_field": "body", "vocab_size": 300, "block_size": 8,
                        "validation_fraction": 0.2, "near_dedup": False})
    ctx = RunContext(run_id=None, spec=None, workdir=tmp_path / "run")
    logged = []
    ctx._metric_writer = lambda kind, step, metrics: logged.append((kind, metrics))
    result = step.run(ctx)
    ds = ctx.artifacts["dataset"]
    assert ds.vocab_size == len(ctx.artifacts["tokenizer"]) and ds.block_size == 8
    assert result["documents_kept"] == 80 and result["train_blocks"] == ds.split("train").shape[0]
    assert logged and logged[0][0] == "data"
    # the cache lives in $LLMOS_HOME (the llmos_home fixture), not in the run's workdir
    from llmos.config import home

    assert ds.path.parent == home() / "cache" / "datasets"


_PEAK = """
import json, resource, sys
from pathlib import Path
from llmos_data.config import CorpusConfig
from llmos_data.corpus import build_dataset
src, work = sys.argv[1], Path(sys.argv[2])
cfg = CorpusConfig(paths=[src], split_paragraphs=True, vocab_size=512, block_size=256, near_dedup=False,
                   cache=False)
ds = build_dataset(cfg, cache_root=None, workdir=work)
print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "bytes": ds.stats["bytes_kept"], "blocks": ds.stats["blocks"]}))
"""


def _peak(src: Path, work: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", _PEAK, str(src), str(work)], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_memory_is_bounded_by_streaming(tmp_path):
    """Peak memory does not grow with the corpus: 10x more text (2.5 MB → 25 MB) costs
    far less extra memory than the text itself (the 1 GB run is benchmarks/bench_data.py)."""
    from llmos_data.synthetic import write_synthetic_corpus

    write_synthetic_corpus(tmp_path / "small", 5 << 19, seed=1)
    write_synthetic_corpus(tmp_path / "large", 25 << 20, seed=2, file_bytes=8 << 20)
    small = _peak(tmp_path / "small", tmp_path / "ws")
    large = _peak(tmp_path / "large", tmp_path / "wl")
    assert large["bytes"] > 9 * small["bytes"]
    grown_mb = large["peak_mb"] - small["peak_mb"]
    text_mb = (large["bytes"] - small["bytes"]) / 2**20
    assert grown_mb < 0.3 * text_mb, (small, large)
    ds_blocks = large["blocks"]["train"]
    arr = np.memmap(tmp_path / "wl" / "dataset" / "train.bin", dtype=np.uint16, mode="r").reshape(-1, 256)
    assert arr.shape[0] == ds_blocks
