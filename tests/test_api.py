"""The Python API (`electra.api`) end to end on a tiny corpus: what the README's Python example does."""

import json
import random

import transformers
from glue_fixtures import WORDS, write_glue, write_vocab

from electra.api import export, finetune, prepare, pretrain, report


def test_prepare_pretrain_export_finetune_report_from_python(tmp_path):
    rng = random.Random(0)
    docs = ["\n".join(" ".join(rng.choice(WORDS) for _ in range(8)) + " ." for _ in range(10)) for _ in range(40)]
    (tmp_path / "corpus.txt").write_text("\n\n".join(docs) + "\n")
    vocab = write_vocab(tmp_path / "vocab.txt")

    data = prepare([str(tmp_path / "corpus.txt")], str(vocab), 32, tmp_path / "data", progress=False)
    assert json.loads((data / "meta.json").read_text())["max_length"] == 32

    tiny = dict(hidden_size=32, embedding_size=16, num_hidden_layers=2, intermediate_size=64, max_length=32)
    last = pretrain(
        tmp_path / "run",
        preset="tiny",
        data=data,
        batch_size=8,
        max_steps=4,
        eval_every=0,
        probe="none",
        progress=False,
        **tiny,
    )
    assert last["step"] == 4
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["finished"] and saved["config"]["model"]["hidden_size"] == 32 and saved["run"]["data"] == str(data)

    record = export(tmp_path / "run", tmp_path / "hf")
    assert record["step"] == 4
    assert (
        transformers.ElectraForPreTraining.from_pretrained(tmp_path / "hf" / "discriminator").config.hidden_size == 32
    )

    glue = write_glue(tmp_path / "glue")
    results = finetune(
        str(tmp_path / "run"),
        tmp_path / "sweep",
        tasks="sst2",
        glue_dir=glue,
        runs=1,
        quiet=True,
        epochs=1,
        batch_size=8,
        max_length=32,
    )
    assert set(results["tasks"]) == {"sst2"}

    text = report([tmp_path / "run", tmp_path / "sweep"], tmp_path / "report")
    assert "SST-2" in text and (tmp_path / "report" / "index.md").is_file()


def test_unknown_settings_are_named_with_the_nearest_one(tmp_path):
    import pytest

    from electra.errors import ElectraError

    with pytest.raises(ElectraError, match="unknown config key 'hiden_size'.*did you mean 'hidden_size'"):
        pretrain(tmp_path / "run", preset="tiny", data=tmp_path, hiden_size=3)
    assert not (tmp_path / "run").exists()
