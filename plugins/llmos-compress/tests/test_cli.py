"""``llmos compress`` / ``compare`` against a real registry: each method makes a new
version with lineage and metrics; bad input gets one clear error and registers nothing;
int8 versions reload from the registry in a fresh process and generate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _versions(reg, name: str = "tiny") -> list[int]:
    return [v.number for v in reg.list_versions(name)]


def test_int8_registers_a_child_with_lineage_and_metrics(cli, registry, corpus_file: Path) -> None:
    r = cli("compress", "tiny:1", "--method", "int8", "--data", str(corpus_file), "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["ref"] == "tiny:2"
    v = registry.resolve("tiny:2")
    assert v.parents == ["tiny:1"]
    assert v.lineage["method"] == "int8_dynamic"
    assert v.lineage["settings"]["per_channel"] is True
    assert v.lineage["data"]["path"] == str(corpus_file.resolve())
    assert v.tags["compression"] == "int8"
    m = v.metrics
    for k in ("params", "size_bytes", "tokens_per_s", "latency_ms_per_token", "val_ppl"):
        assert m[k] > 0 and m[f"parent_{k}"] > 0, k
    assert m["size_bytes_ratio"] == pytest.approx(m["size_bytes"] / m["parent_size_bytes"])
    assert m["size_bytes_ratio"] < 0.7
    assert m["val_ppl_ratio"] < 1.2  # int8 barely changes perplexity


def test_int8_version_reloads_in_a_fresh_process_with_the_same_logits(cli, registry, llmos_home: Path,
                                                                     tmp_path: Path) -> None:
    import numpy as np
    import torch

    from llmos_models.io import load_ref

    assert cli("compress", "tiny:1", "-m", "int8").exit_code == 0
    model, _, ref = load_ref("tiny:2")
    assert ref == "tiny:2"
    x = torch.arange(20).reshape(1, 20) % model.config.vocab_size
    with torch.no_grad():
        here = model(input_ids=x).logits.numpy()
    code = f"""
import numpy as np, torch
from llmos_models.io import load_ref
from llmos_models.generate import generate, GenerationSettings
from llmos_compress.int8 import is_quantized
model, tok, ref = load_ref("tiny:2")
assert is_quantized(model), "not quantized after reload"
x = torch.arange(20).reshape(1, 20) % model.config.vocab_size
with torch.no_grad():
    np.save({str(tmp_path / 'logits.npy')!r}, model(input_ids=x).logits.numpy())
