"""model.evaluate measurements, and model.register / model.load with a real registry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from llmos.context import RunContext
from llmos.errors import NotFoundError, ValidationError
from llmos_models.build import count_parameters
from llmos_models.config import EvaluateConfig, LoadConfig, RegisterConfig
from llmos_models.evaluate import EvaluateStep, generation_speed, model_size_bytes, perplexity, unigram_perplexity
from llmos_models.generate import GenerationSettings


def test_perplexity_matches_the_model_loss(trained, dataset):
    blocks = dataset.split("validation")
    loss, ppl = perplexity(trained, blocks, batch_size=3)
    batch = torch.from_numpy(np.asarray(blocks, dtype=np.int64))
    with torch.inference_mode():
        ref = trained(input_ids=batch, labels=batch).loss.item()  # HF's own shifted mean loss
    assert loss == pytest.approx(ref, rel=1e-4) and ppl == pytest.approx(math.exp(ref), rel=1e-4)
    assert perplexity(trained, blocks, 2, max_blocks=1)[0] != loss
    with pytest.raises(ValidationError, match="empty"):
        perplexity(trained, blocks[:0])


def test_unigram_baseline_by_hand():
    train = np.array([[0, 1, 1, 2]], dtype=np.uint16)
    val = np.array([[3, 1, 2, 1]], dtype=np.uint16)
    # counts with add-one over vocab 4: [2, 3, 2, 1] / 8; scored tokens: 1, 2, 1
    expected = math.exp(-(2 * math.log(3 / 8) + math.log(2 / 8)) / 3)
    assert unigram_perplexity(train, val, 4, chunk=1) == pytest.approx(expected)


def test_size_and_speed(trained, tokenizer):
    n_bytes = model_size_bytes(trained)
    params = sum(p.numel() for p in trained.parameters())
    assert n_bytes == 4 * params  # fp32, tied embedding counted once, non-persistent buffers not saved
    import copy
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = torch.ao.quantization.quantize_dynamic(copy.deepcopy(trained), {torch.nn.Linear}, dtype=torch.qint8)
    # int8 Linear weights are packed (weight() is a method) and still counted; the tied
    # output projection becomes its own int8 matrix, so it now counts separately
    embed = trained.get_input_embeddings().weight.numel()
    assert count_parameters(q) == params + (embed if trained.config.tie_word_embeddings else 0)
    assert model_size_bytes(q) < n_bytes
    speed = generation_speed(trained, tokenizer, "Return", new_tokens=8)
    assert speed["tokens_per_s"] > 0 and speed["latency_ms_per_token"] == pytest.approx(8000 / speed["tokens_per_s"] / 8)


def test_evaluate_step_beats_unigram_after_training(trained, dataset, tmp_path, capsys):
    ctx = RunContext(run_id=None, spec=None, workdir=tmp_path, seed=3)
    ctx.artifacts.update(model=trained, dataset=dataset)
    logged = []
    ctx._metric_writer = lambda kind, step, m: logged.append((kind, m))
    cfg = EvaluateConfig(prompts=["Return the", "The default"], speed_tokens=8,
                         sample=GenerationSettings(max_new_tokens=10))
    metrics = EvaluateStep(cfg).run(ctx)
    for key in ("val_loss", "val_ppl", "unigram_ppl", "ppl_vs_unigram", "params", "size_bytes", "tokens_per_s",
                "latency_ms_per_token"):
        assert key in metrics
    assert metrics["val_ppl"] < metrics["unigram_ppl"]  # a trained model beats the unigram baseline
    assert ctx.artifacts["metrics"] == metrics and logged == [("eval", metrics)]
    assert [p for p, _ in ctx.artifacts["samples"]] == ["Return the", "The default"]
    out = capsys.readouterr().out
    assert "validation perplexity" in out and "unigram baseline" in out and "» Return the" in out
    with pytest.raises(ValidationError, match="needs a model"):
        EvaluateStep(cfg).run(RunContext(run_id=None, spec=None, workdir=tmp_path))


def test_evaluate_refuses_a_mismatched_model(make_model, dataset, tmp_path):
    ctx = RunContext(run_id=None, spec=None, workdir=tmp_path)
    ctx.artifacts.update(model=make_model("llama", dataset.vocab_size - 10), dataset=dataset)
    with pytest.raises(ValidationError, match="vocabulary .* is larger than the model's"):
        EvaluateStep(EvaluateConfig()).run(ctx)
    from llmos_models.build import build_model
    from llmos_models.config import GPT2Config

    short = build_model("gpt2", GPT2Config(hidden_size=32, num_layers=1, num_heads=2), vocab_size=dataset.vocab_size,
                        max_positions=16)
    ctx.artifacts["model"] = short
    with pytest.raises(ValidationError, match="longer than the model accepts"):
        EvaluateStep(EvaluateConfig()).run(ctx)


def _ctx(tmp_path, reg, name="tiny"):
    ctx = RunContext(run_id=None, spec=None, workdir=tmp_path / "run", seed=0)

    def registrar(path, **kw):
        model = kw.pop("model", None) or name
        return reg.register_version(model, path, **kw)

    ctx._version_registrar = registrar
    return ctx


def test_register_then_load_round_trip(llmos_home, trained, tokenizer, dataset, tmp_path):
    from llmos.registry import open_registry

    from llmos_models.steps import LoadStep, RegisterStep

    reg = open_registry()
    ctx = _ctx(tmp_path, reg)
    ctx.artifacts.update(model=trained, tokenizer=tokenizer, metrics={"val_ppl": 12.5},
                         lineage={"method": "x", "settings": {}})
    out = RegisterStep(RegisterConfig(alias="production", tags={"stage": "base"}, description="tiny test")).run(ctx)
    assert out == {"version": 1.0}
    assert ctx.artifacts["model_version"] == "tiny:1" and "lineage" not in ctx.artifacts
    v = reg.resolve("tiny@production")
    assert v.number == 1 and v.metrics == {"val_ppl": 12.5} and v.tags["stage"] == "base"
    assert (tmp_path / "run" / "register" / "llmos.json").is_file()

    ctx2 = RunContext(run_id=None, spec=None, workdir=tmp_path / "run2")
    LoadStep(LoadConfig(ref="tiny@production")).run(ctx2)
    assert ctx2.artifacts["model_version"] == "tiny:1"
    ids = torch.from_numpy(dataset.split("validation")[:2].astype("int64"))
    with torch.inference_mode():
        assert torch.equal(trained(input_ids=ids).logits, ctx2.artifacts["model"](input_ids=ids).logits)
    assert ctx2.artifacts["tokenizer"].encode("Return") == tokenizer.encode("Return")

    # llmos generate takes the same registry references
    from click.testing import CliRunner

    from llmos_models.cli import generate as command
    from llmos_models.generate import GenerationSettings, generate

    r = CliRunner().invoke(command, ["tiny@production", "Return the", "-n", "6", "--json"])
    assert r.exit_code == 0, r.output
    data = __import__("json").loads(r.output)
    assert data["model"] == "tiny:1"
    assert data["text"] == generate(trained, tokenizer, "Return the", GenerationSettings(max_new_tokens=6)).text

    LoadStep(LoadConfig.model_validate({"ref": "tiny:1", "as": "teacher"})).run(ctx2)
    assert ctx2.artifacts["teacher"] is not ctx2.artifacts["model"]
    with pytest.raises(NotFoundError):
        LoadStep(LoadConfig(ref="nothing-here")).run(ctx2)


def test_load_config_requires_ref():
    from llmos.components import Component

    comp = Component("model", "load", "llmos_models.steps:LoadStep", config=LoadConfig, plugin="llmos-models")
    with pytest.raises(ValidationError, match=r"model\.load\.ref"):
        comp.validate_config({})
    assert comp.validate_config({"ref": "a", "as": "teacher"}).as_ == "teacher"
