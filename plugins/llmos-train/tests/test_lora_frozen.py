"""A LoRA step does no work for the frozen base beyond what the adapter's gradients need:
no weight gradients (computed or stored) for frozen weights, none for the tied
embedding / lm_head, no gradient into the embedding output, no optimizer state or
master copies for frozen parameters. Counted, not timed: FLOPs of the backward pass
through torch's FlopCounterMode (matmuls and attention)."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from llmos_models.lm import lm_loss
from llmos_train.config import TrainConfig
from llmos_train.loop import TrainIO, train
from llmos_train.lora import LoraConfig, attach_lora
from llmos_train.optim import make_optimizer


def _flops(model, x) -> tuple[int, int]:
    with FlopCounterMode(display=False) as fwd:
        loss = lm_loss(model, x)
    with FlopCounterMode(display=False) as bwd:
        loss.backward()
    return fwd.get_total_flops(), bwd.get_total_flops()


def test_lora_backward_computes_input_gradients_only_for_the_frozen_base(dataset, model_factory) -> None:
    tiny_llama = model_factory
    x = torch.from_numpy(dataset.split("train")[:8].astype("int64"))
    full_fwd, full_bwd = _flops(tiny_llama(0), x)
    # full fine-tuning: every matmul has an input and a weight gradient (the counter sees them)
    assert full_bwd >= 1.9 * full_fwd
    model = attach_lora(tiny_llama(0), LoraConfig(), "base:1")
    seen: list[bool] = []
    hook = model.get_input_embeddings().register_forward_hook(lambda m, i, out: seen.append(out.requires_grad))
    lora_fwd, lora_bwd = _flops(model, x)
    hook.remove()
    # frozen base: only input gradients (≈ the forward's matmul work), and none below the
    # first adapter's input (layer 0's q/k/v input gradients are skipped: the embedding
    # output needs no gradient); the adapter's own weight gradients are tiny
    assert seen == [False]
    assert lora_bwd < lora_fwd, (lora_fwd, lora_bwd)
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert any("embed_tokens" in n for n in frozen) and all("lora_" not in n for n in frozen)
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_lora_optimizer_holds_only_the_adapter_and_keeps_the_base_as_it_was(dataset, model_factory) -> None:
    model = attach_lora(model_factory(0), LoraConfig(), "base:1")
    adapter = {id(p) for p in model.parameters() if p.requires_grad}
    opt = make_optimizer("adamw", model, lr=1e-3)
    held = [p for g in opt.param_groups for p in g["params"]]
    assert {id(p) for p in held} == adapter and len(held) == len(adapter)
    base = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    ptrs = {n: p.data_ptr() for n, p in model.named_parameters() if not p.requires_grad}
    train(model, dataset.split("train"), dataset.split("train")[:0], TrainConfig(max_steps=3, batch_size=4), TrainIO(),
          seed=0)
    now = dict(model.named_parameters())
    # frozen weights: unchanged, the same storage (no fp32 master copy made), no gradient kept
    assert all(torch.equal(now[n], v) and now[n].data_ptr() == ptrs[n] and now[n].grad is None
               for n, v in base.items())
