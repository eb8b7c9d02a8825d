"""The paper's efficiency ablations (§3.5, Table 5) and all-tied weights (§3.2) against hand computations, and each
end to end: a few steps, a kill, a bit-exact resume, their evaluation metrics and their export
(docs/faithfulness.md §3.5 and §4)."""

import json
import math
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from test_pretrain import TINY, data_dir, subprocess_env  # noqa: F401  (data_dir: the session fixture)
from test_reliability import _snapshot

from electra import init
from electra import objective as obj
from electra.checkpoint import load_run
from electra.cli import main
from electra.config import preset
from electra.errors import ConfigError
from electra.flops import EncoderShape, binary_head_flops, forward_flops, train_flops_per_sequence

SPECIAL = obj.SpecialIds(pad=0, unk=1, cls=2, sep=3, mask=4)


def bce(z, y):
    p = 1 / (1 + math.exp(-z))
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def softmax(row):
    e = [math.exp(x) for x in row]
    return [x / sum(e) for x in e]


def tiny(**overrides):
    return preset("tiny", vocab_size=200, hidden_size=32, num_hidden_layers=2, max_length=32, **overrides)


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 200, (4, 32), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 20:] = 0
    ids[:, 0], ids[0, -1], ids[1, 19] = SPECIAL.cls, SPECIAL.sep, SPECIAL.sep
    ids[2:, -1] = SPECIAL.sep
    return ids * mask, mask, torch.zeros_like(ids)


# ---------------------------------------------------------------------------------------------- ELECTRA 15 %


def test_electra_15_loss_covers_the_masked_out_positions_once_each():
    """L_Disc summed over i in m instead of 1..n (paper §3.5); a position drawn twice counts once."""
    ids = torch.tensor([[2, 10, 11, 12, 13, 3, 0]])
    amask = torch.tensor([[1, 1, 1, 1, 1, 1, 0]])
    masked = obj.Masked(ids, torch.tensor([[1, 3, 3, 0]]), torch.tensor([[1.0, 1.0, 1.0, 0.0]]), ids[:, :4])
    scored = obj.scored_positions("electra-15", masked, amask)
    assert scored.tolist() == [[False, True, False, True, False, False, False]]
    assert obj.scored_positions("electra", masked, amask).tolist() == [[True] * 6 + [False]]
    logits = torch.tensor([[0.5, -1.0, 2.0, 0.3, -0.2, 1.5, 9.0]])
    labels = torch.tensor([[False, True, False, False, False, False, False]])
    expected = (bce(-1.0, 1) + bce(0.3, 0)) / (2 + 1e-6)
    assert obj.discriminator_loss(logits, labels, scored).item() == pytest.approx(expected, rel=1e-6)
    totals = obj.loss_totals("electra-15", masked, amask)
    assert (totals.gen.item(), totals.disc.item()) == (3.0, 2.0)
    assert obj.loss_totals("electra", masked, amask).disc.item() == 6.0

    model = init.build(tiny(objective="electra-15"), SPECIAL)
    ids, amask, types = batch()
    mk = model.mask(ids, amask, torch.Generator().manual_seed(0))
    out = model(ids, amask, types, torch.Generator().manual_seed(0), mk)
    chosen = obj.selected_positions(mk.positions, mk.weights, 32) & amask.bool()
    assert torch.equal(out.disc_mask, chosen) and out.disc_mask.sum() < amask.sum() / 4
    by_hand = obj.discriminator_loss(out.disc_logits, out.disc_labels, chosen)
    torch.testing.assert_close(out.disc_loss, by_hand)
    torch.testing.assert_close(out.loss.detach(), out.gen_loss + 50 * out.disc_loss)


# ---------------------------------------------------------------------------------------------- Replace MLM


