"""optimizer.lora end to end through the real CLI: a base is trained and registered,
a LoRA adapter is trained on it and registered as a child version holding only the
adapter's tensors; `llmos generate` loads base + adapter; `llmos merge` makes a
full version whose logits equal base + adapter's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PLUGINS = "llmos-data,llmos-models,llmos-train,llmos-registry"

SENTENCES = [
    "Return the number of items in the list.",
    "The default value is used when no argument is given.",
    "This module provides functions to read and write files.",
    "Raise an error if the file does not exist.",
]
SECOND = [  # the second text: what the adapter learns
    "The socket is closed when the object is deleted.",
    "Send the bytes to the socket and wait for the reply.",
]


def _cli(args: list[str], home: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, LLMOS_HOME=str(home), LLMOS_PLUGINS=PLUGINS, OMP_NUM_THREADS="1")
    env.pop("LLMOS_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "llmos", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def _corpus(path: Path, sentences: list[str], n: int) -> Path:
    path.write_text("\n".join(json.dumps({"text": f"{sentences[i % len(sentences)]} "
                                                   f"{sentences[(i * 3 + 1) % len(sentences)]} Item {i}."})
                              for i in range(n)))
    return path


PIPELINE = """
[pipeline]
name = "lo"
seed = 5

[[stages]]
id = "data"
use = "data.corpus"
[stages.config]
paths = ["{base_text}"]
vocab_size = 320
block_size = 32
validation_fraction = 0.15
near_dedup = false

[[stages]]
id = "model"
use = "model.llama"
[stages.config]
hidden_size = 32
num_layers = 2
num_heads = 2
intermediate_size = 64

[[stages]]
id = "train"
use = "optimizer.train"
[stages.config]
max_steps = 15
batch_size = 8
lr = 3e-3
threads = 1

[[stages]]
id = "register"
use = "model.register"
[stages.config]
tags = {{ stage = "base" }}

[[stages]]
id = "data-2"
use = "data.corpus"
[stages.config]
paths = ["{second_text}"]
tokenizer = "{{tokenizer}}"
vocab_size = 320
block_size = 32
validation_fraction = 0.15
near_dedup = false

[[stages]]
id = "lora"
use = "optimizer.lora"
[stages.config]
r = 4
alpha = 8
target_modules = ["q_proj", "v_proj", "o_proj"]
max_steps = 15
batch_size = 8
lr = 1e-2
threads = 1

