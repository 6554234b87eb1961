"""Pruning: unstructured magnitude pruning and structured pruning of Llama-style models.

**Unstructured** (``structured = false``): ``torch.nn.utils.prune`` zeroes the
smallest-magnitude weights of every ``nn.Linear`` except the output projection
(globally or per layer), then the pruning is made permanent. The model keeps its
dense shape: on CPU it is *not* smaller on disk nor faster (dense kernels multiply the
zeros too); the metrics report the sparsity that was reached, nothing more.

**Structured** (``structured = true``, Llama-style models): whole MLP neurons (rows of
``gate_proj``/``up_proj``, columns of ``down_proj``) and optionally whole attention
heads (key/value groups with their query heads, and the matching ``o_proj`` columns)
are removed, the same number in every layer, chosen per layer by importance; the
``nn.Linear`` layers are rebuilt smaller and the config updated (``intermediate_size``,
``num_attention_heads``, ``num_key_value_heads``, ``head_dim``), so the saved model
really is smaller and faster and reloads with plain ``transformers``.

Importance of a neuron is its mean absolute activation on a few calibration batches
times the norm of its output weights (weights only when there is no data); of a head,
the mean norm of its attention output times the norm of its ``o_proj`` columns.
"""

from __future__ import annotations

from typing import Any

from llmos.sdk import DATASET, LINEAGE, METRICS, MODEL, ValidationError


def _prunable_linears(model: Any) -> list[tuple[str, Any]]:
    import torch

    out_emb = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return [(n, m) for n, m in model.named_modules() if type(m) is torch.nn.Linear and m is not out_emb]


def sparsity_of(model: Any) -> dict[str, float]:
    """Fraction of zero weights in the prunable Linear layers, and over all parameters."""
    zeros = total = 0
    for _, m in _prunable_linears(model):
        zeros += int((m.weight == 0).sum())
        total += m.weight.numel()
    all_zeros = sum(int((p == 0).sum()) for p in model.parameters())
    all_total = sum(p.numel() for p in model.parameters())
    return {"sparsity": zeros / max(1, total), "sparsity_overall": all_zeros / max(1, all_total)}


def prune_unstructured(model: Any, amount: float, scope: str = "global") -> dict[str, float]:
    """Zero the ``amount`` smallest-magnitude weights of the Linear layers, permanently."""
    import torch
    from torch.nn.utils import prune

    layers = _prunable_linears(model)
    if not layers:
        raise ValidationError("the model has no nn.Linear layer to prune")
    with torch.no_grad():
        if scope == "global":
            prune.global_unstructured([(m, "weight") for _, m in layers], pruning_method=prune.L1Unstructured,
                                      amount=amount)
        else:
            for _, m in layers:
                prune.l1_unstructured(m, "weight", amount=amount)
        for _, m in layers:
            prune.remove(m, "weight")
    return sparsity_of(model)


# -- structured --------------------------------------------------------------------


def _llama_layers(model: Any) -> list[Any]:
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    ok = layers is not None and all(
        hasattr(layer, "mlp") and all(hasattr(layer.mlp, p) for p in ("gate_proj", "up_proj", "down_proj"))
        and all(hasattr(layer.self_attn, p) for p in ("q_proj", "k_proj", "v_proj", "o_proj"))
        for layer in layers
    )
    if not ok:
        arch = (getattr(model.config, "architectures", None) or [type(model).__name__])[0]
        raise ValidationError(
            f"structured pruning supports Llama-style models (gate/up/down MLP, q/k/v/o attention), not {arch}: "
            f"use structured = false"
        )
    return list(layers)


def _new_linear(old: Any, weight: Any, bias: Any) -> Any:
    import torch

    lin = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, dtype=weight.dtype)
    with torch.no_grad():
        lin.weight.copy_(weight)
        if bias is not None:
            lin.bias.copy_(bias)
    lin.train(old.training)
    return lin


def _rows(lin: Any, keep: Any) -> Any:
    return _new_linear(lin, lin.weight[keep], lin.bias[keep] if lin.bias is not None else None)


def _cols(lin: Any, keep: Any) -> Any:
    return _new_linear(lin, lin.weight[:, keep], lin.bias)


