"""One check of every config value, whichever way it comes in: the command line, a `--config` file, a run's own
config.json on resume, and the Python API. A bad value is one line naming the field and what it expects, exit
status 2, and nothing written."""

import argparse
import json
import math
import random
import string

import pytest
from test_pretrain import TINY, data_dir  # noqa: F401  (data_dir: the session fixture)

from electra.cli import build_parser, main
from electra.config import FinetuneConfig, ModelConfig, PretrainConfig, flat_fields, preset
from electra.errors import ConfigError
from electra.train.rundir import RunOptions

SKIP = ("help", "config", "print_config")


def _required(command: str, tmp) -> list[str]:
    """Arguments each command needs; every input is missing, so a value that slipped through still fails at once
    (with another message, which the test notices) instead of doing work."""
    missing, out = str(tmp / "missing"), str(tmp / "out")
    (tmp / "empty").mkdir(exist_ok=True)
    return {
        "prepare": ["--corpus", missing, "--vocab", missing, "--out", out],
        "vocab": ["--corpus", missing, "--out", out],
        "pretrain": ["--preset", "tiny", "--data", missing, "--out", out],
        "bench": ["--preset", "tiny", "--steps", "1", "--device", "cpu"],
        "export": [missing, "--out", out],
        "finetune": ["--model", missing, "--glue-dir", str(tmp / "empty"), "--out", out],
        "submit": [missing, "--out", out + ".zip"],
        "report": [missing, "--out", out],
        "probe": [missing],
        "diagnose": [missing],
        "detect": ["--model", missing, "some text"],
        "fill": ["--model", missing, "a [MASK]"],
        "quickstart": ["--out", out, "--corpus", missing],
    }[command]


def _without(argv: list[str], options: list[str]) -> list[str]:
    """`argv` without the options named (and their values): the value under test comes from the file."""
    out, skip = [], False
    for arg in argv:
        if arg in options:
            skip = True
            continue
        if skip and not arg.startswith("--"):
            continue
        skip = False
        out.append(arg)
    return out


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 8)))


def _wrong_values(rng: random.Random, kind: str, optional: bool, numeric_field: bool) -> list:
    """Values of the wrong type (nested, null where a value is needed, other kinds) and, for a numeric config
    field, out of its range (every numeric field of the configs has a lower bound at or above 0)."""
    values = [{_word(rng): rng.randint(0, 9)}, [rng.random(), _word(rng)], [[rng.randint(0, 9)]]]
    if not optional:
        values.append(None)
    if kind == "switch":
        values += [rng.choice(["yes", "on", "maybe"]), rng.randint(0, 1), rng.random()]
    elif kind == "bool":
        values += ["maybe-" + _word(rng), rng.randint(0, 1), rng.random()]
    elif kind == "int":
        values += [rng.randint(0, 99) + 0.5, rng.choice([True, False]), _word(rng)]
    elif kind == "float":
        values += [rng.choice([True, False]), _word(rng)]
    elif kind == "choice":
        values += ["not-" + _word(rng), rng.randint(0, 9), rng.choice([True, False])]
    elif kind == "list":
        values += [rng.randint(0, 9), [rng.randint(0, 9)], {"a": [_word(rng)]}, True]
    elif kind == "shard":
        values += [f"{rng.randint(2, 9)}/1", [rng.randint(2, 9), 1], _word(rng), True]
    else:  # a string
        values += [rng.randint(0, 9), rng.random(), rng.choice([True, False])]
    if numeric_field and kind == "int":
        values += [-rng.randint(1, 10**9)]
    if numeric_field and kind == "float":
        values += [-rng.uniform(1e-3, 1e9), math.nan]
    return values


