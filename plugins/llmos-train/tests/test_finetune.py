"""Fine-tuning a registered model keeps its tokenizer (issue 15.2), through ``llmos run``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmos.cli import main

ROOT = Path(__file__).resolve().parents[3]

FINETUNE = """
[pipeline]
name = "tiny-ft"
seed = 3

{first}

{second}

[[stages]]
id = "train"
use = "optimizer.train"
[stages.config]
max_steps = 10
batch_size = 8
lr = 1e-3
warmup_steps = 2
eval_blocks = 32
threads = 1

[[stages]]
id = "register"
use = "model.register"
"""
LOAD = '[[stages]]\nid = "base"\nuse = "model.load"\n[stages.config]\nref = "tiny:1"'
DATA = ('[[stages]]\nid = "data"\nuse = "data.corpus"\n[stages.config]\nmax_bytes = 120_000\nvocab_size = 512\n'
        'block_size = 64\nnear_dedup = false\nstdlib_parts = ["comments"]')


def _run(*args: str):
    return CliRunner().invoke(main, ["run", *args, "--json"], catch_exceptions=False)


@pytest.mark.slow
def test_finetuning_a_loaded_model_uses_its_tokenizer_and_a_mismatch_fails_before_training(
        standard_plugins, llmos_home, tmp_path) -> None:
    from llmos.registry import open_registry

    standard_plugins("llmos-data", "llmos-models", "llmos-train")
    base = _run(str(ROOT / "pipelines" / "tiny.toml"), "--set", "stages.train.config.max_steps=30")
    assert base.exit_code == 0, base.output
    reg = open_registry()
    base_v = reg.resolve("tiny:1")

    good = tmp_path / "ft.toml"
    good.write_text(FINETUNE.format(first=LOAD, second=DATA))
    r = _run(str(good))
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    ft = reg.resolve(out["versions"][0])
    base_dir, ft_dir = Path(reg.checkout("tiny:1")), Path(reg.checkout(out["versions"][0]))
    assert (ft_dir / "tokenizer.json").read_bytes() == (base_dir / "tokenizer.json").read_bytes()
    # same tokenizer, so the fine-tuned model is still a language model of the same text: with a
    # fresh tokenizer it scored thousands (quickstart:4 registered at ppl 3735)
    assert ft.metrics["val_ppl"] < 10 * base_v.metrics["val_ppl"]

    bad = tmp_path / "bad.toml"  # the corpus trains its own tokenizer, then the model is loaded
    bad.write_text(FINETUNE.format(first=DATA, second=LOAD))
    r = _run(str(bad))
    assert r.exit_code != 0
    assert "the dataset was tokenized with another tokenizer than the loaded model tiny:1" in r.output
    assert "put model.load before data.corpus" in r.output
    assert [v.number for v in reg.list_versions("tiny-ft")] == [1]  # nothing registered by the failed run