[[stages]]
id = "register-lora"
use = "model.register"
[stages.config]
tags = {{ stage = "lora" }}
"""


@pytest.fixture(scope="module")
def registry_home(tmp_path_factory) -> Path:
    """A registry with lo:1 (a trained base) and lo:2 (its LoRA adapter), made by `llmos run`."""
    root = tmp_path_factory.mktemp("lora")
    home = root / "home"
    base_text = _corpus(root / "base.jsonl", SENTENCES, 120)
    second = _corpus(root / "second.jsonl", SECOND, 80)
    toml = PIPELINE.format(base_text=base_text, second_text=second)
    return home, root, toml


def _run_pipeline(home: Path, root: Path, toml: str) -> None:
    # the second data stage reuses the base's tokenizer: the one the first stage trained
    p = root / "lo.toml"
    p.write_text(toml.replace('tokenizer = "{tokenizer}"\n', ""))
    r = _cli(["run", str(p)], home)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def test_lora_adapter_version_generate_and_merge_through_the_cli(registry_home, standard_plugins,
                                                                 monkeypatch) -> None:
    home, root, toml = registry_home
    _run_pipeline(home, root, toml)
    standard_plugins("llmos-models", "llmos-serve")
    monkeypatch.setenv("LLMOS_HOME", str(home))
    from llmos.registry import open_registry

    reg = open_registry()
    base, adapter = reg.resolve("lo:1"), reg.resolve("lo:2")
    assert adapter.parents == ["lo:1"] and adapter.lineage["method"] == "lora"
    assert adapter.lineage["lora"]["r"] == 4
    names = {f["path"] for f in adapter.files}
    assert {"adapter_config.json", "adapter_model.safetensors", "llmos.json", "tokenizer.json"} <= names
    assert "model.safetensors" not in names and "config.json" not in names
    # only the adapter's tensors: a few % of the base's weights; the tokenizer is the base's (same blobs)
    weights = {f["path"]: f for f in base.files}
    adapter_bytes = next(f["size"] for f in adapter.files if f["path"] == "adapter_model.safetensors")
    assert adapter_bytes <= 0.1 * weights["model.safetensors"]["size"]
    assert next(f["sha256"] for f in adapter.files if f["path"] == "tokenizer.json") == \
        weights["tokenizer.json"]["sha256"]
    meta = json.loads((Path(reg.checkout("lo:2")) / "llmos.json").read_text())
    assert meta["kind"] == "adapter" and meta["base"] == "lo:1" and meta["adapter_params"] > 0

    # llmos generate loads base + adapter (the base found through the registry)
    r = _cli(["generate", "lo:2", "Return the", "-n", "6", "--json"], home)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["model"] == "lo:2" and out["completion_tokens"] > 0

    r = _cli(["merge", "lo:2", "--json"], home)
    assert r.returncode == 0, r.stderr
    merged = json.loads(r.stdout)
    assert merged["ref"] == "lo:3" and merged["parents"] == ["lo:2"]
    assert merged["lineage"]["method"] == "merge" and merged["lineage"]["base"] == "lo:1"
    assert "model.safetensors" in {f["path"] for f in merged["files"]}

    import torch

    from llmos_models.adapter import is_adapter_model
    from llmos_models.io import load_ref

    m_base, _, _ = load_ref("lo:1")
    m_adapter, tok, _ = load_ref("lo:2")
    m_merged, _, _ = load_ref("lo:3")
    assert is_adapter_model(m_adapter) and not is_adapter_model(m_merged)
    x = torch.tensor([tok.encode("Send the bytes to the socket and wait for the reply.")])
    with torch.no_grad():
        la, lm, lb = (m(input_ids=x).logits for m in (m_adapter, m_merged, m_base))
    assert torch.allclose(la, lm, atol=1e-4, rtol=1e-4), (la - lm).abs().max()
    assert (la - lb).abs().max() > 1e-3  # the adapter did change the model

    # llmos serve serves the adapter version (base + adapter, resolved through the registry)
    import httpx

    from llmos_serve.config import ServeConfig
    from llmos_serve.server import BackgroundServer

    srv = BackgroundServer(ServeConfig(model="lo:2", port=0, access_log=False, poll_interval=0)).start()
    try:
        r = httpx.post(srv.url + "/v1/completions", json={"model": "lo", "prompt": "Return the", "max_tokens": 5,
                                                          "temperature": 0}, timeout=60)
    finally:
        srv.stop()
    assert r.status_code == 200, r.text
    assert r.headers["X-Llmos-Model-Version"] == "lo:2" and r.json()["choices"][0]["text"]


def test_lora_errors_are_located_and_leave_no_version(tmp_path) -> None:
    home = tmp_path / "home"
    text = _corpus(tmp_path / "t.jsonl", SENTENCES, 60)
    p = tmp_path / "bad.toml"
    # no registered base before optimizer.lora
    p.write_text(f"""