def _calibrate(model: Any, layers: list[Any], blocks: Any, batches: int, batch_size: int) -> tuple[list, list]:
    """Mean |activation| entering each ``down_proj`` and ``o_proj`` (per input feature)."""
    import numpy as np
    import torch

    mlp_acc = [None] * len(layers)
    att_acc = [None] * len(layers)
    counts = [0] * len(layers)
    hooks = []

    def make(i: int, acc: list) -> Any:
        def hook(_mod: Any, args: tuple) -> None:
            x = args[0].detach().abs().reshape(-1, args[0].shape[-1]).sum(0)
            acc[i] = x if acc[i] is None else acc[i] + x
            if acc is mlp_acc:
                counts[i] += args[0].numel() // args[0].shape[-1]
        return hook

    for i, layer in enumerate(layers):
        hooks.append(layer.mlp.down_proj.register_forward_pre_hook(make(i, mlp_acc)))
        hooks.append(layer.self_attn.o_proj.register_forward_pre_hook(make(i, att_acc)))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for b in range(batches):
                chunk = blocks[b * batch_size:(b + 1) * batch_size]
                if len(chunk) == 0:
                    break
                model(input_ids=torch.from_numpy(np.asarray(chunk, dtype=np.int64)))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    if not counts[0]:
        return [None] * len(layers), [None] * len(layers)
    return [a / c for a, c in zip(mlp_acc, counts)], [a / c for a, c in zip(att_acc, counts)]


def prune_structured(model: Any, amount: float, heads: float = 0.0, blocks: Any = None,
                     calibration_batches: int = 4, batch_size: int = 8) -> dict[str, float]:
    """Remove ``amount`` of the MLP neurons and ``heads`` of the attention heads (key/value
    groups) of every layer, in place; update ``model.config``. Returns what was removed."""
    import torch

    from llmos_compress.measure import count_parameters

    layers = _llama_layers(model)
    cfg = model.config
    before = count_parameters(model)
    inter = int(cfg.intermediate_size)
    keep_n = max(1, int(round(inter * (1.0 - amount))))
    n_heads = int(cfg.num_attention_heads)
    n_kv = int(getattr(cfg, "num_key_value_heads", None) or n_heads)
    head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // n_heads)
    group = n_heads // n_kv
    keep_kv = n_kv
    if heads:
        # transformers requires hidden_size to be a multiple of the number of heads
        valid = [k for k in range(1, n_kv) if cfg.hidden_size % (k * group) == 0]
        wanted = n_kv - int(round(n_kv * heads))
        choices = ", ".join(f"{1 - k / n_kv:.3g}" for k in reversed(valid)) or "none (use heads = 0)"
        if wanted not in valid:
            raise ValidationError(
                f"heads = {heads} would keep {wanted} of {n_kv} key/value heads, but with hidden size "
                f"{cfg.hidden_size} the heads left must divide it: use heads = one of {choices}"
            )
        keep_kv = wanted
    mlp_act, att_act = (_calibrate(model, layers, blocks, calibration_batches, batch_size)
                        if blocks is not None and calibration_batches > 0 else ([None] * len(layers),) * 2)
    with torch.no_grad():
        for i, layer in enumerate(layers):
            mlp = layer.mlp
            out_norm = mlp.down_proj.weight.norm(dim=0)
            if mlp_act[i] is not None:
                score = mlp_act[i] * out_norm
            else:
                score = mlp.gate_proj.weight.norm(dim=1) * mlp.up_proj.weight.norm(dim=1) * out_norm
            keep = torch.sort(torch.topk(score, keep_n).indices).values
            mlp.gate_proj, mlp.up_proj = _rows(mlp.gate_proj, keep), _rows(mlp.up_proj, keep)
            mlp.down_proj = _cols(mlp.down_proj, keep)
            if hasattr(mlp, "intermediate_size"):
                mlp.intermediate_size = keep_n
            if keep_kv < n_kv:
                att = layer.self_attn
                col_norm = att.o_proj.weight.norm(dim=0).reshape(n_heads, head_dim).norm(dim=1)
                act = att_act[i].reshape(n_heads, head_dim).norm(dim=1) if att_act[i] is not None else 1.0
                kv_score = (col_norm * act).reshape(n_kv, group).sum(1)
                keep_groups = torch.sort(torch.topk(kv_score, keep_kv).indices).values
                kv_idx = (keep_groups[:, None] * head_dim + torch.arange(head_dim)).reshape(-1)
                q_heads = (keep_groups[:, None] * group + torch.arange(group)).reshape(-1)
                q_idx = (q_heads[:, None] * head_dim + torch.arange(head_dim)).reshape(-1)
                att.q_proj = _rows(att.q_proj, q_idx)
                att.k_proj, att.v_proj = _rows(att.k_proj, kv_idx), _rows(att.v_proj, kv_idx)
                att.o_proj = _cols(att.o_proj, q_idx)
                for attr, value in (("num_heads", keep_kv * group), ("num_key_value_heads", keep_kv)):
                    if hasattr(att, attr):
                        setattr(att, attr, value)
    cfg.intermediate_size = keep_n
    if keep_kv < n_kv:
        cfg.head_dim = head_dim
        cfg.num_attention_heads = keep_kv * group
        cfg.num_key_value_heads = keep_kv
    after = count_parameters(model)
    return {
        "params_before": float(before),
        "params": float(after),
        "params_removed_ratio": 1.0 - after / before,
        "intermediate_size": float(keep_n),
        "num_attention_heads": float(cfg.num_attention_heads),
        "heads_removed_ratio": 1.0 - keep_kv / n_kv,
    }


