"""The linear probe (`electra.probe`) and the representation diagnostics (`electra.diagnose`)."""

import copy
import json

import numpy as np
import pytest
import torch
from glue_fixtures import write_vocab

from electra import init
from electra.cli import main
from electra.config import ModelConfig
from electra.data.sources import PROBE_PACKAGES
from electra.diagnose import effective_rank, representation_stats, weight_change
from electra.errors import ElectraError
from electra.probe import builtin_probe_set, file_probe_set, fit_probe, probe, random_encoder
from electra.tokenizer import load_tokenizer


def test_fit_probe_separable_set_is_learnt_and_shuffled_labels_are_chance():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 900)
    centers = rng.normal(size=(3, 16)) * 3
    x = centers[y] + rng.normal(size=(900, 16))
    assert fit_probe(x[:600], y[:600], x[600:], y[600:]) > 0.95
    shuffled = rng.permutation(y)
    acc = fit_probe(x[:600], shuffled[:600], x[600:], shuffled[600:])
    assert abs(acc - 1 / 3) < 0.1  # chance for 3 balanced classes, within sampling noise of 300 test rows


def test_builtin_probe_set_is_offline_fixed_and_held_out_of_the_builtin_corpus():
    a, b = builtin_probe_set(), builtin_probe_set.__wrapped__()
    assert a.train == b.train and a.test == b.test  # the same split every time
    assert len(a.labels) == 6 and len(a.train) >= 600 and len(a.test) >= 300
    assert not {t for t, _, _ in a.train} & {t for t, _, _ in a.test}
    from electra.data.sources import _builtin_files, builtin_documents

    parts = {p for f in _builtin_files() for p in f.parts}
    assert not parts & PROBE_PACKAGES  # the pretraining corpus never reads the probe's packages
    corpus = {line for doc in builtin_documents() for line in doc}
    assert not corpus & {t for t, _, _ in a.test}


def test_file_probe_set_reads_csv_and_jsonl_and_names_missing_columns(tmp_path):
    rows = [{"text": f"text number {i}", "label": "pos" if i % 2 else "neg"} for i in range(30)]
    (tmp_path / "s.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "s.csv").write_text("text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in rows))
    js, cs = file_probe_set(tmp_path / "s.jsonl"), file_probe_set(tmp_path / "s.csv")
    assert js.labels == cs.labels == ["neg", "pos"] and js.train == cs.train and len(js.test) == 10
    (tmp_path / "bad.csv").write_text("sentence,label\nhello,1\n")
    with pytest.raises(ElectraError, match=r"bad.csv: row 1 needs a text and a label column \(found: sentence, label"):
        file_probe_set(tmp_path / "bad.csv")


def test_probe_on_token_identity_beats_a_constant_encoder(tmp_path, tiny_vocab):
    """Texts labelled by which word they contain: a random encoder's mean-pooled features keep token identity (far
    above chance); an encoder whose outputs ignore the input is at chance."""
    tok = load_tokenizer(tiny_vocab)
    words = ["cat", "dog", "mat", "red"]
    rng = np.random.default_rng(0)
    fillers = "the a is was on and or it".split()
    rows = []
    for i in range(240):
        label = words[i % 4]
        text = " ".join([*rng.choice(fillers, 5), label, *rng.choice(fillers, 5)])
        rows.append({"text": text, "label": label})
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    probe_set = file_probe_set(tmp_path / "p.jsonl")
    cfg = ModelConfig(
        vocab_size=tok.vocab_size,
        embedding_size=32,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
    )
    encoder = random_encoder(cfg, 0)
    assert probe(encoder, tok, probe_set)["probe_mean"] > 0.9
    with torch.no_grad():
        for layer in encoder.encoder.layer:  # the last LayerNorm outputs its bias alone: a constant
            layer.output.LayerNorm.weight.zero_()
            layer.output.LayerNorm.bias.normal_()
    result = probe(encoder, tok, probe_set)
    assert result["probe_cls"] == pytest.approx(result["probe_mean"]) and result["probe_mean"] < 0.4


