"""LAMB against its formula; the optimizer factory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmos_train.optim import Lamb, make_optimizer, param_groups


def lamb_reference(p, grads, lr, b1, b2, eps, wd, max_norm=10.0):
    """LAMB (You et al. 2019, Algorithm 2) in float64 NumPy, one tensor."""
    p = p.astype(np.float64).copy()
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        g = g.astype(np.float64)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        r = m_hat / (np.sqrt(v_hat) + eps) + wd * p
        w_norm = min(np.linalg.norm(p), max_norm)
        r_norm = np.linalg.norm(r)
        trust = w_norm / r_norm if w_norm > 0 and r_norm > 0 else 1.0
        p = p - lr * trust * r
    return p


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_lamb_matches_formula(wd: float) -> None:
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=(5, 7)).astype(np.float32)
    grads = [rng.normal(size=(5, 7)).astype(np.float32) for _ in range(4)]
    param = torch.nn.Parameter(torch.from_numpy(p0.copy()).double())
    opt = Lamb([param], lr=0.01, betas=(0.9, 0.99), eps=1e-6, weight_decay=wd)
    for g in grads:
        param.grad = torch.from_numpy(g).double()
        opt.step()
    want = lamb_reference(p0, grads, 0.01, 0.9, 0.99, 1e-6, wd)
    np.testing.assert_allclose(param.detach().numpy(), want, rtol=1e-10, atol=1e-12)


def test_lamb_trust_ratio_is_one_for_zero_weights() -> None:
    param = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    param.grad = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    Lamb([param], lr=0.1, betas=(0.9, 0.999), eps=0.0).step()
    # first step: m_hat = g, v_hat = g^2 → r = sign(g); ‖p‖ = 0 → trust 1
    np.testing.assert_allclose(param.detach().numpy(), [-0.1, 0.1, -0.1])


def test_lamb_rejects_bad_settings() -> None:
    p = [torch.nn.Parameter(torch.ones(1))]
    with pytest.raises(ValueError):
        Lamb(p, lr=0)
    with pytest.raises(ValueError):
        Lamb(p, betas=(1.0, 0.9))


def test_factory_and_groups() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    groups = param_groups(model, 0.1)
    assert [len(g["params"]) for g in groups] == [1, 3]  # only the matrix decays
    assert groups[1]["weight_decay"] == 0.0
    assert isinstance(make_optimizer("adamw", model, lr=1e-3), torch.optim.AdamW)
    assert isinstance(make_optimizer("adam", model, lr=1e-3), torch.optim.Adam)
    sgd = make_optimizer("sgd", model, lr=1e-3, settings={"momentum": 0.5})
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.5
    lamb = make_optimizer("lamb", model, lr=2e-3, weight_decay=0.1)
    assert isinstance(lamb, Lamb)
    assert [(g["lr"], g["weight_decay"]) for g in lamb.param_groups] == [(2e-3, 0.1), (2e-3, 0.0)]
    with pytest.raises(ValueError, match=r"no optimizer named 'rmsprop' \(available optimizers: adam, adamw, lamb, sgd;"):
        make_optimizer("rmsprop", model, lr=1e-3)
