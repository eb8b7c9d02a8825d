"""`electra quickstart` end to end on a small corpus and the GLUE fixtures: what it produces agrees with itself
(the run, the export, the sweep and the report), it says so when GLUE cannot be reached, and a second call reuses
the finished stages."""

import json
import random

import pytest
import torch
from glue_fixtures import WORDS, write_glue

from electra import quickstart as qs
from electra.report.runs import load_sweep
from electra.report.scores import level_band


@pytest.mark.slow
def test_quickstart_end_to_end(tmp_path, monkeypatch, capsys):
    import transformers

    from electra.checkpoint import load_run
    from electra.finetune.results import aggregate

    rng = random.Random(0)
    docs = ["\n".join(" ".join(rng.choice(WORDS) for _ in range(10)) + " ." for _ in range(3)) for _ in range(300)]
    (tmp_path / "corpus.txt").write_text("\n\n".join(docs) + "\n")
    out = tmp_path / "qs"
    options = dict(
        max_steps=2,
        corpus=(str(tmp_path / "corpus.txt"),),
        tasks="rte,wnli",
        runs=2,
        max_train_examples=16,
        epochs=1,
        vocab_size=60,
    )

    # no --glue-dir and no hub: finetuning is skipped with a clear message, the rest is done
    monkeypatch.setattr(qs, "hub_reachable", lambda timeout=5.0: False)
    summary = qs.quickstart(out, glue_dir=None, **options)
    printed = capsys.readouterr().out
    assert "GLUE is not reachable" in printed and summary["glue"] is None
    # without GLUE, the built-in probe against random weights is what the end of the output states
    assert "linear probe (builtin)" in printed.split("what this run shows")[1]
    # ... judged against the noise of the probe's test set, whose size the run logged (600 built-in examples)
    records = [json.loads(x) for x in (out / "pretrain" / "metrics.jsonl").read_text().splitlines()]
    last_eval = [r for r in records if r.get("split") == "eval"][-1]
    assert last_eval["probe_test_examples"] == 600 and "within the noise of 600 test examples" in printed
    # how far pretraining moved the weights, stated at the end: 2 steps (the first at lr 0) hardly move them
    moved = summary["weights_moved"]
    assert 0 < moved["discriminator attention query/key"] < 0.1 and 0 < moved["generator feed-forward"] < 0.1
    assert "they are hardly trained" in printed.split("what this run shows")[1]
    assert (out / "report" / "pretrain_loss.png").is_file() and not (out / "report" / "glue.png").exists()
    model, cfg, tok = load_run(out / "pretrain")
    assert cfg.max_steps == 2 and tok.vocab_size == 60
    assert json.loads((out / "report" / "report.json").read_text())["pretrain"][0]["step"] == 2
    # the export holds the run's final weights
    hf = transformers.ElectraForPreTraining.from_pretrained(out / "export" / "discriminator")
    w = "electra.encoder.layer.0.attention.self.query.weight"
    assert torch.equal(hf.state_dict()[w], model.discriminator.state_dict()[w])

    # with GLUE data: the finished stages are reused and the sweep is reported
    summary = qs.quickstart(out, glue_dir=str(write_glue(tmp_path / "glue")), **options)
    printed = capsys.readouterr().out
    assert "reusing" in printed and "already finished" in printed
    report = json.loads((out / "report" / "report.json").read_text())
    results = aggregate(out / "glue")
    glue, baseline = report["glue"]  # the pretrained model, then random weights of the same shape
    assert baseline["model"] == "random:tiny" and baseline["runs"] == glue["runs"]
    assert summary["glue_average"]["random_median"] == pytest.approx(baseline["average"])
    # the comparison is stated in words, in the report and at the end of the output
    diff = glue["average"] - baseline["average"]
    band = level_band(load_sweep(out / "glue", "glue"), load_sweep(out / "glue_random", "glue_random"), glue["tasks"])
    verdict = "level with" if abs(diff) < band else "better than" if diff > 0 else "worse than"
    stated = f"is {verdict} random initialisation (glue_random): {glue['label']} {glue['average']:.2f}"
    assert any(stated in f for f in report["findings"]) and stated in printed.replace("**", "")
    assert any("majority class" in f for f in report["findings"])
    assert glue["runs"] == {"rte": 2, "wnli": 2}
    assert glue["scores"]["rte"] == pytest.approx(results["tasks"]["rte"]["metrics"]["acc"]["median"])
    assert glue["label"] == results["average"]["label"] == summary["glue_average"]["label"]
    assert glue["average"] == pytest.approx(results["average"]["median"])
    runs = [json.loads(p.read_text()) for p in (out / "glue").glob("rte/run_*/metrics.json")]
    assert [r["n_train"] for r in runs] == [16, 16]
    assert (out / "report" / "glue.png").is_file()


def test_glue_after_the_builtin_corpus_says_where_a_glue_gain_comes_from():
    note = qs.corpus_note(("builtin",), glue_ran=True)
    assert "Python's own documentation" in note and "docs/use-cases.md" in note
    # a user's own corpus, or no GLUE step: the findings speak for themselves
    assert qs.corpus_note(("prose.txt",), glue_ran=True) is None
    assert qs.corpus_note(("builtin", "prose.txt"), glue_ran=True) is None
    assert qs.corpus_note(("builtin",), glue_ran=False) is None
