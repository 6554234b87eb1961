"""optimizer.lora with 2 DDP processes (torchrun, gloo on CPU): only the adapter trains and
syncs; the same losses and adapter as one process; through the CLI an adapter version is
registered as the base's child. What cannot run in DDP workers is refused, located."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llmos.errors import ValidationError
from llmos_train.lora import LoraConfig, LoraStep


@pytest.mark.slow
def test_lora_two_processes_match_one(make_ctx, model_factory, dataset, tmp_path) -> None:
    cfg = dict(max_steps=6, batch_size=8, lr=1e-2, warmup_steps=1, log_every=2, eval_every=3, threads=1,
               target_modules=["q_proj", "v_proj", "o_proj"])
    base = model_factory(0)
    frozen_before = {k: v.clone() for k, v in base.state_dict().items()}
    single = make_ctx(model_factory(0), dataset, workdir=tmp_path / "one")
    single.artifacts["model_version"] = "base:1"
    torch.manual_seed(0)  # the adapter's A matrices start from the global RNG: the same for both
    LoraStep(LoraConfig(**cfg)).run(single)

    ddp = make_ctx(base, dataset, workdir=tmp_path / "two")
    ddp.artifacts["model_version"] = "base:1"
    ddp.nproc = 2  # what `llmos run --nproc 2` sets
    torch.manual_seed(0)
    out = LoraStep(LoraConfig(**cfg)).run(ddp)

    def series(ctx, kind, name):
        return [v[name] for k, _, v in ctx.logged if k == kind]

    assert len(series(ddp, "train", "loss")) == 3  # rank 0 alone reported
    assert series(ddp, "train", "loss") == pytest.approx(series(single, "train", "loss"), rel=1e-4)
    assert out["val_loss"] == pytest.approx(single.artifacts["metrics"]["val_loss"], rel=1e-4)
    assert out["adapter_params"] == single.artifacts["metrics"]["adapter_params"]
    one, two = single.artifacts["model"], ddp.artifacts["model"]
    assert type(two).__name__ == "PeftModelForCausalLM" and two.llmos_base == "base:1"
    a, b = one.state_dict(), two.state_dict()
    lora_keys = [k for k in a if "lora_" in k]
    assert lora_keys and all(b[k].abs().sum() > 0 for k in lora_keys if "lora_B" in k)  # trained in the workers
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-3, atol=1e-5)
    # the frozen base came back unchanged
    base_now = two.get_base_model().state_dict()
    plain = {k.replace(".base_layer", ""): v for k, v in base_now.items() if "lora_" not in k}
    assert all(torch.equal(plain[k], v) for k, v in frozen_before.items())


def test_lora_refuses_what_ddp_workers_cannot_rebuild(make_ctx, model_factory, dataset) -> None:
    ctx = make_ctx(model_factory(0), dataset)
    ctx.artifacts["model_version"] = "base:1"
    ctx.nproc = 2
    with pytest.raises(ValidationError, match=r"optimizer.lora: quantize = 'nf4' trains in one process.*nproc = 1"):
        # (on a machine without CUDA the config itself refuses nf4: construct it unvalidated to reach the step)
        LoraStep(LoraConfig.model_construct(quantize="nf4", max_steps=1, batch_size=2)).run(ctx)
    with pytest.raises(ValidationError, match=r"optimizer.lora: parallel = 'fsdp' is not supported.*'ddp'"):
        LoraStep(LoraConfig(parallel="fsdp", max_steps=1, batch_size=2)).run(ctx)
    assert "lineage" not in ctx.artifacts and "metrics" not in ctx.artifacts


PIPELINE = """
[pipeline]
name = "dl"
seed = 3

[[stages]]
use = "data.corpus"
[stages.config]
paths = ["{text}"]
vocab_size = 300
block_size = 32
validation_fraction = 0.15
near_dedup = false

[[stages]]
use = "model.llama"
[stages.config]
hidden_size = 32
num_layers = 2
num_heads = 2
intermediate_size = 64

[[stages]]
use = "optimizer.train"
[stages.config]
max_steps = 4
batch_size = 8
threads = 1

[[stages]]
use = "model.register"

[[stages]]
use = "optimizer.lora"
[stages.config]
nproc = 2
max_steps = 6
batch_size = 8
lr = 1e-2
log_every = 2
threads = 1

[[stages]]
id = "register-lora"
use = "model.register"
"""


@pytest.mark.slow
def test_lora_under_ddp_registers_an_adapter_version_through_the_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    text = tmp_path / "t.jsonl"
    text.write_text("\n".join(json.dumps({"text": f"Return the value of item {i}. Close the file {i % 7}."})
                              for i in range(150)))
    p = tmp_path / "dl.toml"
    p.write_text(PIPELINE.format(text=text))
    env = dict(os.environ, LLMOS_HOME=str(home), LLMOS_PLUGINS="llmos-data,llmos-models,llmos-train,llmos-registry",
               OMP_NUM_THREADS="1")
    env.pop("LLMOS_DATABASE_URL", None)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "llmos", *args], capture_output=True, text=True, env=env,
                              timeout=300)

    r = cli("run", str(p))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    r = cli("model", "versions", "dl", "--json")
    assert r.returncode == 0, r.stderr
    versions = {v["ref"]: v for v in json.loads(r.stdout)}
    assert set(versions) == {"dl:1", "dl:2"}
    adapter = versions["dl:2"]
    assert adapter["parents"] == ["dl:1"] and adapter["lineage"]["method"] == "lora"
    assert adapter["lineage"]["settings"]["nproc"] == 2 and adapter["lineage"]["steps"] == 6
    r = cli("model", "show", "dl:2", "--json")
    assert r.returncode == 0, r.stderr
    names = {f["path"] for f in json.loads(r.stdout)["files"]}
    assert "adapter_model.safetensors" in names and "model.safetensors" not in names