class PruneStep:
    """``compression.prune``: prune ``ctx.artifacts["model"]`` in place (optionally
    fine-tune it on ``ctx.artifacts["dataset"]``) and record the lineage."""

    def __init__(self, config: Any = None) -> None:
        from llmos_compress.config import PruneConfig

        self.config = config if config is not None else PruneConfig()

    def needs_dataset(self) -> bool:
        return self.config.recovery_steps > 0

    def run(self, ctx: Any) -> dict[str, float]:
        from llmos_compress.int8 import is_quantized
        from llmos_compress.measure import fit

        cfg = self.config
        model = MODEL.get(ctx)
        if model is None:
            raise ValidationError("compression.prune needs a model: put model.load or a training stage before it")
        if is_quantized(model):
            raise ValidationError("cannot prune an int8-quantized model: prune the fp32 model, then quantize")
        ds = DATASET.get(ctx)
        if cfg.recovery_steps and ds is None:
            raise ValidationError(
                "recovery_steps > 0 needs training data: put a data stage before compression.prune "
                "(or pass --data), or set recovery_steps = 0"
            )
        train = ds.split("train") if ds is not None else None
        if cfg.structured:
            _llama_layers(model)  # refuse before touching anything
            metrics = prune_structured(model, cfg.sparsity, cfg.heads, blocks=train,
                                       calibration_batches=cfg.calibration_batches, batch_size=cfg.batch_size)
            method = "prune_structured"
        else:
            metrics = prune_unstructured(model, cfg.sparsity, cfg.scope)
            metrics["dense_storage"] = 1.0  # zeros are stored: no size or CPU speed gain
            method = "prune_magnitude"
        if cfg.recovery_steps:
            seed = cfg.seed if cfg.seed is not None else int(getattr(ctx, "seed", 0))
            keep_masks = None
            if not cfg.structured:  # keep the pruned weights at zero while fine-tuning
                keep_masks = [(m, m.weight != 0) for _, m in _prunable_linears(model)]
            with ctx.progress(cfg.recovery_steps, "recovery fine-tune", unit="step") as bar:
                res = fit(model, train, steps=cfg.recovery_steps, lr=cfg.lr, batch_size=cfg.batch_size, seed=seed,
                          warmup_steps=min(10, cfg.recovery_steps // 10), progress=bar,
                          should_stop=lambda: getattr(ctx, "should_stop", False),
                          log=lambda s, m: ctx.log_metrics(s, m, kind="train"),
                          loss_fn=_masked_loss(keep_masks))
            if keep_masks:
                _apply_masks(keep_masks)
                metrics.update(sparsity_of(model))
            metrics["recovery_loss"] = res["loss"]
        model.eval()
        MODEL.set(ctx, model)
        LINEAGE.set(ctx, {"method": method, "settings": cfg.model_dump(mode="json")})
        METRICS.set(ctx, dict(metrics))  # the parent's evaluation no longer describes the model
        return metrics

    __call__ = run


def _apply_masks(masks: list | None) -> None:
    import torch

    if not masks:
        return
    with torch.no_grad():
        for m, keep in masks:
            m.weight.mul_(keep)


def _masked_loss(masks: list | None) -> Any:
    """Cross-entropy that first re-applies the pruning masks (so the fine-tune cannot
    regrow pruned weights: they are zero at every forward pass and at the end)."""
    from llmos_compress.measure import lm_loss

    def loss(model: Any, x: Any) -> Any:
        _apply_masks(masks)
        return lm_loss(model, x)

    return loss
