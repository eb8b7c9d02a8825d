"""`--objective electric` (Clark et al., EMNLP 2020; official `electric_objective` with `two_tower_generator`): the
two-tower cloze generator never reads the token it predicts, the whole loss against a hand computation, micro-batch
parity, the FLOP count, and end to end: a few steps, a kill, a bit-exact resume, its evaluation and its export
(docs/faithfulness.md §3.5)."""

import json
import math

import pytest
import test_objective_variants as variants
import torch
from test_objective_variants import SPECIAL, batch, bce, pretrain, softmax
from test_pretrain import TINY, data_dir  # noqa: F401  (data_dir: the session fixture)
from test_reliability import _snapshot

from electra import init
from electra import objective as obj
from electra.checkpoint import load_run
from electra.cli import main
from electra.config import preset
from electra.electric import ClozeGenerator, Electric, causal_mask, nce_logits, nce_loss
from electra.errors import ConfigError, ElectraError
from electra.flops import (
    EncoderShape,
    binary_head_flops,
    block_flops,
    forward_flops,
    input_embedding_flops,
    mlm_head_flops,
    train_flops_per_sequence,
)
from electra.loading import load_model


def electric(**overrides):
    shape = dict(vocab_size=200, hidden_size=32, num_hidden_layers=2, max_length=32, objective="electric")
    return preset("tiny", **{**shape, **overrides})


# ---------------------------------------------------------------------------------------------- the cloze generator


