"""Bar: every optimizer, clipping function and schedule against its torch counterpart."""
import math

import numpy as np
import pytest
import torch

import lstm_native as ln
from conftest import rel_err

SHAPES = [(7, 5), (5,), (3, 4, 2), (1,)]

CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.02)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.02, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.05)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.02, weight_decay=0.1, amsgrad=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, weight_decay=0.01)),
    ("RMSprop", dict(lr=0.005, centered=True, momentum=0.9)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kwargs", CASES)
def test_twenty_steps_match_torch(name, kwargs, dtype):
    rng = np.random.default_rng(0)
    ours = [ln.Parameter(rng.standard_normal(s).astype(dtype)) for s in SHAPES]
    theirs = [torch.tensor(p.data.copy(), requires_grad=True) for p in ours]
    opt = getattr(ln.optim, name)(ours, **kwargs)
    topt = getattr(torch.optim, name)(theirs, **kwargs)
    for _ in range(20):
        for p, t in zip(ours, theirs):
            g = rng.standard_normal(p.shape).astype(dtype)
            p.grad[...] = g
            t.grad = torch.tensor(g)
        opt.step()
        topt.step()
    for p, t in zip(ours, theirs):
        assert rel_err(p.data, t.detach().numpy()) < 1e-6


def test_optimizer_checks_arguments():
    p = [ln.Parameter(np.zeros(3, np.float32))]
    with pytest.raises(ValueError, match="lr must be >= 0"):
        ln.optim.Adam(p, lr=-1)
    with pytest.raises(ValueError, match=r"betas\[1\] must be in \[0, 1\)"):
        ln.optim.Adam(p, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="nesterov needs momentum"):
        ln.optim.SGD(p, nesterov=True)
    with pytest.raises(ValueError, match="no parameters"):
        ln.optim.SGD([])
    with pytest.raises(TypeError, match="share one dtype"):
        ln.optim.SGD(p + [ln.Parameter(np.zeros(2))])


@pytest.mark.parametrize("norm_type", [2.0, math.inf, 1.0])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    rng = np.random.default_rng(1)
    ours = [ln.Parameter(np.zeros(s, np.float32)) for s in SHAPES]
    theirs = [torch.zeros(s, requires_grad=True) for s in SHAPES]
    for p, t in zip(ours, theirs):
        p.grad[...] = rng.standard_normal(p.shape) * 3
        t.grad = torch.tensor(p.grad.copy())
    norm = ln.clip_grad_norm_(ours, max_norm, norm_type)
    tnorm = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    assert abs(norm - float(tnorm)) / float(tnorm) < 1e-6
    for p, t in zip(ours, theirs):
        assert rel_err(p.grad, t.grad.numpy()) < 1e-6


def test_clip_grad_value_matches_torch_and_returns_norm():
    rng = np.random.default_rng(2)
    ours = [ln.Parameter(np.zeros(s, np.float32)) for s in SHAPES]
    theirs = [torch.zeros(s, requires_grad=True) for s in SHAPES]
    for p, t in zip(ours, theirs):
        p.grad[...] = rng.standard_normal(p.shape)
        t.grad = torch.tensor(p.grad.copy())
    expected = float(np.sqrt(sum((p.grad.astype(np.float64) ** 2).sum() for p in ours)))
    norm = ln.clip_grad_value_(ours, 0.3)
    torch.nn.utils.clip_grad_value_(theirs, 0.3)
    assert abs(norm - expected) < 1e-6 * expected
    for p, t in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad, t.grad.numpy())


def test_clip_grad_norm_reports_nonfinite():
    p = ln.Parameter(np.zeros(3, np.float32))
    p.grad[1] = np.nan
    assert math.isnan(ln.clip_grad_norm_([p], 1.0))
    with pytest.raises(FloatingPointError, match="norm of the gradients is nan"):
        ln.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)


@pytest.mark.parametrize("ours_cls,theirs_cls,kwargs", [
    ("StepLR", "StepLR", dict(step_size=3, gamma=0.5)),
    ("ExponentialLR", "ExponentialLR", dict(gamma=0.9)),
    ("CosineAnnealingLR", "CosineAnnealingLR", dict(T_max=10, eta_min=0.001)),
    ("LinearLR", "LinearLR", dict(start_factor=0.25, end_factor=1.0, total_iters=4)),
])
def test_schedules_match_torch(ours_cls, theirs_cls, kwargs):
    opt = ln.optim.SGD([ln.Parameter(np.zeros(1))], lr=0.1)
    topt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = getattr(ln.optim, ours_cls)(opt, **kwargs)
    tsched = getattr(torch.optim.lr_scheduler, theirs_cls)(topt, **kwargs)
    for _ in range(12):
        assert abs(opt.lr - topt.param_groups[0]["lr"]) < 1e-12
        sched.step()
        topt.step()
        tsched.step()


def test_reduce_on_plateau_matches_torch():
    opt = ln.optim.SGD([ln.Parameter(np.zeros(1))], lr=0.1)
    topt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = ln.optim.ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=1, min_lr=0.01)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, factor=0.5, patience=2, cooldown=1, min_lr=0.01)
    for metric in [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.8, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85]:
        sched.step(metric)
        tsched.step(metric)
        assert abs(opt.lr - topt.param_groups[0]["lr"]) < 1e-12


def test_linear_warmup_reaches_the_base_rate():
    opt = ln.optim.Adam([ln.Parameter(np.zeros(1))], lr=0.01)
    sched = ln.optim.LinearWarmup(opt, warmup_epochs=4, start_factor=0.1)
    rates = [opt.lr]
    for _ in range(6):
        sched.step()
        rates.append(opt.lr)
    np.testing.assert_allclose(rates, [0.001, 0.00325, 0.0055, 0.00775, 0.01, 0.01, 0.01])
