"""The `electra` command: one subcommand per workflow.

Each workflow module exposes `add_arguments(parser)` and `run(args) -> int`; this file only wires them up and
turns `ElectraError` into one clear line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from electra import __version__
from electra.errors import ElectraError

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "prepare": ("electra.data.prepare", "turn a text corpus into ELECTRA pretraining examples (tokenized, on disk)"),
    "vocab": ("electra.data.vocab", "train a new WordPiece vocabulary on a corpus"),
    "pretrain": ("electra.pretrain", "pretrain generator + discriminator (replaced-token detection), 1 CPU to N GPUs"),
    "bench": ("electra.bench", "measure the training throughput of a preset on this machine"),
    "export": ("electra.export", "a pretraining run (or finetuned GLUE run) -> transformers model directories"),
    "finetune": ("electra.glue.finetune", "finetune on GLUE tasks over many seeds; dev metrics, test predictions"),
    "submit": ("electra.glue.submit", "write the GLUE-server submission zip from a finetuning sweep"),
    "report": ("electra.report", "markdown tables and PNG plots over pretraining runs and finetuning sweeps"),
    "probe": ("electra.probe", "linear probe of frozen features against random weights: are they useful yet?"),
    "diagnose": ("electra.diagnose", "what pretraining did to the representations (collapse, attention, embeddings)"),
    "detect": ("electra.inference", "print each token's probability of having been replaced (discriminator)"),
    "fill": ("electra.inference", "the generator's top-k tokens for each [MASK] in a text"),
    "quickstart": ("electra.quickstart", "prepare, pretrain tiny, export, finetune and report, end to end (CPU)"),
}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the module of the command named in `argv` is imported (all of them when argv is None)."""
    parser = argparse.ArgumentParser(prog="electra", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"electra {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in argv if a in COMMANDS), None) if argv is not None else None
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if argv is None or name == chosen:
            module = importlib.import_module(module_name)
            getattr(module, f"add_{name}_arguments", getattr(module, "add_arguments", None))(p)
            p.set_defaults(_run=getattr(module, f"run_{name}", getattr(module, "run", None)))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except ElectraError as err:
        print(f"electra {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"electra {args.command}: interrupted", file=sys.stderr)
        return 130
