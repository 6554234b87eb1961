"""Several adapter versions of one base from one loaded base, chosen per request by model
name (``--also``); the base is loaded once (its tensors shared by every adapter) and each
adapter's greedy text through the server is ``llmos generate``'s. Versions load on
``--device``/``--precision`` (``auto`` is the CPU here), or where their tags say."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

PROMPTS = ["the quick brown", "once upon a time there", "numbers one two"]


def make_adapter(base_dir: Path, out: Path, seed: int, base_ref: str) -> Path:
    """A LoRA adapter on ``base_dir`` with random (non-zero) A and B, written as llmos
    writes adapter versions (only its tensors, the base's tokenizer)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from llmos_models.io import load_model, save_model

    model, tok = load_model(base_dir)
    torch.manual_seed(seed)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False))
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.mul_(0.5)
    peft_model.llmos_base = base_ref
    return save_model(peft_model, tok, out)


@pytest.fixture
def adapters(llmos_home: Path, trained_tiny: Path, tmp_path: Path, plugin_manager, standard_plugins) -> Any:
    """tb:1 (a trained tiny base) and tb-lora:1..3, three adapters on it (parent tb:1);
    tb-lora@a -> 1."""
    from llmos.registry import open_registry

    standard_plugins("llmos-models", "llmos-serve")
    reg = open_registry()
    reg.register_version("tb", trained_tiny)
    for i in range(3):
        reg.register_version("tb-lora", make_adapter(trained_tiny, tmp_path / f"a{i}", i + 1, "tb:1"),
                             parents=["tb:1"])
    reg.set_alias("tb-lora", "a", 1)
    return reg


def _complete(url: str, model: str, prompt: str, stream: bool = False, max_tokens: int = 12) -> tuple[str, str]:
    """``(text, version header)`` of a greedy completion."""
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": stream}
    if not stream:
        r = httpx.post(url + "/v1/completions", json=body, timeout=120)
        assert r.status_code == 200, r.text
        return r.json()["choices"][0]["text"], r.headers["x-llmos-model-version"]
    text = ""
    with httpx.stream("POST", url + "/v1/completions", json=body, timeout=120) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                text += "".join(c["text"] for c in json.loads(line[6:])["choices"])
        return text, r.headers["x-llmos-model-version"]


