"""The `electra` command: one subcommand per workflow.

Each command's module here has `add_<command>_arguments(parser)` and `run_<command>(args)`, which imports its
workflow only when it runs; `ElectraError` and `OSError` become one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import difflib
import importlib
import json
import re
import sys
from pathlib import Path
from typing import Any, NoReturn

from electra import __version__
from electra.config import PretrainConfig, unknown_key_message, without_retired
from electra.errors import ConfigError, ElectraError, Stopped

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "prepare": ("electra.cli.data", "turn a text corpus into ELECTRA pretraining examples (tokenized, on disk)"),
    "vocab": ("electra.cli.data", "train a new WordPiece vocabulary on a corpus"),
    "pretrain": (
        "electra.cli.pretrain",
        "pretrain generator + discriminator (replaced-token detection), 1 CPU to N GPUs",
    ),
    "bench": ("electra.cli.pretrain", "measure the training throughput of a preset on this machine"),
    "export": ("electra.cli.models", "a pretraining or finetuning run -> transformers model directories"),
    "finetune": ("electra.cli.finetune", "finetune on GLUE, your own files, tagging or SQuAD over seeds; dev metrics"),
    "submit": ("electra.cli.finetune", "write the GLUE-server submission zip from a finetuning sweep"),
    "report": ("electra.cli.analysis", "markdown tables and PNG plots over pretraining runs and finetuning sweeps"),
    "probe": ("electra.cli.analysis", "linear probe of frozen features against random weights: are they useful yet?"),
    "diagnose": (
        "electra.cli.analysis",
        "what pretraining did to the representations (collapse, attention, embeddings)",
    ),
    "detect": ("electra.cli.models", "print each token's probability of having been replaced (discriminator)"),
    "fill": ("electra.cli.models", "the generator's top-k tokens for each [MASK] in a text"),
    "score": ("electra.cli.score", "one likelihood score per sentence: masked-LM PLL or Electric's one pass"),
    "quickstart": ("electra.cli.quickstart", "prepare, pretrain tiny, export, finetune and report, end to end (CPU)"),
}


EPILOG = """examples:
  electra quickstart --out runs/quickstart                       the whole pipeline on a CPU, nothing to download
  electra prepare --corpus corpus.txt --vocab vocab.txt --out data
  electra pretrain --preset small --data data --out runs/small   (--resume continues it exactly)
  electra finetune --model runs/small --glue-dir glue --out runs/glue
  electra finetune --model runs/small --train train.csv --dev dev.csv --out runs/mine
  electra report runs/small runs/glue --out runs/report

