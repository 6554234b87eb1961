"""Optimizers: torch's AdamW, Adam and SGD, and LAMB (implemented here)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


class Lamb(torch.optim.Optimizer):
    """LAMB — layer-wise adaptive moments (You et al., 2019, "Large Batch Optimization
    for Deep Learning: Training BERT in 76 minutes", Algorithm 2).

    For each parameter tensor ``p`` with gradient ``g`` at update ``t``::

        m = β1·m + (1-β1)·g                 v = β2·v + (1-β2)·g²
        m̂ = m / (1-β1^t)                     v̂ = v / (1-β2^t)
        r = m̂ / (√v̂ + ε) + λ·p
        trust = ‖p‖ / ‖r‖   (1 when either norm is 0; ‖p‖ clipped to ``max_trust_norm``)
        p = p - lr · trust · r

    :param params: parameters or parameter groups.
    :param lr: learning rate.
    :param betas: ``(β1, β2)``.
    :param eps: ``ε``.
    :param weight_decay: ``λ`` (decoupled, inside the trust ratio as in the paper).
    :param max_trust_norm: upper clip of ``‖p‖`` (``φ`` in the paper; ``None`` = no clip).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        max_trust_norm: float | None = 10.0,
    ) -> None:
        if lr <= 0:
            raise ValueError(f"invalid learning rate {lr}")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"invalid betas {betas}")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, max_trust_norm=max_trust_norm)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if g.is_sparse:
                    raise RuntimeError("Lamb does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = float(state["step"])
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(g, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                m_hat = m / (1 - beta1**t)
                v_hat = v / (1 - beta2**t)
                r = m_hat / (v_hat.sqrt() + group["eps"])
                if group["weight_decay"]:
                    r.add_(p, alpha=group["weight_decay"])
                w_norm = p.norm()
                if group["max_trust_norm"] is not None:
                    w_norm = w_norm.clamp(max=group["max_trust_norm"])
                r_norm = r.norm()
                trust = torch.where(
                    (w_norm > 0) & (r_norm > 0), w_norm / r_norm.clamp(min=torch.finfo(r.dtype).tiny), 1.0
                )
                p.add_(r * trust, alpha=-group["lr"])
        return loss


def param_groups(model: torch.nn.Module, weight_decay: float, lr: float | None = None) -> list[dict[str, Any]]:
    """Two groups: matrices decay, vectors (biases, norms) do not. Shared (tied)
    parameters appear once. With ``lr``, each group carries it too."""
    decay, no_decay, seen = [], [], set()
    for _, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    if lr is not None:
        for g in groups:
            g["lr"] = lr
    return groups


def _on_cuda(params: list[dict[str, Any]]) -> bool:
    return any(p.is_cuda for g in params for p in g["params"])


# -- the factories llmos-train registers (llmos_register_optimizers): factory(params, config) --


def adamw(params: list[dict[str, Any]], config: Any) -> torch.optim.Optimizer:
    fused = _on_cuda(params) if config.fused is None else config.fused
    kw: dict[str, Any] = {"fused": True} if fused else {"foreach": True}
    return torch.optim.AdamW(params, betas=tuple(config.betas), eps=config.eps, **kw)


def adam(params: list[dict[str, Any]], config: Any) -> torch.optim.Optimizer:
    # Adam's weight decay is L2 added to the gradient (torch semantics)
    fused = _on_cuda(params) if config.fused is None else config.fused
    kw: dict[str, Any] = {"fused": True} if fused else {"foreach": True}
    return torch.optim.Adam(params, betas=tuple(config.betas), eps=config.eps, **kw)


def sgd(params: list[dict[str, Any]], config: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, momentum=config.momentum, nesterov=config.nesterov, foreach=True)


def lamb(params: list[dict[str, Any]], config: Any) -> torch.optim.Optimizer:
    return Lamb(params, betas=tuple(config.betas), eps=config.eps, max_trust_norm=config.max_trust_norm)


def make_optimizer(name: str, model: torch.nn.Module, *, lr: float, weight_decay: float = 0.0,
                   settings: dict[str, Any] | None = None) -> torch.optim.Optimizer:
    """Build the registered optimizer ``name`` for ``model`` (``settings``: its
    ``optimizer_config``), looked up through the plugin manager."""
    from llmos_train.extensions import OPTIMIZERS, lookup, settings as checked

    ext = lookup(OPTIMIZERS, name)
    opt = ext.load_factory()(param_groups(model, weight_decay, lr), checked(ext, settings))
    if not isinstance(opt, torch.optim.Optimizer):
        raise TypeError(f"optimizer {name!r} (plugin {ext.plugin}) returned {type(opt).__name__}, "
                        f"not a torch.optim.Optimizer")
    return opt