def test_replace_mlm_is_a_masked_lm_on_the_generators_samples():
    """Masked positions hold generator samples, not [MASK]; the full-size model's loss is the MLM loss there."""
    logits = torch.tensor([[[2.0, 0.0, -1.0], [0.0, 1.0, 0.0], [4.0, 4.0, 4.0]]])
    targets = torch.tensor([[0, 1, 2]])
    masked = obj.Masked(None, torch.tensor([[1, 2, 0]]), torch.tensor([[1.0, 1.0, 0.0]]), targets)
    loss, m = obj.masked_lm_on_samples(logits, None, masked, None, None, torch.tensor([[0, 1, 0]]), torch.ones(1, 4))
    nll = [-math.log(softmax([2.0, 0.0, -1.0])[0]), -math.log(softmax([0.0, 1.0, 0.0])[1])]
    assert loss.item() == pytest.approx(sum(nll) / (2 + 1e-6), rel=1e-6)
    assert m["accuracy"].item() == 1.0 and m["replaced_fraction"].item() == 0.25

    cfg = tiny(objective="replace-mlm", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = init.build(cfg, SPECIAL)
    assert not hasattr(model, "discriminator") and model.masked_lm.config.hidden_size == 32
    assert (
        model.generator.config.hidden_size == 8
        and model.masked_lm.electra.embeddings is model.generator.electra.embeddings
    )
    ids, amask, types = batch()
    mk = model.mask(ids, amask, torch.Generator().manual_seed(0))
    out = model(ids, amask, types, torch.Generator().manual_seed(0), mk)
    fake = out.disc_input_ids
    assert (mk.input_ids == SPECIAL.mask).any() and not (fake == SPECIAL.mask).any()  # (no sample is [MASK] here)
    chosen = obj.selected_positions(mk.positions, mk.weights, 32)
    assert torch.equal(fake[~chosen], ids[~chosen]) and torch.equal(out.disc_labels, (fake != ids) & chosen)
    lm = model.masked_lm(fake, amask, types, mk.positions)
    torch.testing.assert_close(out.disc_loss, obj.generator_loss(lm, mk.targets, mk.weights))
    torch.testing.assert_close(out.loss.detach(), out.gen_loss + out.disc_loss)  # weight 1, not lambda
    # the masked LM's loss trains it and the shared embeddings, never the generator's own layers
    model.cfg = tiny(objective="replace-mlm", gen_weight=0.0)
    model(ids, amask, types, torch.Generator().manual_seed(0), mk).loss.backward()
    assert model.masked_lm.electra.encoder.layer[0].output.dense.weight.grad.abs().sum() > 0
    assert model.generator.electra.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    own = model.generator.electra.encoder.layer[0].output.dense.weight
    assert own.grad is None or own.grad.abs().sum() == 0


# ---------------------------------------------------------------------------------------------- All-Tokens MLM


def test_all_tokens_mlm_copy_mixture_against_hand_computation():
    """p(x) = D [x == input] + (1 - D) softmax(x), D = sigmoid(copy logit), at every real token (paper §3.5)."""
    logits = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0], [5.0, 0.0, 0.0]]])
    copy_logits = torch.tensor([[2.0, -1.0, 0.5, 0.0]])
    inputs = torch.tensor([[0, 2, 2, 1]])  # the corrupted input the model reads
    targets = torch.tensor([[0, 1, 2, 0]])  # the original tokens it predicts
    amask = torch.tensor([[1, 1, 1, 0]])
    d = [1 / (1 + math.exp(-c)) for c in (2.0, -1.0, 0.5)]
    p = [
        d[0] + (1 - d[0]) * softmax([1.0, 0.0, 0.0])[0],  # kept token: copy or predict
        (1 - d[1]) * softmax([0.0, 2.0, 0.0])[1],  # replaced token: only the softmax can give the original
        d[2] + (1 - d[2]) * softmax([0.0, 0.0, 3.0])[2],
    ]
    log_p = obj.copy_mixture_log_probs(logits, copy_logits, inputs, targets)
    torch.testing.assert_close(log_p[0, :3], torch.tensor([math.log(x) for x in p]))
    expected = -sum(math.log(x) for x in p) / (3 + 1e-6)
    loss = obj.copy_mlm_loss(logits, copy_logits, inputs, targets, amask)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # the prediction: copy where D + (1 - D) q(input) >= (1 - D) max q; at the last token 0.5 + 0.5 q(1) = 0.503
    # beats 0.5 q(0) = 0.493
    assert obj.copy_mixture_predictions(logits, copy_logits, inputs).tolist() == [[0, 1, 2, 1]]
    assert obj.copy_mixture_predictions(logits, torch.full((1, 4), 5.0), inputs).tolist() == [[0, 2, 2, 1]]
    # finite gradients also where the input is not the target (the copy term is log 0 there)
    leaf = logits.clone().requires_grad_(True), copy_logits.clone().requires_grad_(True)
    obj.copy_mlm_loss(*leaf, inputs, targets, amask).backward()
    assert all(torch.isfinite(t.grad).all() for t in leaf)
    loss, m = obj.masked_lm_on_samples(logits, copy_logits, None, inputs, targets, inputs != targets, amask)
    assert loss.item() == pytest.approx(expected, rel=1e-6) and m["accuracy"].item() == pytest.approx(1.0)

    model = init.build(tiny(objective="all-tokens-mlm"), SPECIAL)
    assert model.copy_predictions.dense_prediction.out_features == 1
    ids, amask, types = batch()
    mk = model.mask(ids, amask, torch.Generator().manual_seed(0))
    model.eval()
    out = model(ids, amask, types, torch.Generator().manual_seed(0), mk)
    h = model.masked_lm.electra(out.disc_input_ids, amask, types)
    by_hand = obj.copy_mlm_loss(model.masked_lm.logits(h), model.copy_predictions(h), out.disc_input_ids, ids, amask)
    torch.testing.assert_close(out.disc_loss, by_hand)
    assert obj.loss_totals("all-tokens-mlm", mk, amask).disc.item() == amask.sum().item()