def _generate(ref: str, prompt: str, *flags: str, max_tokens: int = 12) -> str:
    """``llmos generate REF PROMPT --json`` (the real command, in this process)."""
    from click.testing import CliRunner

    from llmos_models.cli import generate

    r = CliRunner().invoke(generate, [ref, prompt, "-n", str(max_tokens), "--json", *flags], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return json.loads(r.output)["text"]


def test_adapters_share_one_loaded_base_and_each_gives_its_generate_text(adapters, start_server):
    srv = start_server(model="tb-lora@a", also=["tb-lora:2", "tb"], poll_interval=0)
    ids = {c["id"]: c for c in httpx.get(srv.url + "/v1/models", timeout=10).json()["data"]}
    assert set(ids) == {"tb-lora", "tb-lora@a", "tb-lora:2", "tb"}
    assert {k: (c["version"], c["parent"]) for k, c in ids.items()} == {
        "tb-lora": ("tb-lora:1", "tb:1"), "tb-lora@a": ("tb-lora:1", "tb:1"), "tb-lora:2": ("tb-lora:2", "tb:1"),
        "tb": ("tb:1", None)}

    # the base is loaded once for both adapters: one shared base, the same parameter storage
    stats = httpx.get(srv.url + "/stats", timeout=10).json()
    assert [(b["base"], b["adapters"], b["device"], b["precision"]) for b in stats["bases"]] == [
        ("tb:1", ["tb-lora:1", "tb-lora:2"], "cpu", "fp32")]
    assert {e["label"]: e["device"] for e in stats["engines"]} == {"tb-lora:1": "cpu", "tb-lora:2": "cpu",
                                                                  "tb:1": "cpu"}
    pool = srv.app.state.llmos.pool
    v1, v2, plain = (pool.loaded(r).model for r in ("tb-lora:1", "tb-lora:2", "tb:1"))
    assert v1.shared is v2.shared and len(pool.bases) == 1
    base_params = lambda v: {n: p.data_ptr() for n, p in v.shared.model.named_parameters() if "lora_" not in n}  # noqa: E731
    assert base_params(v1) == base_params(v2) and len(base_params(v1)) == len(list(plain.parameters()))
    lora = lambda v: {p.data_ptr() for n, p in v.shared.model.named_parameters() if "lora_" in n} & {  # noqa: E731
        p.data_ptr() for p in v.parameters()}
    assert lora(v1) and lora(v2) and not lora(v1) & lora(v2)  # each view sees only its own adapter
    assert stats["bases"][0]["base_params"] == sum(p.numel() for p in plain.parameters())

    # every model answered at once (their engines interleave steps on the one base), streamed and not
    jobs = [(m, p, s) for m in ("tb-lora@a", "tb-lora:2", "tb") for p in PROMPTS for s in (False, True)]
    with ThreadPoolExecutor(8) as ex:
        got = dict(zip(jobs, ex.map(lambda j: _complete(srv.url, *j), jobs), strict=True))
    expected = {ref: [_generate(ref, p) for p in PROMPTS] for ref in ("tb-lora:1", "tb-lora:2", "tb:1")}
    for (model, prompt, _), (text, version) in got.items():
        assert version == {"tb-lora@a": "tb-lora:1", "tb-lora:2": "tb-lora:2", "tb": "tb:1"}[model]
        assert text == expected[version][PROMPTS.index(prompt)], (model, prompt)
    assert expected["tb-lora:1"] != expected["tb-lora:2"] != expected["tb:1"]  # the adapters do change the model
    assert _complete(srv.url, "tb-lora", PROMPTS[0])[0] == expected["tb-lora:1"][0]


def test_alias_moves_attach_and_detach_adapters_on_the_same_base(adapters, start_server):
    srv = start_server(model="tb-lora@a", also=["tb-lora:2"], poll_interval=0.1)
    pool = srv.app.state.llmos.pool
    shared = pool.loaded("tb-lora:2").model.shared
    adapters.set_alias("tb-lora", "a", 3)
    deadline = __import__("time").monotonic() + 30
    while pool.loaded("tb-lora:1") is not None or shared.adapters != ["tb-lora:2", "tb-lora:3"]:
        assert __import__("time").monotonic() < deadline, (pool.serving(), shared.adapters)
        __import__("time").sleep(0.05)
    # version 1's adapter is gone from the base, version 3's joined it: still one base
    assert len(pool.bases) == 1 and pool.loaded("tb-lora:3").model.shared is shared
    text, version = _complete(srv.url, "tb-lora@a", PROMPTS[1])
    assert version == "tb-lora:3" and text == _generate("tb-lora:3", PROMPTS[1])
    assert _complete(srv.url, "tb-lora:2", PROMPTS[1])[0] == _generate("tb-lora:2", PROMPTS[1])


def test_device_and_precision_flags_and_tags(adapters, start_server):
    from llmos_serve.config import ServeConfig

    # explicit cpu/fp32 is what auto resolves to here
    srv = start_server(model="tb-lora:1", device="cpu", precision="fp32", poll_interval=0)
    assert httpx.get(srv.url + "/stats", timeout=10).json()["bases"][0]["device"] == "cpu"
    assert _complete(srv.url, "tb-lora", PROMPTS[2])[0] == _generate("tb-lora:1", PROMPTS[2], "--device", "cpu")
    srv.stop()
    # a version's tag decides under auto: bf16 weights, as `llmos generate --precision bf16` loads them
    adapters.set_tags("tb:1", {"precision": "bf16"})
    srv = start_server(model="tb:1", poll_interval=0)
    assert str(next(srv.app.state.llmos.pool.loaded("tb:1").model.parameters()).dtype) == "torch.bfloat16"
    assert srv.app.state.llmos.pool.loaded("tb:1").precision == "bf16"
    assert _complete(srv.url, "tb", PROMPTS[0])[0] == _generate("tb:1", PROMPTS[0], "--precision", "bf16")
    srv.stop()
    adapters.set_tags("tb:1", {"precision": "fp99"})
    with pytest.raises(Exception, match=r"the tag precision=fp99 of tb:1: use one of auto, fp32, bf16, fp16"):
        start_server(model="tb:1", poll_interval=0)
    with pytest.raises(Exception, match=r"unknown device 'gpu'"):
        ServeConfig(model="tb:1", device="gpu")


def test_the_cli_serves_several_adapters_and_refuses_a_device_it_lacks(adapters, serve_process, llmos_home):
    import os
    import subprocess
    import sys

    import torch

    p = serve_process(["tb-lora:1", "--also", "tb-lora@a", "--also", "tb-lora:2", "--device", "cpu",
                       "--precision", "fp32", "--poll-interval", "0"]).wait_ready()
    ids = {c["id"]: c["version"] for c in httpx.get(p.url + "/v1/models", timeout=10).json()["data"]}
    assert ids == {"tb-lora": "tb-lora:1", "tb-lora:1": "tb-lora:1", "tb-lora@a": "tb-lora:1",
                   "tb-lora:2": "tb-lora:2"}
    stats = httpx.get(p.url + "/stats", timeout=10).json()
    assert [(b["base"], b["adapters"]) for b in stats["bases"]] == [("tb:1", ["tb-lora:1", "tb-lora:2"])]
    assert sorted(stats["serving"]["loaded"]) == ["tb-lora:1", "tb-lora:2"]  # tb-lora@a is the same version
    assert _complete(p.url, "tb-lora:2", PROMPTS[0]) == (_generate("tb-lora:2", PROMPTS[0]), "tb-lora:2")
    rc, _, err = p.terminate()
    assert rc == 0, err

    env = dict(os.environ, LLMOS_HOME=str(llmos_home))
    for args, message in ((["tb:1", "--also", "tb:1"], "--also tb:1: that spec is served already"),
                          (["tb:1", "--device", "gpu"], "unknown device 'gpu'"),
                          (["tb:1", "--precision", "fp16"], "precision 'fp16' needs a GPU")
                          if not torch.cuda.is_available() else (["tb:1", "--device", "cuda:99"], "cuda:99")):
        r = subprocess.run([sys.executable, "-m", "llmos", "serve", *args, "--port", "0"], capture_output=True,
                           text=True, env=env, timeout=120)
        assert r.returncode != 0 and message in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr, r.stderr
