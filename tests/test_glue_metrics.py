import math

import numpy as np
import pytest

from electra.errors import ElectraError
from electra.finetune.layer_decay import layer_depth, layer_lr_multipliers
from electra.finetune.metrics import chance_auc_band, compute_metrics, predictions_from_outputs, ranking_auc
from electra.finetune.tasks import TASKS


def _onehot_logits(pred, k=2):
    out = np.zeros((len(pred), k), np.float32)
    out[np.arange(len(pred)), pred] = 1.0
    return out


def test_mcc_f1_acc_match_their_definitions():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 2, 200)
    pred = np.where(rng.random(200) < 0.7, gold, 1 - gold)
    tp = int(((pred == 1) & (gold == 1)).sum())
    tn = int(((pred == 0) & (gold == 0)).sum())
    fp = int(((pred == 1) & (gold == 0)).sum())
    fn = int(((pred == 0) & (gold == 1)).sum())
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    f1 = 2 * tp / (2 * tp + fp + fn)
    acc = (tp + tn) / 200
    assert compute_metrics(TASKS["cola"], _onehot_logits(pred), gold) == pytest.approx({"mcc": 100 * mcc})
    for name in ("mrpc", "qqp"):
        out = compute_metrics(TASKS[name], _onehot_logits(pred), gold)
        assert out == pytest.approx({"f1": 100 * f1, "acc": 100 * acc})


def test_ranking_auc_is_the_probability_a_positive_outranks_a_negative():
    """AUC of the logit margin = the share of (positive, negative) pairs the margin orders correctly, ties half;
    only the margin matters (adding the same amount to both logits changes nothing)."""
    rng = np.random.default_rng(1)
    gold = rng.integers(0, 2, 60)
    logits = rng.integers(-3, 4, (60, 2)).astype(float)  # whole numbers: tied margins, and exact sums
    margin = logits[:, 1] - logits[:, 0]
    pos, neg = margin[gold == 1], margin[gold == 0]
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert ranking_auc(TASKS["rte"], logits, gold) == pytest.approx(pairs)
    assert ranking_auc(TASKS["rte"], logits + rng.integers(-5, 6, (60, 1)), gold) == pytest.approx(pairs)
    assert ranking_auc(TASKS["sst2"], np.stack([-gold, gold], 1).astype(float), gold) == 1.0
    assert ranking_auc(TASKS["sst2"], np.stack([gold, -gold], 1).astype(float), gold) == 0.0
    # not defined: regression, three classes, one class among the labels
    assert ranking_auc(TASKS["stsb"], rng.random((60, 1)), rng.random(60)) is None
    assert ranking_auc(TASKS["mnli"], rng.normal(size=(60, 3)), rng.integers(0, 3, 60)) is None
    assert ranking_auc(TASKS["rte"], logits, np.ones(60, int)) is None
    assert chance_auc_band(np.ones(60, int)) is None


def test_chance_band_is_two_standard_errors_of_an_unrelated_ranking():
    """On RTE's dev class counts, the AUCs of rankings unrelated to the labels spread by half the band."""
    gold = np.array([0] * 131 + [1] * 146)
    rng = np.random.default_rng(0)
    aucs = [ranking_auc(TASKS["rte"], rng.normal(size=(277, 2)), gold) for _ in range(2000)]
    band = chance_auc_band(gold)
    assert np.mean(aucs) == pytest.approx(0.5, abs=0.003)
    assert np.std(aucs) == pytest.approx(band / 2, rel=0.05)
    assert 0.06 < band < 0.08  # about 0.07: a dev set of 277 pairs cannot tell 0.55 from chance


def test_mnli_matched_and_mismatched_suffix():
    gold = np.array([0, 1, 2, 2])
    m = compute_metrics(TASKS["mnli"], _onehot_logits(np.array([0, 1, 2, 0]), 3), gold)
    mm = compute_metrics(TASKS["mnli"], _onehot_logits(np.array([0, 0, 0, 0]), 3), gold, suffix="_mm")
    assert m == {"acc": 75.0} and mm == {"acc_mm": 25.0}


def test_pearson_spearman_match_their_definitions():
    rng = np.random.default_rng(1)
    gold = rng.random(100)
    pred = gold + 0.3 * rng.standard_normal(100)
    pearson = np.corrcoef(pred, gold)[0, 1]
    spearman = np.corrcoef(pred.argsort().argsort(), gold.argsort().argsort())[0, 1]
    out = compute_metrics(TASKS["stsb"], pred[:, None], gold)
    assert out["pearson"] == pytest.approx(100 * pearson) and out["spearman"] == pytest.approx(100 * spearman)
    assert compute_metrics(TASKS["stsb"], np.zeros(100), gold) == {"pearson": 0.0, "spearman": 0.0}


def test_sts_predictions_are_on_the_0_5_scale_and_clipped():
    assert predictions_from_outputs(TASKS["stsb"], np.array([[-0.1], [0.5], [1.3]])).tolist() == [0.0, 2.5, 5.0]


SPEC_TABLE = {  # docs/faithfulness.md §5.3: (head, top layer, next layer, layer_0, embeddings)
    (12, 0.8): (1, 0.64, 0.512, 0.05498, 0.04398),
    (24, 0.9): (1, 0.81, 0.729, 0.07179, 0.06461),
}


@pytest.mark.parametrize("n,decay", list(SPEC_TABLE))
def test_layerwise_lr_multipliers_match_the_spec_table(n, decay):
    names = [
        "classifier.weight",
        f"electra.encoder.layer.{n - 1}.output.dense.weight",
        f"electra.encoder.layer.{n - 2}.attention.self.query.bias",
        "electra.encoder.layer.0.output.LayerNorm.weight",
        "electra.embeddings.word_embeddings.weight",
        "electra.embeddings_project.weight",
    ]
    official = layer_lr_multipliers(names, n, decay, "official")
    expected = SPEC_TABLE[n, decay]
    assert [official[k] for k in names] == pytest.approx([*expected, expected[-1]], rel=2e-4)
    paper = layer_lr_multipliers(names, n, decay, "paper")  # one factor of decay less below the head
    want = [1.0] + [v / decay for v in expected[1:]] + [expected[-1] / decay]
    assert [paper[k] for k in names] == pytest.approx(want, rel=2e-4)


def test_layer_depth_rejects_unknown_names():
    assert layer_depth("embeddings.LayerNorm.bias", 4) == 0 and layer_depth("encoder.layer.3.x.bias", 4) == 4
    with pytest.raises(ElectraError, match="matches no layer-wise"):
        layer_depth("pooler.dense.weight", 4)
    with pytest.raises(ElectraError, match="layer 7 but the encoder has 4"):
        layer_depth("encoder.layer.7.x", 4)