# ---------------------------------------------------------------------------------------------- all weights tied


def test_tie_all_weights_is_one_encoder_with_two_heads():
    """Official untied_generator=False: the generator is built on the discriminator's variables (reuse=True)."""
    model = init.build(tiny(tie_all_weights=True, generator_size=1.0), SPECIAL)
    gen, disc = model.generator, model.discriminator
    assert (
        gen.electra is disc.electra and gen.generator_lm_head.weight is disc.electra.embeddings.word_embeddings.weight
    )
    assert gen.generator_predictions.dense.weight is not disc.discriminator_predictions.dense.weight
    heads = sum(p.numel() for n, p in gen.named_parameters() if not n.startswith("electra."))
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in disc.parameters()) + heads
    # both losses train the one encoder
    ids, amask, types = batch()
    model.cfg = tiny(tie_all_weights=True, generator_size=1.0, disc_weight=0.0)
    model(ids, amask, types, torch.Generator().manual_seed(0)).loss.backward()
    assert disc.electra.encoder.layer[1].output.dense.weight.grad.abs().sum() > 0  # from the generator's loss
    for wrong, named in [
        (dict(), "generator_size=0.25"),
        (dict(generator_size=1.0, generator_layers=0.5), "generator_layers=0.5"),
        (dict(generator_size=1.0, embedding_sharing="gdes"), "embedding_sharing='gdes'"),
        (dict(generator_size=1.0, objective="replace-mlm"), "objective='replace-mlm'"),
        (dict(generator_size=1.0, uniform_generator=True), "uniform_generator=True"),
    ]:
        with pytest.raises(ConfigError, match=f"tie_all_weights .*got {named}"):
            tiny(tie_all_weights=True, **wrong)


def test_flops_count_the_model_each_objective_runs():
    small = preset("small")
    disc, gen = EncoderShape.of(small.model, 128), EncoderShape.of(small.generator_model, 128, embedding=128)
    per_seq = train_flops_per_sequence
    assert per_seq(preset("small", objective="electra-15")) == per_seq(small)  # only the loss is restricted
    replace = 2 * (forward_flops(gen, "mlm") + forward_flops(disc, "mlm"))
    assert per_seq(preset("small", objective="replace-mlm")) == replace
    every = 2 * (forward_flops(gen, "mlm") + forward_flops(disc, "mlm", 1.0) + binary_head_flops(disc))
    assert per_seq(preset("small", objective="all-tokens-mlm")) == every > replace
    tied = preset("small", generator_size=1.0, tie_all_weights=True)
    assert per_seq(tied) == per_seq(preset("small", generator_size=1.0))  # tied weights, two passes all the same


