"""`electra quickstart`: the whole pipeline on one CPU in about ten minutes, nothing to download (docs/use-cases.md):
vocab, prepare, pretrain `tiny` for about --minutes, export, finetune from the run and from random weights of the
same shape, report. Everything lands in --out; running it again reuses what is finished."""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

from electra import io

VOCAB_SIZE = 8192  # the built-in corpus is ~2 MB: a BERT-size vocabulary would be mostly unused
MAX_LENGTH = 128


def _say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def hub_reachable(timeout: float = 5.0) -> bool:
    """Whether GLUE can come from the hub: its endpoint answers, or offline mode asks for the local cache."""
    from electra import hub

    return hub.offline() or hub.reachable(timeout)


def corpus_note(corpus: tuple[str, ...], glue_ran: bool) -> str | None:
    """For GLUE after the built-in corpus (technical text far from GLUE's): where a GLUE gain comes from."""
    if not glue_ran or tuple(corpus) != ("builtin",):
        return None
    return (
        "the built-in corpus is 2 MB of Python's own documentation, far from GLUE's sentences: its pretraining "
        "shows on the built-in probe, and on GLUE it was level with random weights when measured "
        "(docs/use-cases.md). A GLUE gain needs English text and about 20 CPU minutes: `tiny` on prose gave "
        'GLUE-5 43.8 against random weights\' 40.1 (docs/pretraining.md, "Counted words, trained layers").'
    )


def pretraining_steps(vocab_size: int, minutes: float) -> tuple[int, float]:
    """(steps that fit in `minutes`, seconds per step) from a short throughput probe of the tiny preset."""
    from electra.config import preset
    from electra.train.bench import measure

    cfg = preset("tiny", vocab_size=vocab_size)
    result = measure(cfg, steps=2, warmup=1, precision_name="auto", compile_mode=None, device="auto")
    seconds = cfg.batch_size / result["seqs_per_s"]
    return max(10, min(cfg.max_steps, math.floor(minutes * 60 / seconds))), seconds


