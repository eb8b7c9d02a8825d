"""`electra export`: a run trained here -> transformers `from_pretrained` -> the same outputs as ours; run
directories in detect/fill; continued pretraining from an export; finetuned GLUE runs; refusals."""

import copy
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from glue_fixtures import VOCAB, WORDS, write_glue, write_vocab

from electra import init
from electra.checkpoint import load_run
from electra.cli import main

TINY = [
    "--preset",
    "tiny",
    "--vocab-size",
    str(len(VOCAB)),
    "--hidden-size",
    "32",
    "--embedding-size",
    "16",
    "--num-hidden-layers",
    "2",
    "--intermediate-size",
    "64",
    "--max-length",
    "32",
    "--batch-size",
    "8",
    "--warmup-steps",
    "1",
    "--no-progress",
    "--eval-every",
    "0",
    # the word-direction removal that `tiny` delivered with before it froze its table (still an option)
    "--adam-epsilon",
    "1e-2",
    "--learning-rate",
    "1e-3",
    "--freeze-word-embeddings",
    "false",
    "--remove-top-word-direction",
    "true",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A pretraining run of 4 steps (checkpoints step_1, step_2, step_4, latest) over the GLUE fixtures' vocab."""
    from electra.data import prepare_corpus
    from electra.tokenizer import load_tokenizer

    root = tmp_path_factory.mktemp("export_run")
    rng = random.Random(0)
    docs = [
        "\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) + " ." for _ in range(10))
        for _ in range(40)
    ]
    (root / "corpus.txt").write_text("\n\n".join(docs) + "\n")
    data = prepare_corpus(
        [str(root / "corpus.txt")], load_tokenizer(write_vocab(root / "vocab.txt")), 32, root / "data"
    )
    assert (
        main(
            [
                "pretrain",
                *TINY,
                "--data",
                str(data),
                "--out",
                str(root / "run"),
                "--max-steps",
                "4",
                "--save-every",
                "2",
                "--hidden-dropout-prob",
                "0.1",
            ]
        )
        == 0
    )
    return root / "run"


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exported") / "hf"
    assert main(["export", str(run), "--out", str(out)]) == 0
    return out


def padded_batch(vocab_size: int, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab_size, (3, 20), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 12:] = 0
    mask[2, 5:] = 0
    types = torch.zeros_like(ids)
    types[:, 8:] = 1
    return {"input_ids": ids * mask, "attention_mask": mask, "token_type_ids": types * mask}


def test_export_loads_in_transformers_and_computes_our_outputs(run, exported):
    import transformers

    model, cfg, tok = load_run(run)
    # `tiny` delivers its discriminator without the word table's top direction (as finetuning loads it); the
    # generator as trained
    assert cfg.remove_top_word_direction
    delivered = copy.deepcopy(model)
    removed = init.remove_top_word_direction(delivered)
    assert json.loads((exported / "export.json").read_text())["top_word_direction_removed"] == pytest.approx(removed)
    batch = padded_batch(cfg.model.vocab_size)
    real = batch["attention_mask"].bool()
    for kind, cls, ours in (
        ("discriminator", transformers.ElectraForPreTraining, delivered.discriminator),
        ("generator", transformers.ElectraForMaskedLM, model.generator),
    ):
        hf, info = cls.from_pretrained(exported / kind, output_loading_info=True)
        assert not [k for k in info["missing_keys"] if not k.endswith("position_ids")], info
        assert not info["unexpected_keys"] and not info["mismatched_keys"], info
        with torch.no_grad():
            theirs = hf.eval()(**batch).logits
            mine = ours(**batch)
        assert theirs.shape == mine.shape
        torch.testing.assert_close(theirs[real], mine[real], atol=1e-5, rtol=0)
        hf_tok = transformers.AutoTokenizer.from_pretrained(exported / kind)
        text = "the big cat sat on a red mat ."
        assert hf_tok(text)["input_ids"] == [tok.cls_id, *tok.encode(text), tok.sep_id]
    # the generator's output layer is tied to the word embeddings, as in the released checkpoints
    gen = transformers.ElectraForMaskedLM.from_pretrained(exported / "generator")
    assert gen.generator_lm_head.weight.data_ptr() == gen.electra.embeddings.word_embeddings.weight.data_ptr()
    record = json.loads((exported / "export.json").read_text())
    assert record["step"] == 4 and record["config"] == cfg.to_dict()
    assert max(record["verified_max_abs_diff"].values()) <= 1e-5


def test_export_picks_the_checkpoint(run, tmp_path):
    from safetensors.torch import load_file

    assert main(["export", str(run), "--out", str(tmp_path / "s2"), "--checkpoint", "step_2", "--no-verify"]) == 0
    step2, _, _ = load_run(run, "step_2")
    latest, _, _ = load_run(run)
    exported = load_file(tmp_path / "s2" / "discriminator" / "model.safetensors")
    w = "electra.encoder.layer.0.attention.self.query.weight"
    assert torch.equal(exported[w], step2.discriminator.state_dict()[w])
    assert not torch.equal(exported[w], latest.discriminator.state_dict()[w])
    assert json.loads((tmp_path / "s2" / "export.json").read_text())["step"] == 2


def test_export_never_overwrites_without_force(run, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["export", str(run), "--out", str(out), "--no-verify"]) == 2
    assert "already exists and is not empty; pass --force" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert main(["export", str(run), "--out", str(out), "--no-verify", "--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["discriminator", "export.json", "generator"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary directory left behind
    # an empty existing directory is fine
    (tmp_path / "empty").mkdir()
    assert main(["export", str(run), "--out", str(tmp_path / "empty"), "--no-verify"]) == 0


def test_export_bad_sources(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "junk").mkdir()
    assert main(["export", str(tmp_path / "junk"), "--out", str(tmp_path / "o")]) == 2
    assert "neither a pretraining run directory" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_detect_and_fill_accept_run_directories(run, exported, capsys):
    from electra.inference import encode

    model, _, tok = load_run(run)
    delivered = copy.deepcopy(model)
    init.remove_top_word_direction(delivered)  # `tiny`: the discriminator as the run delivers it (electra.loading)
    text = "the dog sat on the mat"
    capsys.readouterr()
    assert main(["detect", "--model", str(run), "--json", text]) == 0
    from_run = json.loads(capsys.readouterr().out)
    batch = encode(tok, text, 512)
    with torch.no_grad():
        expected = torch.sigmoid(delivered.discriminator(**batch))[0]
    assert from_run["tokens"] == ["[CLS]", "the", "dog", "sat", "on", "the", "mat", "[SEP]"]
    torch.testing.assert_close(torch.tensor(from_run["probs"]), expected, atol=1e-6, rtol=0)
    # the exported directory says the same
    assert main(["detect", "--model", str(exported / "discriminator"), "--json", text]) == 0
    torch.testing.assert_close(torch.tensor(json.loads(capsys.readouterr().out)["probs"]), expected, atol=1e-5, rtol=0)
    # fill: the generator's top token at the [MASK]
    assert main(["fill", "--model", str(run), "--json", "--top-k", "3", "the dog [MASK] on the mat"]) == 0
    masks = json.loads(capsys.readouterr().out)["masks"]
    batch = encode(tok, "the dog [MASK] on the mat", 512)
    with torch.no_grad():
        logits = model.generator(**batch)[0, 3]
    assert len(masks) == 1 and masks[0][0]["token"] == tok.convert_ids_to_tokens([int(logits.argmax())])[0]
    assert masks[0][0]["prob"] == pytest.approx(float(logits.softmax(-1).max()), abs=1e-6)
    # a checkpoint of the run by name
    assert main(["detect", "--model", str(run), "--checkpoint", "step_2", "--json", text]) == 0
    step2 = torch.tensor(json.loads(capsys.readouterr().out)["probs"])
    assert not torch.allclose(step2, expected)


def test_continued_pretraining_from_an_export(run, exported, tmp_path):
    """--init-from the exported directories: step 1 runs at lr 0, so its checkpoint holds exactly the exported
    weights; training then goes on (step 2 changes them)."""
    data = json.loads((run / "config.json").read_text())["data"]["path"]
    out = tmp_path / "continued"
    assert (
        main(
            [
                "pretrain",
                "--preset",
                "tiny",
                "--max-length",
                "32",
                "--batch-size",
                "8",
                "--no-progress",
                "--eval-every",
                "0",
                "--data",
                data,
                "--out",
                str(out),
                "--max-steps",
                "2",
                "--save-every",
                "1",
                "--init-from",
                str(exported / "discriminator"),
                str(exported / "generator"),
            ]
        )
        == 0
    )
    source, _, _ = load_run(run)
    init.remove_top_word_direction(
        source
    )  # `tiny` exports its discriminator so; the shared table is the discriminator's
    first, cfg, _ = load_run(out, "step_1")
    last, _, _ = load_run(out)
    assert cfg.model.hidden_size == 32 and cfg.generator_model.hidden_size == source.cfg.generator_model.hidden_size
    for (name, a), b in zip(source.state_dict().items(), first.state_dict().values(), strict=True):
        if name != "word_start":  # the source's PPMI start; this run starts from the imported table instead
            assert torch.equal(a, b), name
    assert torch.equal(first.word_start, source.discriminator.electra.embeddings.word_embeddings.weight)
    changed = [
        n
        for (n, a), c in zip(source.state_dict().items(), last.state_dict().values(), strict=True)
        if n != "word_start" and not torch.equal(a, c)
    ]
    assert len(changed) > 10


def test_export_of_a_finetuned_glue_run(run, tmp_path, capsys):
    """The encoder as an ElectraModel directory plus the head file reproduce the run's stored dev outputs."""
    import transformers
    from safetensors.torch import load_file

    from electra.finetune.features import collate, featurize, load_split
    from electra.finetune.tasks import TASKS
    from electra.tokenizer import load_tokenizer

    glue = write_glue(tmp_path / "glue", n_train=16, n_dev=10, n_test=4)
    sweep = tmp_path / "sweep"
    assert (
        main(
            [
                "finetune",
                "--model",
                str(run),
                "--tasks",
                "rte",
                "--glue-dir",
                str(glue),
                "--runs",
                "1",
                "--out",
                str(sweep),
                "--epochs",
                "1",
                "--quiet",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["export", str(sweep / "rte" / "run_0"), "--out", str(tmp_path / "x")]) == 2
    assert "finetune with --save-model" in capsys.readouterr().err
    assert main(["export", str(sweep), "--out", str(tmp_path / "x")]) == 2
    assert "is a finetuning sweep; export one of its runs" in capsys.readouterr().err
    assert (
        main(
            [
                "finetune",
                "--model",
                str(run),
                "--tasks",
                "rte",
                "--glue-dir",
                str(glue),
                "--runs",
                "1",
                "--out",
                str(tmp_path / "sweep2"),
                "--epochs",
                "1",
                "--quiet",
                "--device",
                "cpu",
                "--save-model",
            ]
        )
        == 0
    )
    out = tmp_path / "rte_model"
    assert main(["export", str(tmp_path / "sweep2" / "rte" / "run_0"), "--out", str(out)]) == 0
    head = json.loads((out / "head.json").read_text())
    assert head["labels"] == list(TASKS["rte"].labels) and head["num_outputs"] == 2 and not head["regression"]
    hf_config = json.loads((out / "config.json").read_text())
    assert hf_config["id2label"] == {"0": TASKS["rte"].labels[0], "1": TASKS["rte"].labels[1]}
    assert "not `ElectraForSequenceClassification`" in (out / "README.md").read_text()
    # recompute the dev outputs with transformers + the head file
    encoder, info = transformers.ElectraModel.from_pretrained(out, output_loading_info=True)
    assert not info["unexpected_keys"] and not [k for k in info["missing_keys"] if not k.endswith("position_ids")]
    weights = load_file(out / "classifier.safetensors")
    tok = load_tokenizer(out)
    feats = featurize(TASKS["rte"], load_split(TASKS["rte"], "dev", glue).examples, tok, 128)
    batch = collate(feats, range(len(feats)), tok.pad_id)
    with torch.no_grad():
        h = encoder.eval()(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], token_type_ids=batch["token_type_ids"]
        ).last_hidden_state[:, 0]
        logits = h @ weights["weight"].T + weights["bias"]
    stored = np.load(tmp_path / "sweep2" / "rte" / "run_0" / "predictions_dev.npz")
    np.testing.assert_allclose(logits.numpy(), stored["outputs"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("where", ["itself", "parent", "inside"])
def test_export_refuses_an_output_overlapping_the_run(run, where, capsys):
    """`--out RUN --force` (or a parent of RUN) once deleted the run being exported."""
    out = {"itself": run, "parent": run.parent, "inside": run / "export"}[where]
    before = sorted(p.relative_to(run.parent) for p in run.parent.rglob("*"))
    assert main(["export", str(run), "--out", str(out), "--no-verify", "--force"]) == 2
    assert "would overlap the run being exported" in capsys.readouterr().err
    assert sorted(p.relative_to(run.parent) for p in run.parent.rglob("*")) == before


def test_the_trainer_example_in_the_docs_runs(exported, tmp_path, monkeypatch):
    """docs/users.md's `transformers.Trainer` block, as written, on this export (needs the `hf` extra)."""
    pytest.importorskip("accelerate")
    text = (Path(__file__).parents[1] / "docs" / "users.md").read_text()
    code = text.split("<!-- tested: trainer -->\n```python\n", 1)[1].split("```", 1)[0]
    assert 'model_dir = "models/small/discriminator"' in code
    code = code.replace('"models/small/discriminator"', repr(str(exported / "discriminator")))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "docs/users.md", "exec"), namespace)
    assert namespace["trainer"].state.global_step == 8  # 32 examples / 8 x 2 epochs
    assert "eval_loss" in namespace["trainer"].evaluate()


def test_a_tiny_run_delivers_its_encoder_without_the_top_word_direction(run, tmp_path):
    """`tiny` (remove_top_word_direction, from its PPMI start W0): finetuning, probing, detect and export load the
    discriminator with the top direction of its word table's movement W - W0 undone and everything else as trained;
    the checkpoint and the generator stay as trained, the live probe leaves the training weights bit for bit as they
    were, and the option off changes nothing."""
    from electra.loading import load_model
    from electra.probe import LiveProbe, builtin_probe_set

    model, cfg, tok = load_run(run)
    assert cfg.word_init == "ppmi" and float(model.word_start.abs().max()) > 0  # the start, kept in the checkpoint
    raw = {k: v.clone() for k, v in model.state_dict().items()}
    table = model.discriminator.electra.embeddings.word_embeddings.weight
    moved = table.detach().double() - model.word_start.double()
    u = torch.linalg.svd(moved, full_matrices=False).Vh[0]
    encoder, _ = load_model(run, "encoder")
    delivered = dict(encoder.named_parameters())
    delivered_moved = delivered["embeddings.word_embeddings.weight"].detach().double() - model.word_start.double()
    assert float((delivered_moved @ u).abs().max()) < 1e-6  # nothing left of the movement along u ...
    assert float((moved @ u).abs().max()) > 1e-4
    v = torch.linalg.svd(model.word_start.double(), full_matrices=False).Vh[0]
    torch.testing.assert_close(delivered_moved @ v, moved @ v - (moved @ u) * (u @ v))  # ... and only along u
    for name, p in model.discriminator.electra.named_parameters():
        if name != "embeddings.word_embeddings.weight":
            assert torch.equal(p, delivered[name]), name
    generator, _ = load_model(run, "generator")
    assert torch.equal(generator.electra.embeddings.word_embeddings.weight, table)
    # the live probe measures the delivered encoder and puts the trained table back exactly
    probe_set = builtin_probe_set()
    live = LiveProbe(probe_set, tok, 32, {})
    with_removal = live(model)
    assert all(torch.equal(raw[k], v) for k, v in model.state_dict().items())
    model.cfg.remove_top_word_direction = False
    as_trained = live(model)
    assert with_removal != as_trained
    # a run made with the option off loads as trained
    data = json.loads((run / "config.json").read_text())["data"]["path"]
    off = tmp_path / "off"
    args = ["pretrain", *TINY, "--data", data, "--out", str(off), "--max-steps", "2"]
    assert main([*args, "--remove-top-word-direction", "false"]) == 0
    trained, _, _ = load_run(off)
    assert torch.equal(
        load_model(off, "encoder")[0].embeddings.word_embeddings.weight,
        trained.discriminator.electra.embeddings.word_embeddings.weight,
    )