# ---------------------------------------------------------------------------------------------- with the rest

OVERRIDES = {
    "electra-15": dict(objective="electra-15"),
    "replace-mlm": dict(objective="replace-mlm"),
    "all-tokens-mlm": dict(objective="all-tokens-mlm"),
    "tie-all-weights": dict(tie_all_weights=True, generator_size=1.0),
}


@pytest.mark.parametrize("variant", list(OVERRIDES))
def test_micro_batch_losses_add_up_to_the_full_batch_loss_and_gradient(variant):
    """Each micro-batch divides by the global batch's denominators (`objective.loss_totals`), so gradient
    accumulation and DDP compute the full batch's loss and gradient (faithfulness §3.2)."""
    cfg = tiny(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, temperature=1e-4, **OVERRIDES[variant])
    model = init.build(cfg, SPECIAL)  # temperature ~0: sampling is the argmax, independent of the RNG
    ids, amask, types = batch()
    halves = [(ids[i * 2 : i * 2 + 2], amask[i * 2 : i * 2 + 2], types[i * 2 : i * 2 + 2]) for i in range(2)]
    masks = [model.mask(h[0], h[1], torch.Generator().manual_seed(i)) for i, h in enumerate(halves)]
    full_mask = obj.Masked(*(torch.cat(parts) for parts in zip(*masks, strict=True)))
    full = model(ids, amask, types, None, full_mask)
    full.loss.backward()
    full_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    each = [obj.loss_totals(cfg.objective, m, h[1]) for h, m in zip(halves, masks, strict=True)]
    totals = obj.LossTotals(*(sum(t) for t in zip(*each, strict=True)))
    parts = [model(*h, None, m, totals) for h, m in zip(halves, masks, strict=True)]
    for part in parts:
        part.loss.backward()
    torch.testing.assert_close(sum(p.loss for p in parts), full.loss, rtol=1e-6, atol=0)
    torch.testing.assert_close(sum(p.disc_loss for p in parts), full.disc_loss, rtol=1e-6, atol=0)
    for p, g in zip(model.parameters(), full_grads, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-8)


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(OVERRIDES))
def test_compiled_and_bf16_steps_match_eager_fp32(variant):
    """`--compile` (the whole forward one graph) trains as eager does, and bf16 autocast stays close to fp32."""
    from electra import dist
    from electra.train.step import BatchPlan, Precision, build_optimizer, compile_model, train_step

    cfg = tiny(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, batch_size=4, **OVERRIDES[variant])
    info = dist.DistInfo(0, 1, 0, torch.device("cpu"))
    runs = {}
    for how in ("eager", "compiled", "bf16"):
        torch.manual_seed(0)
        model = init.build(cfg, SPECIAL)
        optimizer = build_optimizer(model, cfg)
        if how == "compiled":
            compile_model(model, "default")
        losses = []
        for step in range(2):
            for group in optimizer.param_groups:
                group["lr"] = 1e-3
            ids, amask, types = batch(seed=step)
            b = {"input_ids": ids, "attention_mask": amask, "token_type_ids": types}
            precision = Precision("bf16" if how == "bf16" else "fp32", "cpu")
            r = train_step(
                model,
                model,
                optimizer,
                None,
                b,
                step=step,
                cfg=cfg,
                plan=BatchPlan(4, 1, 4),
                info=info,
                precision=precision,
            )
            losses += [r.read()["gen_loss"], r.read()["disc_loss"]]
        runs[how] = losses, [p.detach().clone() for p in model.parameters()]
    assert runs["compiled"][0] == pytest.approx(runs["eager"][0], rel=1e-5)
    for a, b in zip(runs["compiled"][1], runs["eager"][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert runs["bf16"][0][:2] == pytest.approx(runs["eager"][0][:2], rel=0.05)  # step 0: generator, full-size model


# ---------------------------------------------------------------------------------------------- end to end

VARIANTS = {  # (the live probe where the encoder it reads is not the discriminator's)
    "electra-15": ["--objective", "electra-15", "--probe", "none"],
    "replace-mlm": ["--objective", "replace-mlm"],
    "all-tokens-mlm": ["--objective", "all-tokens-mlm"],
    "tie-all-weights": ["--tie-all-weights", "true", "--generator-size", "1", "--probe", "none"],
}


def pretrain(args: list, out, fault: str | None = None) -> subprocess.CompletedProcess:
    """A run in its own process, one CPU thread, as test_reliability's: bit-exact only at the same thread count."""
    env = {**subprocess_env(), **({"ELECTRA_FAULT": fault} if fault else {})}
    command = [sys.executable, "-m", "electra", "pretrain", *args, "--out", str(out)]
    return subprocess.run(command, env=env, capture_output=True, text=True)


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_killed_run_resumes_bit_exact_and_evaluates_and_exports(data_dir, tmp_path, variant):  # noqa: F811
    args = [*TINY, *VARIANTS[variant], "--data", str(data_dir), "--max-steps", "6", "--log-every", "1"]
    args += ["--save-every", "2", "--eval-every", "3", "--eval-examples", "8"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert pretrain(args, full).returncode == 0
    killed = pretrain(args, cut, fault="metrics.written@5")  # SIGKILL at step 4's log line (after step 3's eval)
    assert killed.returncode == -9, killed.stderr[-2000:]
    resumed = pretrain([*args, "--resume"], cut)
    assert resumed.returncode == 0 and "at step 3;" in resumed.stdout, resumed.stderr[-2000:]
    expected, got = _snapshot(full), _snapshot(cut)
    for key in expected:
        assert got[key] == expected[key], key  # every checkpoint's weights, the metrics, the config: identical
    evals = [json.loads(line) for line in (full / "metrics.jsonl").open() if '"eval"' in line]
    assert [r["step"] for r in evals] == [3, 6] and all(("probe_cls" in r) == ("--probe" not in args) for r in evals)
    if variant in ("replace-mlm", "all-tokens-mlm"):
        assert all(0 <= r["mlm_accuracy"] <= 1 and r["mlm_loss"] > 0 and "disc_auc" not in r for r in evals)
        out = tmp_path / "export"
        assert main(["export", str(full), "--out", str(out)]) == 0
        record = json.loads((out / "export.json").read_text())
        assert record["masked_lm"] == record["generator"] == "ElectraForMaskedLM" and "discriminator" not in record
        assert max(record["verified_max_abs_diff"].values()) < 1e-4  # transformers computes what we do
        assert json.loads((out / "masked_lm" / "config.json").read_text())["hidden_size"] == 32
        assert not (out / "discriminator").exists()
    else:
        assert all(0 <= r["disc_auc"] <= 1 or math.isnan(r["disc_auc"]) for r in evals)
    if variant == "tie-all-weights":
        stored = load_file(full / "checkpoints" / "latest" / "model.safetensors")
        assert len([k for k in stored if k.endswith("encoder.layer.1.output.dense.weight")]) == 1  # stored once
        loaded, _, _ = load_run(full)
        assert loaded.generator.electra is loaded.discriminator.electra


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_two_process_ddp_equals_one_process(data_dir, tmp_path, variant):  # noqa: F811
    """gloo DDP, 2 processes x 2 micro-batches of 2 == 1 process x 4 micro-batches of 2 (as test_pretrain's)."""
    args = [*TINY, *VARIANTS[variant], "--data", str(data_dir), "--max-steps", "3", "--log-every", "1"]
    args += ["--eval-every", "0", "--micro-batch-size", "2", "--probe", "none"]
    one, two = tmp_path / "one", tmp_path / "two"
    assert pretrain(args, one).returncode == 0
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    command = [*torchrun, "-m", "electra", "pretrain", *args, "--out", str(two)]
    result = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True)
    assert result.returncode == 0 and "2 x 2 micro-batch(es) of 2" in result.stdout, result.stderr[-3000:]
    logs = [[json.loads(line) for line in (run / "metrics.jsonl").open()] for run in (one, two)]
    for a, b in zip(*logs, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    a, b = (load_file(run / "checkpoints" / "latest" / "model.safetensors") for run in (one, two))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)