c = generate(model, tok, "def ", GenerationSettings(max_new_tokens=8))
print("GENERATED", c.completion_tokens, repr(c.text))
"""
    env = {**os.environ, "LLMOS_HOME": str(llmos_home), "LLMOS_PLUGINS": "llmos-models,llmos-compress,llmos-registry"}
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "GENERATED 8" in p.stdout or "GENERATED" in p.stdout
    there = np.load(tmp_path / "logits.npy", allow_pickle=False)
    assert np.array_equal(here, there)


def test_unstructured_prune_reports_sparsity_honestly(cli, registry, corpus_file: Path) -> None:
    r = cli("compress", "tiny:1", "-m", "prune", "--set", "sparsity=0.5", "--data", str(corpus_file))
    assert r.exit_code == 0, r.output
    assert "stored dense" in r.output
    v = registry.resolve("tiny:2")
    assert v.lineage["method"] == "prune_magnitude" and v.lineage["settings"]["sparsity"] == 0.5
    assert v.metrics["sparsity"] == pytest.approx(0.5, abs=0.01)
    assert v.metrics["params_ratio"] == 1.0  # same shape
    assert v.metrics["size_bytes_ratio"] == pytest.approx(1.0, abs=0.01)  # dense storage: no gain


def test_structured_prune_makes_the_model_smaller(cli, registry, corpus_file: Path) -> None:
    from transformers import AutoModelForCausalLM

    r = cli("compress", "tiny:1", "-m", "prune", "--set", "structured=true", "--set", "sparsity=0.5",
            "--set", "heads=0.5", "--set", "recovery_steps=4", "--set", "batch_size=4", "--data", str(corpus_file))
    assert r.exit_code == 0, r.output
    v = registry.resolve("tiny:2")
    assert v.lineage["method"] == "prune_structured"
    assert v.metrics["params_ratio"] < 0.85 and v.metrics["size_bytes_ratio"] < 0.85
    assert "recovery_loss" in v.metrics
    # a plain transformers model: loads without llmos
    m = AutoModelForCausalLM.from_pretrained(str(registry.checkout("tiny:2")))
    assert m.config.intermediate_size == 64 and m.config.num_attention_heads == 2 and m.config.head_dim == 16


def test_distill_trains_a_half_depth_student(cli, registry, corpus_file: Path) -> None:
    r = cli("compress", "tiny:1", "-m", "distill", "--set", "steps=6", "--set", "batch_size=4",
            "--set", "eval_batches=2", "--name", "tiny-student", "--data", str(corpus_file))
    assert r.exit_code == 0, r.output
    v = registry.resolve("tiny-student")
    assert v.ref == "tiny-student:1" and v.parents == ["tiny:1"]
    assert v.lineage["method"] == "distill"
    assert v.lineage["settings"]["teacher"] == "tiny:1" and v.lineage["settings"]["alpha"] == 0.5
    m = v.metrics
    assert m["teacher_val_ppl"] > 0 and m["val_ppl"] > 0
    assert m["params_ratio_vs_teacher"] < 0.9
    cfg = json.loads((registry.checkout(v.ref) / "config.json").read_text())
    assert cfg["num_hidden_layers"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-m", "zip"], "unknown compression method 'zip': use one of distill, int8, prune"),
        (["-m", "prune", "--set", "sparsity=1.5"], "sparsity must be between 0 and 1"),
        (["-m", "prune", "--set", "sparsity=0"], "sparsity must be between 0 and 1"),
        (["-m", "prune", "--set", "recovery_steps=5"], "needs training data: pass --data PATH"),
        (["-m", "distill"], "needs training data: pass --data PATH"),
        (["-m", "int8", "--set", "bogus=1"], "bogus"),
        (["-m", "int8", "--set", "oops"], "write KEY=VALUE"),
    ],
)
def test_bad_input_is_one_clear_error_and_registers_nothing(cli, registry, args: list[str], message: str) -> None:
    r = cli("compress", "tiny:1", *args)
    assert r.exit_code != 0
    assert message in r.output and r.output.startswith("Error: ") and "Traceback" not in r.output
    assert _versions(registry) == [1]


def test_quantizing_a_quantized_version_is_refused(cli, registry) -> None:
    assert cli("compress", "tiny:1", "-m", "int8").exit_code == 0
    r = cli("compress", "tiny:2", "-m", "int8")
    assert r.exit_code != 0 and "already int8-quantized" in r.output
    r = cli("compress", "tiny:2", "-m", "prune")
    assert r.exit_code != 0 and "cannot prune an int8-quantized model" in r.output
    assert _versions(registry) == [1, 2]
    r = cli("compress", "missing:1", "-m", "int8")
    assert r.exit_code != 0 and "no model named 'missing'" in r.output


def test_compare_prints_the_trade_off_table(cli, registry, corpus_file: Path) -> None:
    assert cli("compress", "tiny:1", "-m", "int8").exit_code == 0
    r = cli("compare", "tiny:1", "tiny:2", "--data", str(corpus_file), "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    a, b = data["versions"]
    assert (a["ref"], b["ref"], b["method"]) == ("tiny:1", "tiny:2", "int8_dynamic")
    for k in ("params", "size_bytes", "tokens_per_s", "latency_ms_per_token", "val_ppl"):
        assert a[k] > 0 and b[k] > 0
    assert a["ratios"]["size_bytes"] == 1.0 and b["ratios"]["size_bytes"] < 0.7
    assert b["ppl_source"] == "measured"
    r = cli("compare", "tiny:1", "tiny:2", "--no-speed")
    assert r.exit_code == 0, r.output
    assert "trade-offs" in r.output and "100.000*" in r.output  # tiny:1's recorded val_ppl
    r = cli("compare", "tiny:1", "nope:3")
    assert r.exit_code != 0 and "nope" in r.output


def test_commands_through_the_installed_entry_point(llmos_home: Path) -> None:
    env = {**os.environ, "LLMOS_HOME": str(llmos_home), "LLMOS_PLUGINS": "llmos-models,llmos-compress,llmos-registry"}
    p = subprocess.run([sys.executable, "-m", "llmos", "compress", "--help"], env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "llmos compress quickstart:1 --method int8" in p.stdout
    code = ("import sys, llmos_compress.plugin, llmos_compress.commands; "
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stdout.strip() == "False False"
