"""LR schedules against their formulas, through a real optimizer and LambdaLR."""

from __future__ import annotations

import math

import pytest
import torch

from llmos_train.schedules import make_schedule


def lrs(name: str, steps: int, base_lr: float = 1.0, **kw) -> list[float]:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base_lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, make_schedule(name, **kw))
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])  # the lr the update uses
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("d_model,warmup", [(512, 4000), (64, 10), (32, 1)])
def test_noam_matches_formula(d_model: int, warmup: int) -> None:
    got = lrs("noam", 3 * warmup + 5, base_lr=2.0, warmup=warmup, settings={"d_model": d_model})
    for i, lr in enumerate(got):
        step = i + 1
        want = 2.0 * d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)
        assert lr == pytest.approx(want, rel=1e-12)
    peak = max(range(len(got)), key=got.__getitem__) + 1
    assert peak == warmup  # rises to step = warmup, then decays as step^-0.5


@pytest.mark.parametrize("warmup,total,r", [(10, 100, 0.1), (0, 50, 0.0), (5, 6, 0.5)])
def test_cosine_matches_formula(warmup: int, total: int, r: float) -> None:
    got = lrs("cosine", total, base_lr=3e-3, warmup=warmup, total=total, settings={"min_lr_ratio": r})
    for i, lr in enumerate(got):
        step = i + 1
        if step <= warmup:
            want = step / warmup
        else:
            p = (step - warmup) / max(1, total - warmup)
            want = r + (1 - r) * 0.5 * (1 + math.cos(math.pi * p))
        assert lr == pytest.approx(3e-3 * want, rel=1e-12)
    assert got[-1] == pytest.approx(3e-3 * r, abs=1e-15)  # ends at the floor


def test_linear_warmup_and_constant() -> None:
    got = lrs("linear-warmup", 12, base_lr=0.5, warmup=8, total=12)
    assert got == pytest.approx([0.5 * min(1.0, s / 8) for s in range(1, 13)])
    assert lrs("constant", 5, base_lr=0.25) == [0.25] * 5


def test_unknown_schedule_and_bad_noam() -> None:
    import pydantic

    with pytest.raises(ValueError, match=r"no lr schedule named 'step' \(available lr_schedules: constant, cosine, linear-warmup, noam;"):
        make_schedule("step")
    with pytest.raises(pydantic.ValidationError, match="warmup_steps"):
        make_schedule("noam", warmup=0, settings={"d_model": 64})
    with pytest.raises(ValueError, match="d_model"):
        make_schedule("noam", warmup=4)  # no width given, none from the model
