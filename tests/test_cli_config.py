"""The one config-to-command-line generator: --help with defaults, typo suggestions, --config and --print-config."""

import json

import pytest
from safetensors.torch import load_file
from test_pretrain import TINY, data_dir  # noqa: F401  (data_dir: the session fixture)

from electra.cli import build_parser, main


def test_help_lists_every_field_with_its_default_and_the_presets_that_differ():
    text = build_parser(["pretrain"])._subparsers._group_actions[0].choices["pretrain"].format_help()
    text = " ".join(text.split())  # (help lines wrap anywhere)
    assert "--learning-rate V" in text and "default 0.0005 (tiny: 0.0005" not in text  # equal to the default: unlisted
    assert "--batch-size V" in text and "default 128 (tiny: 64" in text
    assert "--freeze-word-embeddings V" in text and "default False (tiny: True)" in text
    finetune = build_parser(["finetune"])._subparsers._group_actions[0].choices["finetune"].format_help()
    finetune = " ".join(finetune.split())
    assert "--layerwise-lr-decay V" in finetune and "default by model size / task" in finetune


def test_a_mistyped_option_names_the_nearest_one(capsys):
    for argv in (
        ["pretrain", "--hiden-size", "64", "--out", "x"],
        ["finetune", "--model", "m", "--out", "o", "--epoch", "2"],
    ):
        try:
            main(argv)
        except SystemExit as stop:
            assert stop.code == 2
        err = capsys.readouterr().err
        assert "unrecognized arguments" in err and "(did you mean --" in err
    try:  # no abbreviations: --hidden is not taken for --hidden-size
        main(["pretrain", "--preset", "tiny", "--hidden", "64", "--out", "x", "--print-config"])
    except SystemExit as stop:
        assert stop.code == 2
    assert "did you mean --hidden-size?" in capsys.readouterr().err


def test_none_is_accepted_for_optional_fields(tmp_path, capsys):
    args = ["finetune", "--model", "m", "--out", str(tmp_path), "--print-config"]
    assert main([*args, "--learning-rate", "1e-4"]) == 0
    assert json.loads(capsys.readouterr().out)["learning_rate"] == 1e-4
    assert main([*args, "--learning-rate", "none"]) == 0
    assert json.loads(capsys.readouterr().out)["learning_rate"] is None  # by model size


def test_a_retired_option_is_refused_in_a_config_but_loads_at_its_neutral_value(tmp_path, capsys):
    assert main(["pretrain", "--preset", "tiny", "--out", "a", "--print-config"]) == 0
    shown = json.loads(capsys.readouterr().out)
    shown["config"]["generator_adam_epsilon"] = None  # what electra 0.1.0 recorded when the option was off
    (tmp_path / "c.json").write_text(json.dumps(shown))
    assert main(["pretrain", "--config", str(tmp_path / "c.json"), "--out", "a", "--print-config"]) == 0
    assert "generator_adam_epsilon" not in json.loads(capsys.readouterr().out)["config"]
    shown["config"]["generator_adam_epsilon"] = 1e-6
    (tmp_path / "c.json").write_text(json.dumps(shown))
    assert main(["pretrain", "--config", str(tmp_path / "c.json"), "--out", "a", "--print-config"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "generator_adam_epsilon" in err[0] and "0.1.0" in err[0]
    with pytest.raises(SystemExit):  # not an option any more
        main(["pretrain", "--preset", "tiny", "--out", "a", "--generator-adam-epsilon", "1e-6"])


def test_print_config_is_read_back_by_config_under_explicit_options(tmp_path, capsys):
    assert main(["pretrain", "--preset", "tiny", "--out", "a", "--max-steps", "50", "--print-config"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["config"]["warmup_steps"] == 5  # the preset's warm-up fraction of the shortened run
    (tmp_path / "c.json").write_text(json.dumps(shown))
    assert (
        main(
            [
                "pretrain",
                "--config",
                str(tmp_path / "c.json"),
                "--out",
                "b",
                "--learning-rate",
                "0.002",
                "--print-config",
            ]
        )
        == 0
    )
    again = json.loads(capsys.readouterr().out)
    assert again["config"] == {**shown["config"], "learning_rate": 0.002}
    assert again["run"]["out"] == "b"


def test_config_rejects_unknown_keys_and_unreadable_files(tmp_path, capsys):
    (tmp_path / "bad.json").write_text(json.dumps({"hiden_size": 3}))
    assert main(["pretrain", "--config", str(tmp_path / "bad.json"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'hiden_size'" in err and "did you mean 'hidden_size'" in err
    (tmp_path / "cut.json").write_text('{"max_steps": ')
    assert main(["pretrain", "--config", str(tmp_path / "cut.json"), "--out", str(tmp_path / "r")]) == 2
    assert "cut.json: cannot read it as JSON" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_runs_config_json_reproduces_the_run(data_dir, tmp_path):  # noqa: F811
    a, b = tmp_path / "a", tmp_path / "b"
    assert (
        main(
            [
                "pretrain",
                *TINY,
                "--data",
                str(data_dir),
                "--out",
                str(a),
                "--max-steps",
                "3",
                "--eval-every",
                "0",
                "--probe",
                "none",
            ]
        )
        == 0
    )
    assert main(["pretrain", "--config", str(a / "config.json"), "--out", str(b)]) == 0
    assert (
        json.loads((b / "config.json").read_text())["config"] == json.loads((a / "config.json").read_text())["config"]
    )
    wa = load_file(a / "checkpoints" / "latest" / "model.safetensors")
    wb = load_file(b / "checkpoints" / "latest" / "model.safetensors")
    assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)