def test_effective_rank_and_collapse_statistics():
    torch.manual_seed(0)
    assert effective_rank(torch.randn(2000, 8)) == pytest.approx(8, rel=0.05)
    line = torch.randn(500, 1) * torch.randn(1, 8)
    assert effective_rank(line) == pytest.approx(1, abs=1e-3)
    cfg = ModelConfig(
        vocab_size=50,
        embedding_size=16,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
    )
    encoder = random_encoder(cfg, 0)
    ids = torch.randint(5, 50, (4, 12))
    mask = torch.ones_like(ids)
    mask[0, 8:] = 0
    batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    stats = representation_stats(encoder, batch)
    uniform = stats["uniform_attention_entropy"]
    assert uniform == pytest.approx((8 * np.log(8) + 3 * 12 * np.log(12)) / 44)
    # small random weights: attention near uniform, token states far from collinear
    assert all(abs(layer["attention_entropy"] - uniform) < 0.05 for layer in stats["layers"][:-1])
    assert stats["layers"][-1]["token_cosine"] < 0.5
    with torch.no_grad():  # a constant output: every token state the same
        encoder.encoder.layer[-1].output.LayerNorm.weight.zero_()
        encoder.encoder.layer[-1].output.LayerNorm.bias.normal_()
    assert representation_stats(encoder, batch)["layers"][-1]["token_cosine"] == pytest.approx(1.0, abs=1e-5)


def test_weight_change_is_the_relative_distance_per_group_of_matrices():
    from electra.config import preset
    from electra.objective import SpecialIds

    cfg = preset("tiny", vocab_size=40, hidden_size=32, embedding_size=16, num_hidden_layers=2, intermediate_size=64)
    special = SpecialIds(pad=0, unk=1, cls=2, sep=3, mask=4)
    torch.manual_seed(3)
    initial = init.build(cfg, special)
    torch.manual_seed(3)
    model = init.build(cfg, special)
    assert set(weight_change(model, initial).values()) == {0.0}
    layer = model.discriminator.electra.encoder.layer[1].attention.self
    with torch.no_grad():
        layer.query.weight.mul_(1.5)  # query/key of both layers: only one of four matrices moves, by half its norm
    q0 = [initial.discriminator.electra.encoder.layer[i].attention.self for i in range(2)]
    with torch.no_grad():
        total = sum(float(m.query.weight.pow(2).sum() + m.key.weight.pow(2).sum()) for m in q0)
        expected = 0.5 * float(q0[1].query.weight.norm()) / total**0.5
    moved = weight_change(model, initial)
    assert moved["discriminator attention query/key"] == pytest.approx(expected, rel=1e-5)
    assert {k for k, v in moved.items() if v} == {"discriminator attention query/key"}
    with torch.no_grad():  # the shared word embeddings count once, as the discriminator's
        model.generator.electra.embeddings.word_embeddings.weight.mul_(2)
    moved = weight_change(model, initial)
    assert "generator embeddings" not in moved and moved["discriminator embeddings"] > 0
    mlm = init.build(preset("tiny", vocab_size=40, hidden_size=32, num_hidden_layers=1, objective="mlm"), special)
    assert set(weight_change(mlm, mlm)) == {
        "encoder embeddings",
        "encoder attention query/key",
        "encoder attention value/output",
        "encoder feed-forward",
    }


