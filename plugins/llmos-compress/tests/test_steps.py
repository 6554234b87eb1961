"""The compression components as pipeline steps, the distillation loss, the contract."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from llmos.context import RunContext
from llmos.errors import ValidationError
from llmos.testing import check_plugin_contract


def test_plugin_contract() -> None:
    import llmos_compress.plugin

    check_plugin_contract(llmos_compress.plugin, "llmos-compress")


def test_components_are_registered(standard_plugins) -> None:
    manager = standard_plugins("llmos-compress")
    names = sorted(c.ref for c in manager.components() if c.stage == "compression")
    assert names == ["compression.distill", "compression.int8", "compression.prune", "compression.quantize"]


def test_distill_loss_matches_the_formula() -> None:
    from llmos_compress.distill import distill_loss

    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(2, 5, 11, generator=g), torch.randn(2, 5, 11, generator=g)
    y = torch.randint(0, 11, (2, 5), generator=g)
    T, a = 3.0, 0.7
    ps, pt = F.softmax(s.reshape(-1, 11) / T, -1), F.softmax(t.reshape(-1, 11) / T, -1)
    kl = (pt * (pt.log() - ps.log())).sum(-1).mean()
    ce = F.cross_entropy(s.reshape(-1, 11), y.reshape(-1))
    assert distill_loss(s, t, y, a, T).item() == pytest.approx((a * T * T * kl + (1 - a) * ce).item(), rel=1e-5)
    assert distill_loss(t, t, y, 1.0, T).item() == pytest.approx(0.0, abs=1e-6)  # KL(p||p) = 0


def _ctx(tmp_path: Path, **artifacts) -> RunContext:
    ctx = RunContext(run_id=None, spec=None, workdir=tmp_path, seed=1)
    ctx.artifacts.update(artifacts)
    return ctx


def test_distill_step_trains_the_run_student_and_lowers_its_loss(tiny_model_dir, corpus_file, tmp_path,
                                                                make_tiny) -> None:

    from llmos_compress.config import DistillConfig
    from llmos_compress.distill import DistillStep
    from llmos_compress.measure import open_data, perplexity
    from llmos_models.io import load_model

    teacher, tok = load_model(tiny_model_dir)
    data = open_data(corpus_file, tok, 64)
    student = make_tiny(teacher.config.vocab_size, layers=1, hidden=32, heads=2, kv=2, inter=64, seed=3)
    before = perplexity(student, data.split("validation"), max_blocks=16)["val_ppl"]
    ctx = _ctx(tmp_path, model=student, teacher=teacher, dataset=data, teacher_version="tiny:1")
    m = DistillStep(DistillConfig(steps=30, batch_size=8, lr=3e-3, warmup_steps=3, eval_batches=2)).run(ctx)
    assert ctx.artifacts["model"] is student
    assert ctx.artifacts["lineage"]["method"] == "distill"
    assert ctx.artifacts["lineage"]["settings"]["teacher"] == "tiny:1"
    assert m["val_ppl"] < before
    assert m["params_ratio_vs_teacher"] < 0.5


def test_distill_step_errors(tiny_model_dir, corpus_file, tmp_path, make_tiny) -> None:

    from llmos_compress.distill import DistillStep
    from llmos_compress.measure import open_data
    from llmos_models.io import load_model

    teacher, tok = load_model(tiny_model_dir)
    data = open_data(corpus_file, tok, 64)
    with pytest.raises(ValidationError, match="needs a teacher"):
        DistillStep().run(_ctx(tmp_path, model=teacher, dataset=data))
    other = make_tiny(100)
    with pytest.raises(ValidationError, match="vocabularies differ"):
        DistillStep().run(_ctx(tmp_path, model=other, teacher=teacher, dataset=data))


def test_prune_step_in_a_pipeline_context(tiny_model_dir, corpus_file, tmp_path) -> None:
    from llmos_compress.config import PruneConfig
    from llmos_compress.measure import open_data
    from llmos_compress.prune import PruneStep, sparsity_of
    from llmos_models.io import load_model

    model, tok = load_model(tiny_model_dir)
    data = open_data(corpus_file, tok, 64)
    ctx = _ctx(tmp_path, model=model, dataset=data)
    m = PruneStep(PruneConfig(sparsity=0.4, recovery_steps=5, batch_size=4)).run(ctx)
    # the recovery fine-tune keeps pruned weights at zero
    assert m["sparsity"] == pytest.approx(0.4, abs=0.01) == sparsity_of(model)["sparsity"]
    assert ctx.artifacts["lineage"]["method"] == "prune_magnitude"
    with pytest.raises(ValidationError, match="needs training data"):
        PruneStep(PruneConfig(recovery_steps=5)).run(_ctx(tmp_path, model=model))
    import pydantic

    with pytest.raises(pydantic.ValidationError, match="heads applies to structured"):
        PruneConfig(heads=0.5)


def test_structured_prune_refuses_non_llama_models(tmp_path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    from llmos_compress.config import PruneConfig
    from llmos_compress.prune import PruneStep

    gpt2 = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=64, n_positions=32))
    with pytest.raises(ValidationError, match="structured pruning supports Llama-style models"):
        PruneStep(PruneConfig(structured=True)).run(_ctx(tmp_path, model=gpt2))


def test_structured_head_pruning_refuses_a_head_count_transformers_cannot_load(tiny_model_dir, tmp_path) -> None:
    from llmos_compress.config import PruneConfig
    from llmos_compress.prune import PruneStep
    from llmos_models.io import load_model

    model, _ = load_model(tiny_model_dir)  # 4 heads, hidden 64: 3 heads left would not divide 64
    with pytest.raises(ValidationError, match="use heads = one of 0.5, 0.75"):
        PruneStep(PruneConfig(structured=True, heads=0.25)).run(_ctx(tmp_path, model=model))
    assert model.config.num_attention_heads == 4 and model.config.intermediate_size == 128  # untouched
