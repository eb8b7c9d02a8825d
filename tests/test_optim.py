"""The official optimizer and schedule (docs/faithfulness.md §5), checked against independent computations."""

import numpy as np
import pytest
import torch
from torch import nn

from electra import init
from electra.config import preset
from electra.flops import count_parameters
from electra.objective import SpecialIds
from electra.optim import AdamW, lr_factor, param_groups


def reference_adam_weight_decay(p0, grads, lrs, wd, b1=0.9, b2=0.999, eps=1e-6):
    """Faithfulness §5.2 in float64 numpy: m, v without bias correction; p <- p - lr (m / (sqrt(v) + eps) + wd p)."""
    p, m, v = p0.astype(np.float64).copy(), np.zeros_like(p0, np.float64), np.zeros_like(p0, np.float64)
    for g, lr in zip(grads, lrs, strict=True):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * (m / (np.sqrt(v) + eps) + wd * p)
    return p


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 2e-6)])
def test_update_equals_spec_formula_over_many_steps(dtype, tol, fused):
    """Both implementations: foreach ops, and PyTorch's fused AdamW kernel (the GPU default) given step 2^40."""
    rng = np.random.default_rng(0)
    steps, T, W = 60, 100, 10
    decayed0, plain0 = rng.normal(size=(5, 3)), rng.normal(size=7)
    grads_d = [rng.normal(scale=s, size=(5, 3)) for s in rng.uniform(1e-4, 3, steps)]
    grads_p = [rng.normal(scale=s, size=7) for s in rng.uniform(1e-4, 3, steps)]
    lrs = [0.05 * lr_factor(t, T, W) for t in range(steps)]
    a = nn.Parameter(torch.tensor(decayed0, dtype=dtype))
    b = nn.Parameter(torch.tensor(plain0, dtype=dtype))
    opt = AdamW([{"params": [a], "weight_decay": 0.01}, {"params": [b], "weight_decay": 0.0}], eps=1e-6, fused=fused)
    for t in range(steps):
        for group in opt.param_groups:
            group["lr"] = lrs[t]
        a.grad = torch.tensor(grads_d[t], dtype=dtype)
        b.grad = torch.tensor(grads_p[t], dtype=dtype)
        opt.step()
    np.testing.assert_allclose(
        a.detach().double().numpy(), reference_adam_weight_decay(decayed0, grads_d, lrs, 0.01), rtol=tol, atol=tol
    )
    np.testing.assert_allclose(
        b.detach().double().numpy(), reference_adam_weight_decay(plain0, grads_p, lrs, 0.0), rtol=tol, atol=tol
    )


def test_step_zero_has_lr_zero_but_fills_the_moments():
    p = nn.Parameter(torch.ones(3))
    opt = AdamW([{"params": [p], "weight_decay": 0.01}])
    opt.param_groups[0]["lr"] = 0.0
    p.grad = torch.tensor([1.0, -2.0, 3.0])
    opt.step()
    assert torch.equal(p.detach(), torch.ones(3))  # no movement, no decay
    torch.testing.assert_close(opt.state[p]["exp_avg"], 0.1 * p.grad)  # 1 - beta1; no bias correction
    torch.testing.assert_close(opt.state[p]["exp_avg_sq"], 0.001 * p.grad**2)


def test_first_update_has_no_bias_correction():
    p = nn.Parameter(torch.zeros(2, dtype=torch.float64))
    opt = AdamW([{"params": [p], "weight_decay": 0.0}], lr=1.0)
    p.grad = torch.tensor([4.0, -0.5], dtype=torch.float64)
    opt.step()
    g = np.array([4.0, -0.5])  # m = 0.1 g, sqrt(v) = sqrt(0.001) |g|: the step is 0.1/sqrt(0.001) ~ 3.16, not 1
    np.testing.assert_allclose(p.detach().numpy(), -(0.1 * g) / (np.sqrt(0.001) * np.abs(g) + 1e-6), rtol=1e-12)


@pytest.mark.parametrize("fused", [False, True])
def test_bias_correction_option_equals_torch_adamw(fused):
    torch.manual_seed(0)
    w0 = torch.randn(6, 4, dtype=torch.float64)
    ours, ref = nn.Parameter(w0.clone()), nn.Parameter(w0.clone())
    opt = AdamW([ours], lr=1e-2, eps=1e-6, weight_decay=0.01, bias_correction=True, fused=fused)
    torch_opt = torch.optim.AdamW([ref], lr=1e-2, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01)
    for t in range(30):
        g = torch.randn(6, 4, dtype=torch.float64) * (t + 1)
        ours.grad, ref.grad = g.clone(), g.clone()
        opt.step()
        torch_opt.step()
    torch.testing.assert_close(ours.detach(), ref.detach(), rtol=1e-10, atol=1e-12)


def test_step_count_is_a_number_and_older_tensor_counts_resume_the_same():
    """The step counter is a plain int (no tensor op per parameter per step); optimizer states saved by earlier
    versions hold it as a tensor and must continue exactly like the new ones (bias correction reads it)."""
    torch.manual_seed(0)
    w0, grads = torch.randn(5, dtype=torch.float64), [torch.randn(5, dtype=torch.float64) for _ in range(6)]

    def run(tensor_step_after: int | None):
        p = nn.Parameter(w0.clone())
        opt = AdamW([p], lr=1e-2, weight_decay=0.01, bias_correction=True)
        for t, g in enumerate(grads):
            if t == tensor_step_after:  # as loaded from an older checkpoint
                state = opt.state_dict()
                state["state"][0]["step"] = torch.tensor(float(state["state"][0]["step"]))
                opt = AdamW([p], lr=1e-2, weight_decay=0.01, bias_correction=True)
                opt.load_state_dict(state)
            p.grad = g.clone()
            opt.step()
        return p.detach(), opt.state[p]["step"]

    new, steps = run(None)
    old, old_steps = run(3)
    assert steps == old_steps == 6 and isinstance(steps, int)
    torch.testing.assert_close(new, old, rtol=0, atol=0)


