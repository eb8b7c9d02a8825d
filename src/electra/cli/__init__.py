"""The `electra` command: one subcommand per workflow.

Each command's module in this package has `add_<command>_arguments(parser)` and `run_<command>(args) -> int`; the
run functions call the workflow functions of `electra.api` (and the modules below it), imported only when the command
runs, so that `--help` and argument errors answer at once. This file only wires them up and turns
`ElectraError` (bad input) and `OSError` (the environment: a full or read-only disk, an unreadable path) into one
clear line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

from electra import __version__
from electra.config import PretrainConfig, unknown_key_message, without_retired
from electra.errors import ElectraError, Stopped

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
        super().error(message)

    def _commands(self) -> list[argparse.ArgumentParser]:
        subs = [a for a in self._actions if isinstance(a, argparse._SubParsersAction)]
        return [self, *(p for s in subs for p in s.choices.values())]


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
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


def apply_config_file(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """Defaults from `--config FILE` for the chosen command's parser: explicit options still override them."""
    if "--config" not in argv or argv.index("--config") + 1 >= len(argv):
        return
    path = Path(argv[argv.index("--config") + 1])
    try:
        values = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ElectraError(f"--config {path}: cannot read it as JSON ({err})") from None
    if not isinstance(values, dict):
        raise ElectraError(f"--config {path}: expected a JSON object of option values")
    if "config" in values and "run" in values:  # a pretraining run's own config.json
        config = without_retired(PretrainConfig, dict(values["config"]), f"--config {path}")
        values = {**config.pop("model"), **config, **{k: v for k, v in values["run"].items() if k != "out"}}
        values.update(resume=False, force=False)
    command = next(p for p in parser._commands()[1:] if p._defaults.get("_run"))  # the chosen one
    dests = {a.dest: a for a in command._actions}
    defaults = {}
    for key, value in values.items():
        dest = next((d for d in (key, f"cfg__{key}", f"ft__{key}") if d in dests), None)
        if dest is None or dest in ("help", "config", "print_config"):
            where = f"the options of `electra {command.prog.split()[-1]}`"
            raise ElectraError(f"--config {path}: " + unknown_key_message(key, _names(dests), where))
        defaults[dest] = value
    command.set_defaults(**defaults)


def _names(dests: dict[str, argparse.Action]) -> list[str]:
    return [d.split("__", 1)[-1] for d in dests if d not in ("help", "config", "print_config")]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    command = next((a for a in argv if a in COMMANDS), "electra")
    try:
        apply_config_file(parser, argv)
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
        print(f"electra {command}: error: {err}", file=sys.stderr)
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