every command: --help, --config FILE, --print-config. Docs: docs/cli.md (all options), docs/*.md (guides)."""


class Parser(argparse.ArgumentParser):
    """argparse with no abbreviations and, for a mistyped option, the nearest real one."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments:"):
            known = [o for p in self._commands() for a in p._actions for o in a.option_strings if o.startswith("--")]
            for word in message.split(":", 1)[1].split():
                close = difflib.get_close_matches(word.split("=")[0], known, n=1, cutoff=0.6)
                if word.startswith("--") and close:
                    message += f" (did you mean {close[0]}?)"
                    break
        self.exit(2, f"{self.prog}: error: {message}\n")  # one line: `--help` has the usage

    def _commands(self) -> list[argparse.ArgumentParser]:
        subs = [a for a in self._actions if isinstance(a, argparse._SubParsersAction)]
        return [self, *(p for s in subs for p in s.choices.values())]


def build_parser(argv: list[str] | None = None) -> Parser:
    """The parser; only the module of the command named in `argv` is imported (all of them when argv is None)."""
    parser = Parser(
        prog="electra",
        description=__doc__.splitlines()[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"electra {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)
    chosen = next((a for a in argv if a in COMMANDS), None) if argv is not None else None
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if argv is None or name == chosen:
            module = importlib.import_module(module_name)
            getattr(module, f"add_{name}_arguments")(p)
            p.set_defaults(
                _run=getattr(module, f"run_{name}"),
                _resolve=getattr(module, f"resolved_{name}_config", None),
            )
            p.add_argument(
                "--config",
                metavar="FILE",
                help="JSON file of option values (keys: the options without dashes, or a run's config.json); "
                "options given on the command line win",
            )
            p.add_argument("--print-config", action="store_true", help="print the resolved options as JSON and exit")
    return parser


def apply_config_file(parser: Parser, argv: list[str]) -> dict[str, str]:
    """Defaults from `--config FILE` for the chosen command's parser (explicit options still win): a config field's
    value goes to its config as it is, any other option's must be what the command line could give. Returns the
    names of the values read, with the file."""
    if "--config" not in argv or argv.index("--config") + 1 >= len(argv):
        return {}
    path = Path(argv[argv.index("--config") + 1])
    try:
        values = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ElectraError(f"--config {path}: cannot read it as JSON ({err})") from None
    if not isinstance(values, dict):
        raise ElectraError(f"--config {path}: expected a JSON object of option values")
    if "config" in values and "run" in values:  # a pretraining run's own config.json
        config, run = values["config"], values["run"]
        if not isinstance(config, dict) or not isinstance(config.get("model"), dict) or not isinstance(run, dict):
            raise ElectraError(f"--config {path}: expected 'config' (with 'model') and 'run' objects, as a run has")
        config = without_retired(PretrainConfig, dict(config), f"--config {path}")
        values = {**config.pop("model"), **config, **{k: v for k, v in run.items() if k != "out"}}
        values.update(resume=False, force=False)
    command = next(p for p in parser._commands()[1:] if p._defaults.get("_run"))  # the chosen one
    dests = {a.dest: a for a in command._actions}
    defaults = {}
    for key, value in values.items():
        dest = next((d for d in (key, f"cfg__{key}", f"ft__{key}") if d in dests), None)
        if dest is None or dest in ("help", "config", "print_config"):
            where = f"the options of `electra {command.prog.split()[-1]}`"
            raise ElectraError(f"--config {path}: " + unknown_key_message(key, _names(dests), where))
        if dest.startswith(("cfg__", "ft__")) and not isinstance(value, str):
            defaults[dest] = value  # checked by its config
        else:
            defaults[dest] = _option_value(dests[dest], key, value, f"--config {path}")
    command.set_defaults(**defaults)
    return {dest.split("__", 1)[-1]: str(path) for dest in defaults}


def _option_value(action: argparse.Action, key: str, value: Any, where: str) -> Any:
    """A `--config` value for an option, converted and checked as argparse does the option's text: a bool for a
    switch, a list for an option of several values, else one string or number (null: not given)."""

    def refuse(expected: str) -> NoReturn:
        raise ConfigError(f"{where}: {key} must be {expected}, got {value!r}")

    several = isinstance(action.nargs, int) and action.nargs > 0 or action.nargs in ("+", "*")
    if action.nargs == 0:  # a switch (--force, --no-progress)
        if not isinstance(value, bool):
            refuse("true or false")
        return value
    if value is None:
        if action.required or action.default is not None:
            refuse(_list_kind(action) if several else _kind(action))
        return None
    if several:
        if not isinstance(value, list) or (action.nargs == "+" and not value):
            refuse(_list_kind(action))
        return [_one_value(action, key, v, where) for v in value]
    if isinstance(action.default, tuple) and isinstance(value, list):  # --shard K/N, as --print-config shows it
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            refuse("K/N or [K, N]")
        value = "/".join(map(str, value))
    return _one_value(action, key, value, where)


def _kind(action: argparse.Action) -> str:
    """What one value of an option is, in words."""
    if action.choices is not None:
        return f"one of {', '.join(map(repr, action.choices))}"
    return {"int": "an integer", "float": "a number", "_parse_bool": "true or false"}.get(
        getattr(action.type, "__name__", ""), "a string"
    )


def _list_kind(action: argparse.Action) -> str:
    kind = _kind(action)
    return f"a list of values ({kind})" if action.choices is not None else f"a list of {kind.split(' ', 1)[1]}s"


def _one_value(action: argparse.Action, key: str, value: Any, where: str) -> Any:
    if (
        isinstance(value, bool)
        or not isinstance(value, str | int | float)
        or action.type is None
        and not isinstance(value, str)
    ):
        raise ConfigError(f"{where}: {key} must be {_kind(action)}, got {value!r}")
    try:
        converted = action.type(str(value)) if action.type is not None else value
    except argparse.ArgumentTypeError as err:
        raise ConfigError(f"{where}: {key}: {err}") from None
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {key} must be {_kind(action)}, got {value!r}") from None
    if action.choices is not None and converted not in action.choices:
        raise ConfigError(f"{where}: {key} must be {_kind(action)}, got {value!r}")
    return converted


def _names(dests: dict[str, argparse.Action]) -> list[str]:
    return [d.split("__", 1)[-1] for d in dests if d not in ("help", "config", "print_config")]


# keywords of the Python API that are options of another name on the command line (`electra finetune`)
API_OPTIONS = {"version": "--qa-version", "save_model": "--save-model"}


def cli_words(message: str, parser: Parser, from_file: dict[str, str]) -> str:
    """A message of the Python API in the command line's words (`learning_rate must be > 0` -> `--learning-rate
    must be > 0`, `save_model=True` -> `--save-model`); a value read from `--config FILE` keeps its key, after
    `--config FILE:`, and so do messages about a config file's contents."""
    command = next((p for p in parser._commands()[1:] if p._defaults.get("_run")), parser)
    options = dict(API_OPTIONS)
    for action in command._actions:
        longs = [o for o in action.option_strings if o.startswith("--")]
        if longs and action.dest not in ("help", "config", "print_config"):
            options[action.dest.split("__", 1)[-1]] = longs[0]
    if message.startswith("--config ") or re.match(r"\S*config\.json\b", message):
        return message
    named = [k for k in from_file if re.search(rf"(?<![\w'./-]){re.escape(k)}(?![\w'/-]|\.\w)", message)]
    if named:  # a value of the file: its key, as the file has it
        return f"--config {from_file[named[0]]}: {message}"

    def swap(m: re.Match[str]) -> str:
        name, assigned, value = m[1], m[2], m[4]
        option = options.get(name)
        if option is None or not (assigned or m.start() == 0 and message[m.end() :].startswith(" must")):
            return m[0]
        return option if not assigned or value == "True" else f"{option} {value}"

    return re.sub(r"(?<![\w./'\"-])([a-z][a-z0-9_]*)(=(['\"]?)([^\s'\",;)]*)\3)?(?![\w/-])", swap, message)


def _given(parser: Parser, argv: list[str]) -> set[str]:
    """The names of the options given on the command line."""
    return {
        a.dest.split("__", 1)[-1]
        for p in parser._commands()
        for a in p._actions
        if any(arg == o or arg.startswith(o + "=") for o in a.option_strings for arg in argv)
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    command = next((a for a in argv if a in COMMANDS), "electra")
    from_file: dict[str, str] = {}
    try:
        from_file = apply_config_file(parser, argv)
        from_file = {k: v for k, v in from_file.items() if k not in _given(parser, argv)}
        args = parser.parse_args(argv)
        if getattr(args, "print_config", False):
            hidden = ("_run", "_resolve", "command", "config", "print_config")
            shown = {k.split("__", 1)[-1]: v for k, v in vars(args).items() if k not in hidden}
            if args._resolve is not None:  # the preset's values too, in the form --config reads back
                shown = args._resolve(args)
            print(json.dumps(shown, indent=2, default=str))
            return 0
        return int(args._run(args) or 0)
    except ElectraError as err:
        print(f"electra {command}: error: {cli_words(str(err), parser, from_file)}", file=sys.stderr)
        return 2
    except OSError as err:  # the environment: a full or read-only disk, a path that cannot be created or read
        where = f"{err.filename}: " if err.filename else ""
        print(f"electra {command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except Stopped as err:  # SIGTERM or SIGINT, after what could be saved was saved (electra.train.stopping)
        print(f"electra {command}: {err}", file=sys.stderr)
        return err.status
    except KeyboardInterrupt:
        print(f"electra {command}: interrupted", file=sys.stderr)
        return 130