def _fields(command: str) -> list[tuple[str, str, bool, bool]]:
    """(key, kind, null allowed, numeric config field) for every option `--config` may set for `command`."""
    sub = next(a for a in build_parser([command])._actions if isinstance(a, argparse._SubParsersAction))
    parser = sub.choices[command]
    hints = dict(flat_fields(PretrainConfig, ModelConfig, FinetuneConfig, RunOptions))
    ranged = {name for name, hint in hints.items() if int in _args(hint) or float in _args(hint)}
    out = []
    for action in parser._actions:
        if action.dest in SKIP or action.dest.startswith("_"):
            continue
        key = action.dest.split("__", 1)[-1]
        if action.dest.startswith(("cfg__", "ft__")):
            hint = hints[key]
            args = _args(hint)
            optional = type(None) in args
            kind = next(
                (k for t, k in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str")) if t in args), "choice"
            )
        else:
            optional = not action.required and action.default is None
            if action.nargs == 0:
                kind = "switch"
            elif action.nargs in ("+", "*"):
                kind = "list"
            elif isinstance(action.default, tuple):
                kind = "shard"
            elif action.choices is not None:
                kind = "choice"
            else:
                kind = {int: "int", float: "float"}.get(action.type, "str")
        numeric = key in ranged and (action.dest.startswith(("cfg__", "ft__")) or command == "pretrain")
        out.append((key, kind, optional, numeric))
    return out


def _args(hint) -> tuple:
    import typing

    return typing.get_args(hint) or (hint,)


COMMANDS = [
    "prepare",
    "vocab",
    "pretrain",
    "bench",
    "export",
    "finetune",
    "submit",
    "report",
    "probe",
    "diagnose",
    "detect",
    "fill",
    "quickstart",
]


def _run(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.err


@pytest.mark.parametrize("command", COMMANDS)
def test_random_wrong_config_values_are_one_line_naming_the_key_and_nothing_is_written(command, tmp_path, capsys):
    """Property: for every option of the command (every field of its config), random values of the wrong type
    (nested, null, another kind) or out of range, given in a `--config` file: exit 2, exactly one `error:` line,
    which names the key and the file, and nothing written."""
    work = tmp_path / "work"
    work.mkdir()
    base = _required(command, work)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    fields = _fields(command)
    assert fields
    for key, kind, optional, numeric in fields:
        rng = random.Random(f"{command}.{key}")
        option = "--" + key.replace("_", "-")
        argv_base = _without(base, [option])
        for value in _wrong_values(rng, kind, optional, numeric):
            config = tmp_path / "config.json"
            config.write_text(json.dumps({key: value}))
            code, err = _run([command, *argv_base, "--config", str(config)], capsys)
            errors = [line for line in err.splitlines() if "error:" in line]
            case = (command, key, value, err[-600:])
            assert code == 2, case
            assert len(errors) == 1 and errors[0].startswith(f"electra {command}: error: --config {config}: "), case
            assert key in errors[0] and "Traceback" not in err, case
            config.unlink()
            assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before, case


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("max_steps", None, "max_steps must be an integer, got None"),
        ("max_steps", True, "max_steps must be an integer, got True"),
        ("learning_rate", [1, 2], "learning_rate must be a number, got [1, 2]"),
        ("learning_rate", -1, "learning_rate must be > 0, got -1.0"),
        ("hidden_size", {"a": 1}, "hidden_size must be an integer, got {'a': 1}"),
        (
            "objective",
            "bert",
            "objective must be one of 'electra', 'mlm', 'electra-15', 'replace-mlm', 'all-tokens-mlm', 'electric', "
            "got 'bert'",
        ),
    ],
)
def test_the_python_api_and_a_config_file_give_the_same_answer(field, value, message, tmp_path, capsys):
    with pytest.raises(ConfigError) as err:
        preset("tiny", **{field: value})
    assert str(err.value) == message
    config = tmp_path / "c.json"
    config.write_text(json.dumps({field: value}))
    code, err = _run(["pretrain", "--preset", "tiny", "--config", str(config), "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and err.strip() == f"electra pretrain: error: --config {config}: {message}"
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--learning-rate", "-1", "--learning-rate must be > 0, got -1.0"),
        ("--max-grad-norm", "-1", "--max-grad-norm must be >= 0, got -1.0"),
        ("--layerwise-lr-decay", "-1", "--layerwise-lr-decay must be in (0, 1], got -1.0"),
        ("--layerwise-lr-decay", "1.5", "--layerwise-lr-decay must be in (0, 1], got 1.5"),
        ("--adam-beta1", "1.5", "--adam-beta1 must be in [0, 1), got 1.5"),
        ("--adam-beta2", "-0.1", "--adam-beta2 must be in [0, 1), got -0.1"),
        ("--weight-decay", "-1", "--weight-decay must be >= 0, got -1.0"),
        ("--epochs", "0", "--epochs must be >= 1, got 0"),
        ("--head-dropout", "1.5", "--head-dropout must be in [0, 1), got 1.5"),
        ("--max-length", "2", "--max-length must be >= 4, got 2"),
        ("--batch-size", "0", "--batch-size must be >= 1, got 0"),
    ],
)
def test_finetuning_options_out_of_range_are_refused_on_the_command_line_and_in_python(
    option, value, message, tmp_path, capsys
):
    (tmp_path / "glue").mkdir()
    argv = ["finetune", "--model", "random:tiny", "--glue-dir", str(tmp_path / "glue"), "--out", str(tmp_path / "o")]
    code, err = _run([*argv, option, value], capsys)
    assert code == 2 and err.strip() == f"electra finetune: error: {message}"
    assert not (tmp_path / "o").exists()
    field = option[2:].replace("-", "_")
    with pytest.raises(ConfigError, match=f"^{field} must be"):
        FinetuneConfig(**{field: type(getattr(FinetuneConfig(), field) or 1.0)(value)})