[pipeline]
name = "bad"
[[stages]]
use = "data.corpus"
[stages.config]
paths = ["{text}"]
vocab_size = 320
block_size = 32
near_dedup = false
[[stages]]
use = "model.llama"
[stages.config]
hidden_size = 32
num_layers = 1
num_heads = 2
[[stages]]
use = "optimizer.lora"
[stages.config]
max_steps = 2
batch_size = 2
[[stages]]
use = "model.register"
""")
    r = _cli(["run", str(p)], home)
    assert r.returncode != 0 and "optimizer.lora needs a registered base model" in r.stderr + r.stdout
    r = _cli(["model", "versions", "bad", "--json"], home)
    assert r.returncode != 0 or json.loads(r.stdout) == []  # nothing registered


def test_lora_refuses_unknown_target_modules_and_quantization_without_cuda(make_ctx, dataset, model_factory):
    import torch

    from llmos.errors import ValidationError
    from llmos_train.lora import LoraConfig, LoraStep

    ctx = make_ctx(model_factory(0), dataset)
    ctx.artifacts["model_version"] = "base:1"
    with pytest.raises(ValidationError, match=r"target_modules nope not in the model; its layers are: .*q_proj"):
        LoraStep(LoraConfig(target_modules=["nope"], max_steps=1, batch_size=2)).run(ctx)
    if not torch.cuda.is_available():
        # refused when the config is read, before anything runs (the pipeline test below: located)
        for q in ("nf4", "int8"):
            with pytest.raises(Exception, match=rf"quantize = '{q}' .*needs a CUDA GPU, and this machine has none"):
                LoraConfig(quantize=q)
    with pytest.raises(Exception, match=r"quantize = 'nf4' .*needs a CUDA GPU, and device = 'cpu'"):
        LoraConfig(quantize="nf4", device="cpu")  # an explicit CPU device: refused on any machine
    assert LoraConfig(quantize="bf16", device="cpu").quantize == "bf16"
    with pytest.raises(Exception, match="target_modules must be a non-empty list"):
        LoraConfig(target_modules=[])


@pytest.mark.skipif("__import__('torch').cuda.is_available()", reason="the refusal is for machines without CUDA")
def test_quantized_base_is_refused_on_cpu_before_any_stage_runs(tmp_path) -> None:
    home = tmp_path / "home"
    text = _corpus(tmp_path / "t.jsonl", SENTENCES, 40)
    p = tmp_path / "q.toml"
    p.write_text(f"""
[pipeline]
name = "q"
[[stages]]
use = "data.corpus"
[stages.config]
paths = ["{text}"]
vocab_size = 300
block_size = 32
[[stages]]
use = "model.load"
[stages.config]
ref = "base:1"
[[stages]]
use = "optimizer.lora"
[stages.config]
quantize = "nf4"
""")
    r = _cli(["run", str(p)], home)
    err = r.stderr + r.stdout
    assert r.returncode != 0
    assert "stages[2].config.quantize" in err and "needs a CUDA GPU" in err and "set quantize = 'none'" in err
    assert "Traceback" not in err
    # refused while reading the pipeline: no run was recorded, no stage ran (no tokenizer trained)
    r = _cli(["runs", "list", "--json"], home)
    assert r.returncode != 0 or json.loads(r.stdout) == []
    assert not list(home.rglob("tokenizer.json")) if home.exists() else True


def test_lora_trains_only_the_adapter(make_ctx, dataset, model_factory):
    import torch

    from llmos_train.lora import LoraConfig, LoraStep

    model = model_factory(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ctx = make_ctx(model, dataset)
    ctx.artifacts["model_version"] = "base:1"
    out = LoraStep(LoraConfig(max_steps=4, batch_size=4, lr=1e-2)).run(ctx)
    peft_model = ctx.artifacts["model"]
    # r = 8 on q (32→32) and v (32→16, two kv heads of 8) in 2 layers: A is r×in, B is out×r
    assert out["adapter_params"] == 2 * ((8 * 32 + 32 * 8) + (8 * 32 + 16 * 8))
    assert ctx.artifacts["lineage"]["method"] == "lora" and ctx.artifacts["lineage"]["base"] == "base:1"
    base_now = peft_model.get_base_model().state_dict()
    frozen = [k for k in before if "q_proj" not in k and "v_proj" not in k]
    assert frozen and all(torch.equal(before[k], base_now[k]) for k in frozen)
    b = [p for n, p in peft_model.named_parameters() if "lora_B" in n]
    assert b and all(p.abs().sum() > 0 for p in b)  # B starts at zero: it trained


def test_lora_on_a_bf16_base_keeps_an_fp32_adapter(make_ctx, dataset, model_factory):
    import torch

    from llmos_train.lora import LoraConfig, LoraStep

    ctx = make_ctx(model_factory(0), dataset)
    ctx.artifacts["model_version"] = "base:1"
    out = LoraStep(LoraConfig(max_steps=3, batch_size=4, lr=1e-2, quantize="bf16")).run(ctx)
    peft_model = ctx.artifacts["model"]
    dtypes = {n.split(".")[-2] if "lora_" in n else "base": p.dtype for n, p in peft_model.named_parameters()}
    assert dtypes["base"] == torch.bfloat16 and dtypes["default"] == torch.float32
    assert out["val_loss"] > 0 and ctx.artifacts["lineage"]["lora"]["quantize"] == "bf16"