def quickstart(
    out: str | Path = "runs/quickstart",
    glue_dir: str | None = None,
    minutes: float = 3.0,
    max_steps: int | None = None,
    corpus: tuple[str, ...] = ("builtin",),
    tasks: str = "all",
    runs: int = 2,
    max_train_examples: int = 500,
    epochs: int = 3,
    vocab_size: int = VOCAB_SIZE,
    force: bool = False,
) -> dict:
    """Run the six stages; returns paths and a few numbers (also written to OUT/quickstart.json)."""
    from electra.data import prepare_corpus
    from electra.data.vocab import train_vocab
    from electra.tokenizer import load_tokenizer

    out = Path(out)
    if force and out.exists():
        io.refuse_inputs_inside(out, {"--corpus": list(corpus), "--glue-dir": glue_dir})
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    summary: dict = {"out": str(out), "corpus": list(corpus)}

    _say(f"1/6 vocabulary ({vocab_size} WordPiece tokens trained on {' '.join(corpus)})")
    vocab_dir = out / "vocab"
    if (vocab_dir / "vocab.txt").is_file():
        tokenizer = load_tokenizer(vocab_dir)
        print(f"reusing {vocab_dir}")
    else:
        tokenizer = train_vocab(list(corpus), vocab_size=vocab_size)
        tmp = out / ".vocab.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tokenizer.save(tmp)
        tmp.rename(vocab_dir)
        tokenizer = load_tokenizer(vocab_dir)
    print(f"{tokenizer.vocab_size} tokens in {vocab_dir}")

    _say("2/6 prepare the corpus")
    data = prepare_corpus(list(corpus), tokenizer, MAX_LENGTH, out / "data")
    meta = json.loads((data / "meta.json").read_text())
    print(f"{meta['num_examples']} examples, {meta['num_tokens']} tokens in {data}")

    _say("3/6 pretrain the tiny preset")
    from electra.api import pretrain

    run = out / "pretrain"
    if (run / "config.json").is_file():
        print(f"continuing or reusing {run}")
        pretrain(run, resume=True, progress=False)
    else:
        if max_steps is None:
            max_steps, seconds = pretraining_steps(tokenizer.vocab_size, minutes)
            print(f"{seconds:.2f} s per step here: {max_steps} steps fit in about {minutes:g} minutes")
        every = {"warmup_steps": 10, "log_every": 20, "eval_every": 4}  # that part of the steps, at least 1
        schedule = {k: max(1, max_steps // n) for k, n in every.items()}
        options = dict(data=str(data), vocab_size=tokenizer.vocab_size, eval_examples=128, progress=False)
        pretrain(run, "tiny", max_steps=max_steps, save_every=max_steps, **schedule, **options)
    summary["pretrain"] = str(run)

    _say("4/6 export to transformers")
    from electra.export import export_run

    record = export_run(run, out / "export", force=True)
    print(
        f"{out / 'export'}/discriminator and /generator (step {record['step']}); load them with "
        f"transformers.ElectraForPreTraining.from_pretrained('{out / 'export' / 'discriminator'}')"
    )
    summary["export"] = str(out / "export")

    _say("5/6 finetune on GLUE")
    sweep, random_sweep = out / "glue", out / "glue_random"
    if glue_dir is None and not hub_reachable():
        print(
            "GLUE is not reachable: no --glue-dir was given and the Hugging Face hub cannot be reached. "
            "Finetuning is skipped; pass --glue-dir DIR (GLUE in its original TSV layout) to include it."
        )
        summary["glue"] = None
    else:
        from electra.config import FinetuneConfig
        from electra.finetune.glue import sweep as run_sweep
        from electra.finetune.tasks import parse_tasks

        where = glue_dir or "the hub (nyu-mll/glue)"
        print(
            f"tasks {tasks} from {where}: {runs} run(s) each, train sets subsampled to {max_train_examples} "
            f"examples, {epochs} epochs; then the same from random weights, the baseline pretraining must beat"
        )
        cfg = FinetuneConfig(max_train_examples=max_train_examples, epochs=epochs)
        results = run_sweep(
            str(out / "export" / "discriminator"), parse_tasks(tasks), sweep, glue_dir, runs=runs, seed=0, cfg=cfg
        )
        if results["tasks"]:
            print((sweep / "results.md").read_text())
            options = dict(runs=runs, seed=0, cfg=cfg, tokenizer=str(vocab_dir))
            baseline = run_sweep("random:tiny", parse_tasks(tasks), random_sweep, glue_dir, **options)
            print((random_sweep / "results.md").read_text())
            summary |= {"glue": str(sweep), "glue_random": str(random_sweep)}
            average = {"label": results["average"]["label"], "median": results["average"].get("median")}
            summary["glue_average"] = {**average, "random_median": baseline["average"].get("median")}
        else:
            print(f"no GLUE task could be read from {where}; finetuning skipped")
            summary["glue"] = None

    _say("6/6 report")
    from electra.report import write_report

    paths = [run] + ([sweep, random_sweep] if summary["glue"] else [])
    print(write_report(paths, out / "report"))
    report = json.loads((out / "report" / "report.json").read_text())
    summary["findings"] = report.get("findings", [])
    summary["weights_moved"] = report["pretrain"][0]["weights_moved"]
    summary["report"] = str(out / "report" / "index.md")
    summary["minutes"] = round((time.time() - started) / 60, 2)
    (out / "quickstart.json").write_text(json.dumps(summary, indent=2) + "\n")
    _say("what this run shows")
    for line in summary["findings"]:
        print("- " + line.replace("**", ""))
    note = corpus_note(tuple(corpus), bool(summary["glue"]))
    if note:
        print("- " + note)
    print(f"\ndone in {summary['minutes']:.1f} minutes; the report is {summary['report']}")
    return summary