def test_finetuning_defaults_and_the_documented_switches_stay_valid():
    FinetuneConfig()
    FinetuneConfig(max_grad_norm=0.0, layerwise_lr_decay=1.0, weight_decay=0.0, head_dropout=0.0, adam_beta1=0.0)
    assert FinetuneConfig(learning_rate=1).learning_rate == 1.0 and isinstance(FinetuneConfig(epochs=2).epochs, int)


@pytest.mark.parametrize(
    "option", ["--eval-every", "--save-every", "--log-every", "--eval-examples", "--micro-batch-size"]
)
def test_pretraining_run_options_out_of_range_are_refused_before_anything_is_written(option, tmp_path, capsys):
    argv = ["pretrain", "--preset", "tiny", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r")]
    code, err = _run([*argv, option, "-1"], capsys)
    bound = 0 if option == "--eval-every" else 1
    assert code == 2 and err.strip() == f"electra pretrain: error: {option} must be >= {bound}, got -1"
    assert not (tmp_path / "r").exists()
    from electra.api import pretrain

    with pytest.raises(ConfigError, match=f"^{option[2:].replace('-', '_')} must be >= {bound}, got -1$"):
        pretrain(tmp_path / "r", preset="tiny", data=str(tmp_path / "missing"), **{option[2:].replace("-", "_"): -1})
    assert not (tmp_path / "r").exists()


def test_a_runs_own_config_json_is_checked_on_resume(data_dir, tmp_path, capsys):  # noqa: F811
    run = tmp_path / "run"
    argv = ["pretrain", *TINY, "--data", str(data_dir), "--out", str(run), "--max-steps", "3", "--eval-every", "0"]
    assert main([*argv, "--probe", "none", "--save-every", "1"]) == 0
    saved = json.loads((run / "config.json").read_text())
    for where, key, value, message in [
        ("config", "learning_rate", -1, "learning_rate must be > 0, got -1.0"),
        ("config", "max_steps", True, "max_steps must be an integer, got True"),
        ("run", "eval_every", -5, "eval_every must be >= 0, got -5"),
    ]:
        broken = json.loads(json.dumps(saved))
        broken[where][key] = value
        broken["finished"] = False
        (run / "config.json").write_text(json.dumps(broken))
        capsys.readouterr()
        code, err = _run(["pretrain", "--out", str(run), "--resume", "--no-progress"], capsys)
        assert code == 2, (key, err)
        assert err.strip().splitlines()[-1].startswith("electra pretrain: error: ") and message in err, (key, err)
        assert "Traceback" not in err