def test_word_move_top_share_is_one_for_a_single_added_direction_and_small_for_spread_noise():
    from electra.config import preset
    from electra.diagnose import word_move_top_share
    from electra.objective import SpecialIds

    cfg = preset("tiny", vocab_size=200, hidden_size=32, embedding_size=16, num_hidden_layers=1, intermediate_size=64)
    special = SpecialIds(pad=0, unk=1, cls=2, sep=3, mask=4)
    torch.manual_seed(0)
    initial = init.build(cfg, special)
    model = copy.deepcopy(initial)
    assert word_move_top_share(model, initial) is None  # no movement (a frozen table): no direction to name
    table = model.discriminator.electra.embeddings.word_embeddings.weight
    with torch.no_grad():  # a rebuilt start's rounding is not movement ...
        table.add_(1e-9 * torch.randn(200, 16))
    assert word_move_top_share(model, initial) is None
    with torch.no_grad():  # ... a millionth of the table's norm is
        table.add_(1e-5 * torch.randn(200, 16))
    assert word_move_top_share(model, initial) is not None
    table.data.copy_(initial.discriminator.electra.embeddings.word_embeddings.weight)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # every row moved along one direction v, by an amount of its own (a frequency-like score)
        table.add_(torch.outer(torch.randn(200, generator=g), torch.randn(16, generator=g)))
    assert word_move_top_share(model, initial) == pytest.approx(1.0, abs=1e-9)
    with torch.no_grad():
        table.copy_(initial.discriminator.electra.embeddings.word_embeddings.weight + torch.randn(200, 16, generator=g))
    assert 1 / 16 < word_move_top_share(model, initial) < 0.2  # isotropic noise: about 1/16 each, the top a bit more
    # a masked-LM run has no discriminator: its encoder's table is the one measured
    mlm_cfg = preset("tiny", vocab_size=200, hidden_size=32, num_hidden_layers=1, intermediate_size=64, objective="mlm")
    mlm0 = init.build(mlm_cfg, special)
    mlm = copy.deepcopy(mlm0)
    with torch.no_grad():
        mlm.generator.electra.embeddings.word_embeddings.weight.add_(
            torch.outer(torch.randn(200, generator=g), torch.randn(mlm_cfg.generator_model.embedding_size, generator=g))
        )
    assert word_move_top_share(mlm, mlm0) == pytest.approx(1.0, abs=1e-9)


def test_remove_top_word_direction_takes_out_exactly_the_top_singular_direction():
    from electra.config import preset
    from electra.objective import SpecialIds

    sizes = dict(vocab_size=200, hidden_size=32, embedding_size=16, num_hidden_layers=1, intermediate_size=64)
    torch.manual_seed(0)
    model = init.build(preset("tiny", **sizes), SpecialIds(pad=0, unk=1, cls=2, sep=3, mask=4))
    table = model.discriminator.electra.embeddings.word_embeddings.weight
    g = torch.Generator().manual_seed(1)
    v = torch.nn.functional.normalize(torch.randn(16, generator=g), dim=0)
    with torch.no_grad():  # a frequency-like direction: each row moved along v by a score of its own
        table.add_(torch.outer(torch.linspace(-0.1, 0.5, 200), v))
    before = torch.linalg.svdvals(table.detach().double())
    removed = init.remove_top_word_direction(model)
    after = torch.linalg.svdvals(table.detach().double())
    assert removed == pytest.approx(float(before[0] ** 2 / before.pow(2).sum()), rel=1e-6)
    assert float(after[-1]) < 1e-5  # one direction gone ...
    assert torch.allclose(after[:-1], before[1:], rtol=1e-5)  # ... and every other one as it was
    assert float((table.detach() @ v).abs().max()) < 0.02  # the planted direction is (nearly) the one removed
    assert model.generator.electra.embeddings.word_embeddings.weight is table  # shared: the generator's too
    # gdes: the discriminator's table is base + delta; only the delta changes, and the table used loses the direction
    torch.manual_seed(0)
    gdes = init.build(
        preset("tiny", **{**sizes, "embedding_sharing": "gdes"}), SpecialIds(pad=0, unk=1, cls=2, sep=3, mask=4)
    )
    emb = gdes.discriminator.electra.embeddings
    base = gdes.generator.electra.embeddings.word_embeddings.weight
    with torch.no_grad():
        emb.word_embeddings.weight.add_(torch.outer(torch.linspace(-0.1, 0.5, 200), v))
    base_before = base.detach().clone()
    init.remove_top_word_direction(gdes)
    used = (emb.word_embeddings.weight + base).detach().double()
    assert float(torch.linalg.svdvals(used)[-1]) < 1e-5 and torch.equal(base, base_before)