@pytest.mark.parametrize("fused", [False, True])
def test_found_inf_skips_the_update_and_leaves_the_moments(fused):
    """A nonzero `found_inf` (the training loop's "a step was not finite") applies nothing; zero applies the step."""
    torch.manual_seed(0)
    p = nn.Parameter(torch.randn(4, 3))
    opt = AdamW([{"params": [p], "weight_decay": 0.01}], lr=1e-2, fused=fused)
    p.grad = torch.randn(4, 3)
    opt.step(found_inf=torch.tensor(False))
    before = p.detach().clone(), opt.state[p]["exp_avg"].clone(), opt.state[p]["exp_avg_sq"].clone()
    p.grad = torch.full((4, 3), float("nan"))
    opt.step(found_inf=torch.tensor(True))
    for a, b in zip(before, (p.detach(), opt.state[p]["exp_avg"], opt.state[p]["exp_avg_sq"]), strict=True):
        assert torch.equal(a, b)


def test_fused_refuses_parameters_of_mixed_dtypes():
    with pytest.raises(ValueError, match="one dtype on one device"):
        AdamW([nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2, dtype=torch.float64))], fused=True)


@pytest.mark.parametrize(
    "t,expected", [(0, 0.0), (1, 4.999995e-8), (5000, 2.4875e-4), (10000, 4.95e-4), (500000, 2.5e-4), (10**6, 0.0)]
)
def test_learning_rate_matches_spec_table(t, expected):
    assert 5e-4 * lr_factor(t, 10**6, 10**4) == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_learning_rate_formula_at_chosen_steps():
    T, W = 1000, 100
    for t in (0, 1, 37, 99, 100, 101, 500, 999, 1000, 1500):
        expected = (1 - min(t, T) / T) * min(1.0, t / W)
        assert lr_factor(t, T, W) == pytest.approx(expected, abs=1e-15)
    assert lr_factor(10, 100, 0) == pytest.approx(0.9)  # no warmup: step 0 already has the full rate
    assert lr_factor(50, 100, 10, power=2.0) == pytest.approx(0.25)
    # richarddwang/electra_pytorch: warm up to the peak, then decay linearly to 0
    assert [lr_factor(t, 100, 10, schedule="warmup_then_decay") for t in (0, 5, 10, 55, 100)] == pytest.approx(
        [0.0, 0.5, 1.0, 0.5, 0.0]
    )


def test_exactly_which_parameters_get_weight_decay():
    model = init.build(preset("tiny", vocab_size=50, num_hidden_layers=1, max_length=16), SpecialIds(0, 1, 2, 3, 4))
    groups = param_groups(model.named_parameters(), 0.01)
    decayed = {n for g in groups if g["weight_decay"] == 0.01 for n in g["names"]}
    plain = {n for g in groups if g["weight_decay"] == 0.0 for n in g["names"]}
    # independently, by module type: every Linear/Embedding weight is decayed (embeddings included); every
    # LayerNorm parameter and every bias is not
    by_type_decay, by_type_plain = set(), set()
    seen = set()
    for mod_name, module in model.named_modules():
        for p_name, p in module.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            name = f"{mod_name}.{p_name}"
            if isinstance(module, nn.LayerNorm) or p_name == "bias":
                by_type_plain.add(name)
            else:
                assert isinstance(module, (nn.Linear, nn.Embedding))
                by_type_decay.add(name)
    assert decayed == by_type_decay and plain == by_type_plain
    assert "discriminator.electra.embeddings.word_embeddings.weight" in decayed
    assert "discriminator.electra.embeddings.position_embeddings.weight" in decayed
    assert "generator.generator_lm_head.bias" in plain  # the official output_bias
    assert "discriminator.electra.embeddings.LayerNorm.weight" in plain
    assert "generator.generator_predictions.LayerNorm.bias" in plain
    assert "discriminator.discriminator_predictions.dense_prediction.bias" in plain
    assert "generator.electra.embeddings_project.weight" in decayed
    # shared tensors (embeddings, tied output layer) appear exactly once
    params = [p for g in groups for p in g["params"]]
    assert len({id(p) for p in params}) == len(params)
    assert sum(p.numel() for p in params) == count_parameters(model)
    # in the discriminator's encoder, 2-D weights are decayed and 1-D tensors are not
    for name, p in model.discriminator.electra.encoder.named_parameters():
        assert (f"discriminator.electra.encoder.{name}" in decayed) == (p.dim() == 2)


def test_lr_scale_groups():
    model = nn.ModuleDict({"dense": nn.Linear(2, 2), "LayerNorm": nn.LayerNorm(2)})
    groups = param_groups(model.named_parameters(), 0.1, lr_scale=lambda n: 0.5 if n.startswith("dense") else 1.0)
    got = {(g["weight_decay"], g["lr_scale"]): sorted(g["names"]) for g in groups}
    assert got == {
        (0.1, 0.5): ["dense.weight"],
        (0.0, 0.5): ["dense.bias"],
        (0.0, 1.0): ["LayerNorm.bias", "LayerNorm.weight"],
    }