def test_the_towers_are_causal_and_together_never_read_the_token_they_predict():
    model = init.build(electric(), SPECIAL).eval()
    assert isinstance(model, Electric) and isinstance(model.generator, ClozeGenerator)
    gen = model.generator
    shared = model.discriminator.electra.embeddings
    assert gen.ltr.embeddings is shared and gen.rtl.embeddings is shared  # as the official "electra/embeddings" scope
    assert gen.ltr.encoder is not gen.rtl.encoder and gen.config.hidden_size == 8  # generator-sized, two towers
    assert gen.generator_lm_head.weight is shared.word_embeddings.weight
    assert causal_mask(torch.tensor([[1, 1, 0]]), 3, False, torch.device("cpu"))[0, 0].tolist() == [
        [True, False, False],
        [True, True, False],
        [True, True, True],  # a padded query: the real keys before it (and itself)
    ]
    assert causal_mask(torch.tensor([[1, 1, 0]]), 3, True, torch.device("cpu"))[0, 0].tolist() == [
        [True, True, False],
        [False, True, False],
        [False, False, True],  # a padded query with no real key in reach: itself only
    ]
    ids, amask, types = batch()
    with torch.no_grad():
        base = gen(ids, amask, types)
        for row, t in [(0, 1), (0, 15), (0, 30), (1, 1), (1, 10), (1, 18), (3, 20)]:
            changed = ids.clone()
            changed[row, t] = 5 if ids[row, t] != 5 else 6
            after = gen(changed, amask, types)
            torch.testing.assert_close(after[row, t], base[row, t], rtol=0, atol=0)  # x_t itself: never read
            assert not torch.allclose(after[row, t - 1], base[row, t - 1])  # its neighbours read it
            assert not torch.allclose(after[row, t + 1], base[row, t + 1])
            others = [r for r in range(4) if r != row]
            torch.testing.assert_close(after[others], base[others], rtol=0, atol=0)
        # padding never reaches a real position
        padded = ids.clone()
        padded[1, 25] = 7
        torch.testing.assert_close(gen(padded, amask, types)[1, :20], base[1, :20], rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------- the loss by hand


class Fixed(torch.nn.Module):
    """A stand-in for a network that returns fixed outputs (and records what it read)."""

    def __init__(self, out):
        super().__init__()
        self.out = torch.nn.Parameter(out)
        self.read = None

    def forward(self, input_ids, attention_mask, token_type_ids):
        self.read = input_ids.clone()
        return self.out


def test_the_whole_loss_against_a_hand_computation():
    """gen_weight * cloze NLL over maskable tokens + disc_weight * BCE(score + log q(x~_t) + log(p / (1 - p)),
    was sampled) over real tokens (official `_get_cloze_outputs`, `_get_discriminator_output`, `_get_fake_data`)."""
    V, p = 8, 0.25
    cfg = electric(vocab_size=V, mask_prob=p, temperature=1e-4)  # temperature ~0: the sample is the argmax
    model = init.build(cfg, SPECIAL)
    ids = torch.tensor([[2, 5, 6, 7, 3, 0]])
    amask = torch.tensor([[1, 1, 1, 1, 1, 0]])
    cloze = [[0.0] * V for _ in range(6)]
    cloze[1][5], cloze[1][2] = 1.0, 0.5
    cloze[2][5] = 2.0  # position 2 (a 6) draws a 5: sampled and different
    cloze[3][7], cloze[3][6] = 1.5, 0.5  # position 3 (a 7) draws the 7 again: still labelled sampled
    cloze[4][3] = 0.7
    scores = [0.3, -0.2, 1.1, 0.4, -0.5, 2.0]
    model.generator = Fixed(torch.tensor([cloze]))
    model.discriminator = Fixed(torch.tensor([scores]))
    masked = obj.Masked(ids, torch.tensor([[2, 3, 0]]), torch.tensor([[1.0, 1.0, 0.0]]), torch.tensor([[6, 7, 0]]))
    out = model(ids, amask, torch.zeros_like(ids), torch.Generator().manual_seed(0), masked)

    fake = [2, 5, 5, 7, 3, 0]
    assert model.generator.read.tolist() == [ids[0].tolist()]  # the cloze model reads the original tokens, no [MASK]
    assert model.discriminator.read.tolist() == [fake]
    assert out.disc_labels.tolist() == [[False, False, True, True, False, False]]

    def log_q(t, token):
        return math.log(softmax(cloze[t])[token])

    gen = -(log_q(1, 5) + log_q(2, 6) + log_q(3, 7)) / (3 + 1e-6)  # maskable: not [CLS]/[SEP]/padding
    labels = [0, 0, 1, 1, 0]
    nce = [scores[t] + log_q(t, fake[t]) + math.log(p / (1 - p)) for t in range(5)]
    disc = sum(bce(z, y) for z, y in zip(nce, labels, strict=True)) / (5 + 1e-6)
    assert out.gen_loss.item() == pytest.approx(gen, rel=1e-5)
    assert out.disc_loss.item() == pytest.approx(disc, rel=1e-5)
    assert out.loss.item() == pytest.approx(1.0 * gen + 50.0 * disc, rel=1e-5)  # official gen_weight, disc_weight
    torch.testing.assert_close(out.disc_logits[0, :5], torch.tensor(nce))
    prior = [log_q(t, fake[t]) + math.log(p / (1 - p)) for t in range(5)]  # what evaluation's disc_auc_cloze ranks by
    torch.testing.assert_close(out.disc_prior[0, :5], torch.tensor(prior))
    # the pure functions of electric.py say the same, and the NCE term passes no gradient to the cloze model
    logits = nce_logits(torch.tensor([scores]), torch.tensor([cloze]), torch.tensor([fake]), p)
    assert nce_loss(logits, out.disc_labels, amask).item() == pytest.approx(disc, rel=1e-5)
    assert out.gen_accuracy.item() == 0.5 and out.sampled_accuracy.item() == 0.5  # argmax at the slots: 5, 7
    assert out.disc_accuracy.item() == pytest.approx(sum((z > 0) == y for z, y in zip(nce, labels, strict=True)) / 5)
    model.cfg = electric(vocab_size=V, mask_prob=p, temperature=1e-4, gen_weight=0.0)
    model(ids, amask, torch.zeros_like(ids), None, masked).loss.backward()
    assert model.generator.out.grad is None or model.generator.out.grad.abs().sum() == 0


def test_micro_batch_losses_add_up_to_the_full_batch_loss_and_gradient():
    cfg = electric(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, temperature=1e-4)
    model = init.build(cfg, SPECIAL)
    ids, amask, types = batch()
    halves = [(ids[i * 2 : i * 2 + 2], amask[i * 2 : i * 2 + 2], types[i * 2 : i * 2 + 2]) for i in range(2)]
    masks = [model.mask(h[0], h[1], torch.Generator().manual_seed(i)) for i, h in enumerate(halves)]
    full = model(ids, amask, types, None, obj.Masked(*(torch.cat(p) for p in zip(*masks, strict=True))))
    full.loss.backward()
    full_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    each = [obj.loss_totals("electric", m, h[1], h[0], SPECIAL) for h, m in zip(halves, masks, strict=True)]
    totals = obj.LossTotals(*(sum(t) for t in zip(*each, strict=True)))
    assert totals.gen.item() == obj.maskable(ids, amask, SPECIAL).sum() and totals.disc.item() == amask.sum()
    parts = [model(*h, None, m, totals) for h, m in zip(halves, masks, strict=True)]
    for part in parts:
        part.loss.backward()
    torch.testing.assert_close(sum(p.loss for p in parts), full.loss, rtol=1e-6, atol=0)
    for p, g in zip(model.parameters(), full_grads, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-8)


def test_config_rejects_what_electric_cannot_do_in_one_line():
    with pytest.raises(ConfigError, match="tie_all_weights .* objective='electric'"):
        electric(tie_all_weights=True, generator_size=1.0)
    with pytest.raises(ConfigError, match="^objective electric needs its cloze generator: uniform_generator"):
        electric(uniform_generator=True)


def test_flops_count_both_towers_and_the_cloze_head_everywhere():
    small = preset("small", objective="electric")
    disc, gen = EncoderShape.of(small.model, 128), EncoderShape.of(small.generator_model, 128, embedding=128)
    tower = gen.layers * block_flops(gen) + input_embedding_flops(gen)
    head = 2 * (2 * gen.hidden) * gen.e + gen.e + 8 * gen.e + 5 * gen.e + 2 * gen.e * gen.vocab + 5 * gen.vocab
    head = (head + 2 * gen.vocab) * 128  # (+ picking the target), at all 128 positions
    assert head == mlm_head_flops(EncoderShape(2 * gen.hidden, 1, 128, gen.vocab, gen.e), 1.0)
    expected = 2 * (2 * tower + head + forward_flops(disc, "binary"))
    assert train_flops_per_sequence(small) == expected
    assert binary_head_flops(disc) < head  # (the cloze head is what an NCE logit everywhere costs)
    assert train_flops_per_sequence(small) > train_flops_per_sequence(preset("small"))


# ---------------------------------------------------------------------------------------------- end to end

ARGS = ["--objective", "electric"]


@pytest.mark.slow
def test_a_killed_run_resumes_bit_exact_and_evaluates_and_exports(data_dir, tmp_path):  # noqa: F811
    args = [*TINY, *ARGS, "--data", str(data_dir), "--max-steps", "6", "--log-every", "1"]
    args += ["--save-every", "2", "--eval-every", "3", "--eval-examples", "8"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    done = pretrain(args, full)
    assert done.returncode == 0, done.stderr[-2000:]
    killed = pretrain(args, cut, fault="metrics.written@5")  # SIGKILL at step 4's log line (after step 3's eval)
    assert killed.returncode == -9, killed.stderr[-2000:]
    resumed = pretrain([*args, "--resume"], cut)
    assert resumed.returncode == 0 and "at step 3;" in resumed.stdout, resumed.stderr[-2000:]
    expected, got = _snapshot(full), _snapshot(cut)
    for key in expected:
        assert got[key] == expected[key], key  # every checkpoint's weights, the metrics, the config: identical
    evals = [json.loads(line) for line in (full / "metrics.jsonl").open() if '"eval"' in line]
    assert [r["step"] for r in evals] == [3, 6]
    assert all("probe_cls" in r for r in evals)  # the live probe reads the discriminator's encoder
    for r in evals:  # the NCE classifier's accuracy and AUC (label: was sampled), the cloze model's loss
        assert 0 < r["disc_accuracy"] <= 1 and (0 <= r["disc_auc"] <= 1 or math.isnan(r["disc_auc"]))
        assert 0 < r["replaced_fraction"] < 0.3 and r["gen_loss"] > 0 and "mlm_accuracy" not in r
        assert 0 <= r["disc_auc_cloze"] <= 1 or math.isnan(r["disc_auc_cloze"])  # the cloze model's own ranking

    out = tmp_path / "export"
    assert main(["export", str(full), "--out", str(out)]) == 0
    record = json.loads((out / "export.json").read_text())
    assert record["discriminator"] == "ElectraForPreTraining" and "generator" not in record
    assert (
        "Electric's energies" in record["note"]
        and "Electric's energies" in (out / "discriminator" / "README.md").read_text()
    )
    assert record["verified_max_abs_diff"]["discriminator"] < 1e-4 and not (out / "generator").exists()
    from transformers import ElectraForPreTraining

    hf = ElectraForPreTraining.from_pretrained(out / "discriminator").eval()
    model, _, _ = load_run(full)
    ids = torch.tensor([[2, 10, 11, 12, 3]])
    with torch.no_grad():
        ours = model.discriminator.eval()(ids, torch.ones_like(ids))
        torch.testing.assert_close(hf(ids).logits, ours, rtol=1e-4, atol=1e-5)
    with pytest.raises(ElectraError, match="two-tower cloze model, not a masked LM"):
        load_model(full, "generator")
    assert load_model(full, "discriminator")[0].config.hidden_size == 32
    # `electra score` on the run: Electric's one-pass score by default, minus the energies of the inner tokens
    from electra.api import score

    (tmp_path / "s.txt").write_text("a b c\nd e\n")
    scored = score(full, tmp_path / "s.txt", tmp_path / "s.tsv", progress=False)
    assert scored["method"] == "electric" and scored["rows"] == 2
    tok = load_run(full)[2]
    ids = torch.tensor([[tok.cls_id, *tok.encode("a b c"), tok.sep_id]])
    with torch.no_grad():
        energies = hf(ids).logits[0, 1:-1].double()
    assert scored["scores"][0] == pytest.approx(-float(energies.sum()), rel=1e-4, abs=1e-4)


def test_pretrain_refuses_electric_with_tied_weights_in_one_line(tmp_path, capsys):
    args = [
        "pretrain",
        "--preset",
        "tiny",
        "--objective",
        "electric",
        "--tie-all-weights",
        "true",
        "--out",
        str(tmp_path),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "tie_all_weights" in err and "--objective electric" in err


@pytest.mark.slow
def test_compiled_and_bf16_steps_match_eager_fp32(monkeypatch):
    """test_objective_variants' check with objective electric: `--compile` trains as eager, bf16 stays close."""
    monkeypatch.setitem(variants.OVERRIDES, "electric", dict(objective="electric"))
    variants.test_compiled_and_bf16_steps_match_eager_fp32("electric")


@pytest.mark.slow
def test_two_process_ddp_equals_one_process(data_dir, tmp_path, monkeypatch):  # noqa: F811
    """test_objective_variants' check with objective electric: gloo DDP, 2 processes == 1 process."""
    monkeypatch.setitem(variants.VARIANTS, "electric", [*ARGS, "--probe", "none"])
    variants.test_two_process_ddp_equals_one_process(data_dir, tmp_path, "electric")