def test_remove_top_word_direction_from_a_recorded_start_undoes_only_the_movement():
    """word_init="ppmi" keeps the start table W0 (`word_start`): removal undoes the movement's top direction,
    W - ((W - W0) u) u^T, which leaves the start's own (larger) top direction in place."""
    from electra.config import preset
    from electra.objective import SpecialIds

    sizes = dict(vocab_size=200, hidden_size=32, embedding_size=16, num_hidden_layers=1, intermediate_size=64)
    torch.manual_seed(0)
    model = init.build(preset("tiny", word_init="ppmi", **sizes), SpecialIds(pad=0, unk=1, cls=2, sep=3, mask=4))
    g = torch.Generator().manual_seed(1)
    start_dir, move_dir = torch.linalg.qr(torch.randn(16, 2, generator=g, dtype=torch.float64)).Q.T
    noise = torch.randn(200, 16, generator=g, dtype=torch.float64) * 0.01
    start = noise + torch.outer(torch.linspace(-1.0, 1.0, 200, dtype=torch.float64), start_dir)  # a strong start axis
    counts = torch.ones(200)
    init.init_word_vectors(model, start, counts)  # sets the tables and records W0
    table = model.discriminator.electra.embeddings.word_embeddings.weight
    w0 = model.word_start.detach().double().clone()
    torch.testing.assert_close(w0, table.detach().double())
    assert "word_start" in model.state_dict()  # kept in checkpoints
    moved = torch.outer(torch.linspace(0.0, 0.01, 200, dtype=torch.float64), move_dir)  # smaller than the start axis
    with torch.no_grad():
        table.add_(moved.float())
    init.remove_top_word_direction(model)
    # back at the start (to float32 rounding): the movement was rank one, and the start's own axis is untouched
    torch.testing.assert_close(table.detach().double(), w0, atol=1e-6, rtol=0)
    # with W0 = 0 (a run saved without its start) it is W's own top direction, the start's axis, that goes
    with torch.no_grad():
        table.add_(moved.float())
        model.word_start.zero_()
    init.remove_top_word_direction(model)
    assert (table.detach().double() @ start_dir).norm() < 0.05 * (w0 @ start_dir).norm()


def test_probe_and_diagnose_commands_compare_with_random_weights(tmp_path, capsys):
    from electra.hf import to_hf
    from electra.model import Discriminator

    tok = load_tokenizer(write_vocab(tmp_path / "vocab.txt"))
    cfg = ModelConfig(
        vocab_size=tok.vocab_size,
        embedding_size=16,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    model_dir = tmp_path / "model"
    disc = Discriminator(cfg)
    disc.electra.load_state_dict(random_encoder(cfg, 1).state_dict())  # the second of the baseline's initialisations
    to_hf(disc).save_pretrained(model_dir)
    tok.save(model_dir)
    assert main(["probe", str(model_dir), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in rows] == ["random initialisation", str(model_dir), "majority class"]
    assert all(0 <= r["probe_cls"] <= 1 for r in rows)
    baseline, model = rows[0], rows[1]
    assert baseline["seeds"] == 3 and baseline["best_min"] <= max(model["probe_cls"], model["probe_mean"])
    assert max(model["probe_cls"], model["probe_mean"]) <= baseline["best_max"]
    assert model["against_random"] == "within"  # a copy of one of the baseline's initialisations lies inside its range
    assert main(["probe", str(model_dir), "--random-seeds", "1", "--json"]) == 0
    one = json.loads(capsys.readouterr().out)[0]
    assert one["seeds"] == 1 and one["best_min"] == one["best_max"] == max(one["probe_cls"], one["probe_mean"])
    assert main(["probe", str(model_dir), "--random-seeds", "0"]) == 2
    assert "--random-seeds must be at least 1" in capsys.readouterr().err
    assert main(["diagnose", str(model_dir)]) == 0
    out = capsys.readouterr().out
    assert "random initialisation: effective rank" in out and f"{model_dir}: effective rank" in out
