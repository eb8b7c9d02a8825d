"""Kills at chosen moments leave a run that resumes to exactly the uninterrupted one; one writer per directory.

The kills are placed with the `ELECTRA_FAULT` hook (`electra.io.fault_point`), not by timing: each names a moment
inside the checkpoint and log writes, and the process SIGKILLs itself there.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_pretrain import TINY, TOKENS, data_dir, subprocess_env  # noqa: F401  (data_dir: the session fixture)

from electra import io
from electra.cli import main
from electra.errors import ElectraError

TIMING = ("seqs_per_s", "tokens_per_s", "real_tokens_per_s", "flops_per_s")

# (moment, the how-manieth time it is reached) -- with 12 steps, saves every 5 and kept fractions at 1, 2, 3, 6, 12
KILLS = [
    ("checkpoint.model_written", 3),  # a temporary checkpoint half written
    ("checkpoint.complete", 4),  # complete but not yet renamed into place
    ("install.between_renames", 2),  # the old `latest` moved aside, the new one not yet in place
    ("save.kept_written", 3),  # step_3 written, its index entry and `latest` not yet
    ("save.indexed", 4),  # step_6 written and indexed, `latest` still at step 5
    ("checkpoint.copied", 2),  # `latest` being copied from step_2
    ("save.finishing", 1),  # the last checkpoint written, config.json not yet marked finished
    ("metrics.written", 8),  # a log line past the last checkpoint
]


def _run(data: Path, out: Path, *extra: str, fault: str | None = None) -> subprocess.CompletedProcess:
    env = subprocess_env()
    if fault:
        env[io.FAULT_ENV] = fault
    args = [
        *TINY,
        "--data",
        str(data),
        "--max-steps",
        "12",
        "--log-every",
        "1",
        "--save-every",
        "5",
        "--eval-every",
        "4",
        "--eval-examples",
        "8",
        "--probe",
        "none",
    ]
    return subprocess.run(
        [sys.executable, "-m", "electra", "pretrain", *args, "--out", str(out), *extra],
        env=env,
        capture_output=True,
        text=True,
    )


def _snapshot(run: Path) -> dict:
    """Everything of a run directory that must not depend on where it was killed."""
    root = run / "checkpoints"
    out = {"index": json.loads((root / "index.json").read_text()), "checkpoints": {}}
    for ck in sorted(p for p in root.iterdir() if not p.name.startswith(".") and p.is_dir()):
        state = json.loads((ck / "trainer_state.json").read_text())
        state.pop("time")
        weights = load_file(ck / "model.safetensors")  # (the file's alias table is not in a fixed order)
        out["checkpoints"][ck.name] = ({k: v.numpy().tobytes() for k, v in weights.items()}, state)
    out["metrics"] = [
        {k: v for k, v in json.loads(line).items() if k not in TIMING} for line in (run / "metrics.jsonl").open()
    ]
    out["config"] = json.loads((run / "config.json").read_text())
    for option in ("out", "resume"):  # where the run is, and how it was started
        out["config"]["run"].pop(option)
    out["stray"] = sorted(p.name for p in root.iterdir() if p.name.startswith("."))
    return out


@pytest.mark.slow
def test_a_kill_at_any_moment_of_saving_or_logging_resumes_to_the_uninterrupted_run(data_dir, tmp_path):  # noqa: F811
    full = tmp_path / "full"
    assert _run(data_dir, full).returncode == 0
    expected = _snapshot(full)
    assert set(expected["checkpoints"]) == {"latest", "step_1", "step_2", "step_3", "step_6", "step_12"}
    assert expected["config"]["finished"] is True
    for point, n in KILLS:
        run = tmp_path / point
        killed = _run(data_dir, run, fault=f"{point}@{n}")
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr[-2000:])
        resumed = _run(data_dir, run, "--resume")
        assert resumed.returncode == 0, (point, resumed.stderr[-2000:])
        got = _snapshot(run)
        for key in expected:
            assert got[key] == expected[key], (point, key)


def test_one_writer_per_run_directory(data_dir, tmp_path, capsys):  # noqa: F811
    run = tmp_path / "run"
    base = [*TINY, "--data", str(data_dir), "--max-steps", "3", "--eval-every", "0", "--probe", "none"]
    assert main(["pretrain", *base, "--out", str(run)]) == 0
    before = (run / "checkpoints" / "latest" / "model.safetensors").read_bytes()
    with io.locked(run):  # another process writing the run (a lock is per open file: this process counts too)
        for extra in (["--resume"], ["--force"]):
            assert main(["pretrain", *base, "--out", str(run), *extra]) == 2
            err = capsys.readouterr().err
            assert f"run directory {run} is in use by another process (pid {os.getpid()} on host" in err
    # --force under a live run deleted nothing
    assert (run / "checkpoints" / "latest" / "model.safetensors").read_bytes() == before


def test_a_lock_left_by_a_killed_process_is_taken_over_and_reported(tmp_path):
    (tmp_path / io.LOCK_FILE).write_text("pid 999999999 on host elsewhere")
    with io.locked(tmp_path) as lock:
        assert lock.stale == "pid 999999999 on host elsewhere"
        assert (tmp_path / io.LOCK_FILE).read_text().startswith(f"pid {os.getpid()} on host ")
    assert not (tmp_path / io.LOCK_FILE).exists()  # released


def test_a_lock_is_refused_while_held_and_free_after_release(tmp_path):
    lock = io.DirLock(tmp_path, "dataset directory").acquire()
    with pytest.raises(ElectraError, match=r"dataset directory .* is in use by another process \(pid \d+ on host"):
        io.DirLock(tmp_path, "dataset directory").acquire()
    lock.release()
    io.DirLock(tmp_path).acquire().release()


def test_a_failed_start_leaves_no_run_directory_behind(data_dir, tmp_path, capsys):  # noqa: F811
    run = tmp_path / "new"
    assert main(["pretrain", *TINY, "--data", str(tmp_path / "missing"), "--out", str(run)]) == 2
    assert not run.exists()


def test_fault_point_counts_down_in_the_environment(monkeypatch):
    monkeypatch.setenv(io.FAULT_ENV, "somewhere@3")
    io.fault_point("elsewhere")
    io.fault_point("somewhere")
    io.fault_point("somewhere")
    assert os.environ[io.FAULT_ENV] == "somewhere@1"  # the next one would kill


def _short_run(data: Path, run: Path, *extra: str) -> int:
    return main(
        [
            "pretrain",
            *TINY,
            "--data",
            str(data),
            "--out",
            str(run),
            "--max-steps",
            "6",
            "--eval-every",
            "0",
            "--probe",
            "none",
            *extra,
        ]
    )


def test_a_damaged_latest_falls_back_to_the_newest_intact_kept_checkpoint(data_dir, tmp_path, capsys):  # noqa: F811
    full, run = tmp_path / "full", tmp_path / "run"
    assert _short_run(data_dir, full) == 0 and _short_run(data_dir, run) == 0
    latest = run / "checkpoints" / "latest"
    # back to step 4 as a killed run would be, then damage `latest`: its weights cut short
    (run / "config.json").write_text((run / "config.json").read_text().replace('"finished": true', '"finished": false'))
    for name in ("model.safetensors", "optimizer.pt"):
        data = (latest / name).read_bytes()
        (latest / name).unlink()  # (a hard link of step_6's: damage this copy only)
        (latest / name).write_bytes(data[: len(data) // 2])
    shutil.rmtree(run / "checkpoints" / "step_6")  # (the newest kept one is gone too: step_3 is next)
    capsys.readouterr()
    assert main(["pretrain", "--out", str(run), "--resume", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "latest/model.safetensors is unreadable" in err
    assert "resuming from step_3, the newest intact checkpoint" in err
    a = load_file(full / "checkpoints" / "latest" / "model.safetensors")
    b = load_file(latest / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def test_no_intact_checkpoint_is_one_clear_error(data_dir, tmp_path, capsys):  # noqa: F811
    run = tmp_path / "run"
    assert _short_run(data_dir, run, "--save-every", "100") == 0
    for ck in (run / "checkpoints").iterdir():
        if ck.is_dir():
            (ck / "optimizer.pt").unlink(missing_ok=True)
    (run / "config.json").write_text((run / "config.json").read_text().replace('"finished": true', '"finished": false'))
    capsys.readouterr()
    assert main(["pretrain", "--out", str(run), "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "optimizer.pt is missing, and no kept checkpoint is intact; start over with --force" in err
    assert "Traceback" not in err


def test_a_truncated_optimizer_state_is_a_clear_error_not_a_traceback(data_dir, tmp_path):  # noqa: F811
    from electra import checkpoint as ckpt

    run = tmp_path / "run"
    assert _short_run(data_dir, run) == 0
    latest = run / "checkpoints" / "latest"
    data = (latest / "optimizer.pt").read_bytes()
    (latest / "optimizer.pt").unlink()
    (latest / "optimizer.pt").write_bytes(data[:100])
    assert "optimizer.pt is truncated or unreadable" in ckpt.problem(latest)
    model, _, _ = ckpt.load_run(run, "step_3")
    with pytest.raises(ElectraError, match="could not read .*optimizer.pt"):
        ckpt.load_checkpoint(latest, model, torch.optim.SGD(model.parameters(), lr=0.1))


def test_checkpoint_names_cannot_leave_the_run(data_dir, tmp_path):  # noqa: F811
    from electra import checkpoint as ckpt

    run = tmp_path / "run"
    assert _short_run(data_dir, run) == 0
    (run / "checkpoints" / "index.json").write_text(json.dumps({"25%": "../../elsewhere"}))
    for which in ("25%", "../checkpoints/latest", ".old-latest"):
        with pytest.raises(ElectraError, match="is not a checkpoint directory of the run"):
            ckpt.resolve_checkpoint(run, which)


@pytest.fixture
def hub_down(monkeypatch):
    """The hub cannot be reached, and offline mode is not set."""
    from electra import hub

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(hub, "offline", lambda: False)
    monkeypatch.setattr(hub, "reachable", lambda timeout=3.0: False)


def test_hub_names_fail_at_once_with_one_line_when_the_hub_is_unreachable(hub_down, tmp_path, capsys):
    cases = [
        ["detect", "--model", "google/electra-small-discriminator", "some text"],
        [
            "prepare",
            "--corpus",
            "builtin",
            "--tokenizer",
            "google/electra-small-discriminator",
            "--out",
            str(tmp_path / "data"),
        ],
        ["finetune", "--model", "random:tiny", "--tasks", "rte", "--out", str(tmp_path / "glue")],
        [
            "prepare",
            "--corpus",
            "hf:openwebtext",
            "--vocab",
            str(tmp_path / "missing-vocab"),
            "--out",
            str(tmp_path / "owt"),
        ],
    ]
    (tmp_path / "missing-vocab").mkdir()
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a"]
    (tmp_path / "missing-vocab" / "vocab.txt").write_text("\n".join(tokens))
    for argv in cases:
        assert main(argv) == 2, argv
        err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]  # (not progress bars)
        assert len(err) == 1 and "the hub (huggingface.co) cannot be reached" in err[0], (argv, err)
        assert "HF_HUB_OFFLINE=1" in err[0]
    assert not (tmp_path / "data").exists() and not (tmp_path / "glue").exists() and not (tmp_path / "owt").exists()


def test_a_local_path_that_is_not_a_dataset_or_model_is_never_sent_to_the_hub(hub_down, tmp_path, capsys):
    (tmp_path / "half").mkdir()
    assert main(["pretrain", "--preset", "tiny", "--data", str(tmp_path / "half"), "--out", str(tmp_path / "r")]) == 2
    assert "is not a prepared dataset" in capsys.readouterr().err
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{not json")
    assert main(["detect", "--model", str(tmp_path / "model"), "text"]) == 2
    assert "config.json is not a readable JSON model config" in capsys.readouterr().err


def test_a_resume_with_another_cpu_thread_count_says_so(data_dir, tmp_path, capsys, monkeypatch):  # noqa: F811
    run = tmp_path / "run"
    assert _short_run(data_dir, run, "--save-every", "2") == 0
    config = json.loads((run / "config.json").read_text())
    assert config["environment"]["cpu_threads"] == torch.get_num_threads()
    config["environment"]["cpu_threads"] += 3
    config["finished"] = False
    (run / "config.json").write_text(json.dumps(config))
    shutil.rmtree(run / "checkpoints" / "latest")
    shutil.copytree(run / "checkpoints" / "step_3", run / "checkpoints" / "latest")
    capsys.readouterr()
    assert main(["pretrain", "--out", str(run), "--resume", "--no-progress"]) == 0
    assert f"trained with {torch.get_num_threads() + 3} CPU threads and resumes with" in capsys.readouterr().out


def test_one_writer_per_finetuning_sweep_and_no_leftovers(tmp_path, capsys):
    from glue_fixtures import write_glue, write_vocab

    glue, vocab = write_glue(tmp_path / "glue"), write_vocab(tmp_path / "vocab.txt")
    sweep = tmp_path / "sweep"
    base = [
        "finetune",
        "--model",
        "random:tiny",
        "--tokenizer",
        str(vocab),
        "--glue-dir",
        str(glue),
        "--tasks",
        "rte",
        "--runs",
        "1",
        "--epochs",
        "1",
        "--out",
        str(sweep),
        "--quiet",
        "--max-length",
        "32",
    ]
    with io.locked(sweep, "finetuning sweep"):
        assert main(base) == 2
        assert "finetuning sweep" in capsys.readouterr().err
    orphan = sweep / "rte" / "run_0" / ".predictions_dev.npz.x1y2.tmp"  # as a killed sweep leaves it
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"half")
    assert main(base) == 0
    assert not orphan.exists() and (sweep / "rte" / "run_0" / "metrics.json").is_file()
    empty = tmp_path / "empty"
    (tmp_path / "noglue").mkdir()
    assert main([*base[:5], "--glue-dir", str(tmp_path / "noglue"), "--tasks", "rte", "--out", str(empty)]) == 2
    assert "no task could be finetuned" in capsys.readouterr().err and not empty.exists()


def test_one_writer_per_dataset_directory(tmp_path, capsys):
    from glue_fixtures import write_vocab

    vocab = write_vocab(tmp_path / "vocab.txt")
    (tmp_path / "corpus.txt").write_text("the cat sat on the mat .\nthe dog ran .\n\nthe bird sat .\n")
    argv = [
        "prepare",
        "--corpus",
        str(tmp_path / "corpus.txt"),
        "--vocab",
        str(vocab),
        "--max-length",
        "16",
        "--out",
        str(tmp_path / "data"),
        "--quiet",
    ]
    with io.locked(tmp_path / "data", "dataset directory"):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "dataset directory" in err and "is in use by another process" in err
    assert main(argv) == 0
    assert (tmp_path / "data" / "meta.json").is_file() and not (tmp_path / "data" / ".lock").exists()


def test_every_command_answers_a_broken_input_or_environment_with_one_line(tmp_path, capsys):
    """Missing inputs, unwritable outputs (under /proc, which not even root can write), malformed files, bad
    config values: exit 2, one line naming the file or field, no traceback, nothing written."""
    from glue_fixtures import write_glue, write_vocab

    vocab = write_vocab(tmp_path / "vocab.txt")
    glue = write_glue(tmp_path / "glue")
    missing = str(tmp_path / "missing")
    (tmp_path / "corpus.txt").write_text("the cat sat .\nthe dog ran .\n")
    sweep = tmp_path / "sweep"  # a sweep whose metrics.json is cut short
    (sweep / "rte" / "run_0").mkdir(parents=True)
    (sweep / "rte" / "run_0" / "metrics.json").write_text('{"task": "rte", "metr')
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("[1, 2")
    bad_glue = tmp_path / "badglue"  # RTE with non-UTF-8 bytes, SST-2 with a header-only dev file
    (bad_glue / "RTE").mkdir(parents=True)
    (bad_glue / "RTE" / "train.tsv").write_bytes(b"index\tsentence1\tsentence2\tlabel\n0\tcaf\xe9\tx\tentailment\n")
    (bad_glue / "RTE" / "dev.tsv").write_bytes(b"index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n")
    (tmp_path / "plain.txt").write_text("the\ncat\nsat\n")
    (bad_glue / "SST-2").mkdir()
    (bad_glue / "SST-2" / "train.tsv").write_text("sentence\tlabel\na good film\t1\na bad film\t0\n")
    (bad_glue / "SST-2" / "dev.tsv").write_text("sentence\tlabel\n")
    cases = {
        "missing corpus": ["prepare", "--corpus", missing, "--vocab", str(vocab), "--out", str(tmp_path / "o")],
        "missing vocab corpus": ["vocab", "--corpus", missing, "--out", str(tmp_path / "o")],
        "missing data": ["pretrain", "--preset", "tiny", "--data", missing, "--out", str(tmp_path / "o")],
        "missing run": ["export", missing, "--out", str(tmp_path / "o")],
        "missing model": ["finetune", "--model", missing, "--glue-dir", str(glue), "--out", str(tmp_path / "o")],
        "missing sweep": ["submit", missing, "--out", str(tmp_path / "o.zip")],
        "missing report input": ["report", missing, "--out", str(tmp_path / "o")],
        "missing probe model": ["probe", missing],
        "missing diagnose model": ["diagnose", missing],
        "missing detect model": ["detect", "--model", missing, "text"],
        "missing fill model": ["fill", "--model", missing, "a [MASK]"],
        "out of range": ["bench", "--preset", "tiny", "--hidden-dropout-prob", "2"],
        "negative lr": ["pretrain", "--preset", "tiny", "--learning-rate", "-1", "--data", missing, "--out", "x"],
        "unwritable prepare": [
            "prepare",
            "--corpus",
            str(tmp_path / "corpus.txt"),
            "--vocab",
            str(vocab),
            "--out",
            "/proc/electra-test/data",
        ],
        "unwritable vocab": ["vocab", "--corpus", str(tmp_path / "corpus.txt"), "--out", "/proc/electra-test/v"],
        "unwritable report": ["report", str(sweep), "--out", "/proc/electra-test/r"],
        "malformed metrics (report)": ["report", str(sweep), "--out", str(tmp_path / "r")],
        "malformed metrics (submit)": ["submit", str(sweep), "--out", str(tmp_path / "s.zip")],
        "malformed model config": ["detect", "--model", str(tmp_path / "model"), "text"],
        "non-UTF-8 GLUE file": [
            "finetune",
            "--model",
            "random:tiny",
            "--tokenizer",
            str(vocab),
            "--glue-dir",
            str(bad_glue),
            "--tasks",
            "rte",
            "--out",
            str(tmp_path / "g"),
        ],
        "vocab without special tokens": [
            "prepare",
            "--corpus",
            str(tmp_path / "corpus.txt"),
            "--vocab",
            str(tmp_path / "plain.txt"),
            "--out",
            str(tmp_path / "o"),
        ],
        "header-only GLUE file": [
            "finetune",
            "--model",
            "random:tiny",
            "--tokenizer",
            str(vocab),
            "--glue-dir",
            str(bad_glue),
            "--tasks",
            "sst2",
            "--out",
            str(tmp_path / "g"),
        ],
    }
    for what, argv in cases.items():
        assert main(argv) == 2, what
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("electra")]
        assert len(lines) == 1 and ": error: " in lines[0], (what, err)
        assert "Traceback" not in err, what
    assert not (tmp_path / "o").exists() and not (tmp_path / "g").exists()


def test_an_unreadable_index_is_reported_before_training_resumes(data_dir, tmp_path, capsys):  # noqa: F811
    run = tmp_path / "run"
    assert _short_run(data_dir, run) == 0
    (run / "config.json").write_text((run / "config.json").read_text().replace('"finished": true', '"finished": false'))
    (run / "checkpoints" / "index.json").write_text('{"25%": "step_')
    capsys.readouterr()
    assert main(["pretrain", "--out", str(run), "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint index" in err and "is not valid JSON" in err


def _limited(limit_bytes: int):
    """For subprocess.run(preexec_fn=...): files may not grow past `limit_bytes`, and a write that would makes the
    write fail (EFBIG, "File too large") instead of killing the process -- a disk that fills up under the run."""
    import resource

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return apply


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_disk_that_fills_up_midway_is_one_line_and_leaves_existing_outputs_intact(data_dir, tmp_path, capsys):  # noqa: F811
    run = tmp_path / "run"
    assert _short_run(data_dir, run) == 0
    assert main(["export", str(run), "--out", str(tmp_path / "hf")]) == 0
    capsys.readouterr()
    before = {"run": _tree(run), "hf": _tree(tmp_path / "hf"), "data": _tree(data_dir)}
    env = subprocess_env()
    electra = [sys.executable, "-m", "electra"]
    commands = {
        # a fresh export over the old one: the weights no longer fit
        "hf": [*electra, "export", str(run), "--out", str(tmp_path / "hf"), "--force"],
        # a second run whose first checkpoint does not fit (the run directory is new: nothing to keep)
        "run": [*electra, "pretrain", *TINY, "--data", str(data_dir), "--out", str(tmp_path / "run2")]
        + ["--max-steps", "3", "--eval-every", "0", "--probe", "none"],
        # the dataset rebuilt over itself
        "data": [*electra, "prepare", "--corpus", str(data_dir.parent / "corpus.txt")]
        + ["--vocab", str(data_dir.parent / "vocab.txt")]
        + ["--max-length", "32", "--out", str(tmp_path / "data2"), "--quiet"],
    }
    for name, argv in commands.items():
        limit = 4_000 if name == "data" else 16_000  # the dataset's token file is 11 kB, a checkpoint's weights more
        done = subprocess.run(argv, env=env, capture_output=True, text=True, preexec_fn=_limited(limit))
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, (name, done.stderr[-2000:])
        assert "Traceback" not in done.stderr and lines[-1].startswith(f"electra {argv[3]}: error: {tmp_path}")
        assert "File too large" in lines[-1] or "is the disk full?" in lines[-1]  # numpy's short write has no errno
    assert _tree(run) == before["run"] and _tree(tmp_path / "hf") == before["hf"] and _tree(data_dir) == before["data"]
    assert not list(tmp_path.glob("**/*.tmp")) and not list(tmp_path.glob(".*"))  # no temporary leftovers


def _rewind(run: Path, step: int) -> None:
    """The run as a kill after step `step` leaves it: `latest` back at the kept `step_<step>`, not finished."""
    config = json.loads((run / "config.json").read_text())
    config["finished"] = False
    (run / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    shutil.rmtree(run / "checkpoints" / "latest")
    shutil.copytree(run / "checkpoints" / f"step_{step}", run / "checkpoints" / "latest")


def _same_weights(a: Path, b: Path) -> bool:
    x, y = (
        load_file(a / "checkpoints" / "latest" / "model.safetensors"),
        load_file(b / "checkpoints" / "latest" / "model.safetensors"),
    )
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def test_the_same_command_with_resume_continues_a_run_whose_vocabulary_came_from_its_data(data_dir, tmp_path, capsys):  # noqa: F811
    """(the preset's default vocabulary size was compared with the one the run took from its data, and refused)"""
    shape = [a for a in TINY if a not in ("--vocab-size", str(len(TOKENS)))]
    command = ["pretrain", *shape, "--data", str(data_dir), "--max-steps", "6", "--eval-every", "0", "--probe", "none"]
    full, run = tmp_path / "full", tmp_path / "run"
    assert main([*command, "--out", str(full)]) == 0 and main([*command, "--out", str(run)]) == 0
    _rewind(run, 3)
    capsys.readouterr()
    assert main([*command, "--out", str(run), "--resume"]) == 0, capsys.readouterr().err
    assert "at step 3" in capsys.readouterr().out and _same_weights(run, full)
    _rewind(run, 3)  # the preset and the run's config alone, without --data (the run's own)
    assert main(["pretrain", "--out", str(run), "--resume", *shape, "--max-steps", "6"]) == 0, capsys.readouterr().err
    assert "at step 3" in capsys.readouterr().out and _same_weights(run, full)
    # a command that describes another run is still refused
    assert main([*command, "--out", str(run), "--resume", "--vocab-size", str(len(TOKENS) + 1)]) == 2
    assert f"model.vocab_size ({len(TOKENS)} in the run, {len(TOKENS) + 1} now)" in capsys.readouterr().err


def test_a_resume_refuses_a_run_config_edited_since_its_checkpoint_with_one_line_naming_the_fields(
    data_dir,  # noqa: F811
    tmp_path,
    capsys,
):
    """(an edited learning_rate or max_steps applied silently from the middle of the run on; a wrong type was a
    traceback)"""
    run = tmp_path / "run"
    assert _short_run(data_dir, run, "--save-every", "2") == 0
    finished = load_file(run / "checkpoints" / "latest" / "model.safetensors")
    _rewind(run, 3)
    original = json.loads((run / "config.json").read_text())
    edits = {
        "learning_rate (0.0005 in the checkpoint, 0.01 in config.json); max_steps (6 in the checkpoint, 8 in ": {
            "config": {"learning_rate": 0.01, "max_steps": 8}
        },
        "config.json: learning_rate must be a number, got 'fast'": {"config": {"learning_rate": "fast"}},
        "config.json: max_steps must be an integer, got 6.5": {"config": {"max_steps": 6.5}},
        "config.json: hidden_size must be an integer, got '32'": {"config": {"model": {"hidden_size": "32"}}},
        "config.json: run.log_every must be an integer, got 'ten'": {"run": {"log_every": "ten"}},
    }
    for expected, edit in edits.items():
        config = json.loads(json.dumps(original))
        for section, values in edit.items():
            target = config[section]
            for key, value in values.items():
                if isinstance(value, dict):
                    target[key].update(value)
                else:
                    target[key] = value
        (run / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        before = _tree(run)
        capsys.readouterr()
        assert main(["pretrain", "--out", str(run), "--resume", "--no-progress"]) == 2, expected
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("electra pretrain: error: "), (expected, err)
        assert expected in lines[0], (expected, lines[0])
        assert _tree(run) == before, expected  # nothing rewritten, the edit included
    (run / "config.json").write_text(json.dumps(original, indent=2) + "\n")
    assert main(["pretrain", "--out", str(run), "--resume", "--no-progress"]) == 0
    resumed = load_file(run / "checkpoints" / "latest" / "model.safetensors")
    assert resumed.keys() == finished.keys() and all(torch.equal(resumed[k], finished[k]) for k in finished)


@pytest.mark.parametrize("where", ["optimizer", "weights"])
def test_a_full_disk_while_pretraining_is_one_line_naming_the_run_and_the_space_a_checkpoint_needs(
    data_dir,  # noqa: F811
    tmp_path,
    capsys,
    monkeypatch,
    where,
):
    """The disk fills up at the 3rd checkpoint: torch.save(optimizer.pt) fails as torch does on a full disk (a short
    write it reports as "unexpected pos"), or safetensors as the OSError it is. (It was a 34-line traceback.)"""
    import errno

    from electra import checkpoint as ckpt

    full, run = tmp_path / "full", tmp_path / "run"
    assert _short_run(data_dir, full, "--save-every", "2") == 0
    calls = {"n": 0}
    save, save_model = ckpt.torch.save, ckpt.save_model

    def torch_save(obj, f, *args, **kwargs):  # noqa: ANN001, ANN202
        calls["n"] += Path(f).name == "optimizer.pt"
        if calls["n"] == 3:
            Path(f).write_bytes(b"PK\x03\x04 cut short")
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
        return save(obj, f, *args, **kwargs)

    def safetensors_save(model, filename, *args, **kwargs):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return save_model(model, filename, *args, **kwargs)

    if where == "optimizer":
        monkeypatch.setattr(ckpt.torch, "save", torch_save)
    else:
        monkeypatch.setattr(ckpt, "save_model", safetensors_save)
    capsys.readouterr()
    assert _short_run(data_dir, run, "--save-every", "2") == 2  # checkpoints at steps 1 and 2, the one at 3 fails
    monkeypatch.undo()
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"electra pretrain: error: {run}: no room for the checkpoint of step 3 ("), lines[0]
    size = sum(p.stat().st_size for p in (full / "checkpoints" / "step_3").glob("*.*"))  # weights, optimizer, ...
    needed = lines[0].split("a checkpoint needs about ")[1].split(" kB")[0]
    assert 0.5 * size <= 1000 * float(needed) <= 1.5 * size, (size, lines[0])
    assert "the checkpoints written so far are intact; make room, then continue it with --resume" in lines[0]
    root = run / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["index.json", "latest", "step_1", "step_2"]  # nothing stray
    assert not (run / ".lock").exists()
    assert _short_run(data_dir, run, "--save-every", "2", "--resume") == 0
    assert _same_weights(run, full)


# ---------------------------------------------------------------------------------------------- round two


def _one_error_line(argv: list[str], capsys) -> str:
    """Run `argv`: exit 2 and exactly one line on stderr, returned; no traceback."""
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2, (argv, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (argv, err)
    return err.strip()


GARBAGE_METRICS = {
    "binary": b"\x89PNG\r\n\x1a\n\x00\xff\xfe",
    "a list": b"[1, 2]",
    "metrics not an object": b'{"task": "rte", "metrics": 5}',
    "a metric not a number": b'{"task": "rte", "metrics": {"acc": "high"}}',
    "a seed not an integer": b'{"task": "rte", "seed": [0], "metrics": {"acc": 50.0}}',
    "no score": b'{"task": "rte", "metrics": {"f1": 50.0}}',
    "majority not numbers": b'{"task": "rte", "metrics": {"acc": 50.0}, "majority_metrics": "acc"}',
}
GARBAGE_LOGS = {
    "binary": b"\x89PNG\r\n\x1a\n\x00\xff\xfe\n",
    "a list": b'[1, 2]\n{"step": 1, "loss": 2.0}\n',
    "a step not an integer": b'{"step": "one", "loss": 2.0}\n{"step": 2, "loss": 1.0}\n',
    "a loss not a number": b'{"step": 1, "loss": "low"}\n{"step": 2, "loss": 1.0}\n',
    "a nested value": b'{"step": 1, "loss": {"a": 1}}\n',
}


def test_report_and_submit_answer_garbage_metrics_files_with_one_line(tmp_path, capsys):
    """Binary or wrong-shaped metrics.json (a finetuning run) and metrics.jsonl (a pretraining run): one line that
    names the file, not a UnicodeDecodeError, TypeError or AttributeError."""
    for what, content in GARBAGE_METRICS.items():
        sweep = tmp_path / "sweep" / what.replace(" ", "_")
        (sweep / "rte" / "run_0").mkdir(parents=True)
        (sweep / "rte" / "run_0" / "metrics.json").write_bytes(content)
        for argv in (["report", str(sweep), "--out", str(tmp_path / "r")], ["submit", str(sweep), "--out", "s.zip"]):
            line = _one_error_line(argv, capsys)
            assert f"{sweep}/rte/run_0/metrics.json" in line, (what, line)
    for what, content in GARBAGE_LOGS.items():
        run = tmp_path / "runs" / what.replace(" ", "_")
        run.mkdir(parents=True)
        (run / "metrics.jsonl").write_bytes(content)
        line = _one_error_line(["report", str(run), "--out", str(tmp_path / "r")], capsys)
        assert f"{run}/metrics.jsonl" in line, (what, line)
    run = tmp_path / "runs" / "config"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n')
    for content in (b"\xff\xfe", b'{"config": [1], "run": {}}', b'{"config": {"max_steps": "many"}}'):
        (run / "config.json").write_bytes(content)
        assert f"{run}/config.json" in _one_error_line(["report", str(run), "--out", str(tmp_path / "r")], capsys)
    sweep = tmp_path / "results-only"
    sweep.mkdir()
    for content in (b'{"tasks": {"rte": 5}}', b"[]", b'{"tasks": {"rte": {"metrics": {"acc": 1}, "score": "acc"}}}'):
        (sweep / "results.json").write_bytes(content)
        assert f"{sweep}/results.json" in _one_error_line(["report", str(sweep), "--out", str(tmp_path / "r")], capsys)
    assert not (tmp_path / "r").exists() and not (tmp_path / "s.zip").exists()


def test_submit_answers_wrong_shaped_predictions_with_one_line(tmp_path, capsys):
    from electra.finetune.results import save_predictions

    run = tmp_path / "sweep" / "rte" / "run_0"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"task": "rte", "seed": 0, "metrics": {"acc": 60.0}}))
    save_predictions(run / "predictions_test.npz", ["0", "1"], torch.zeros(2, 3).numpy(), None)  # RTE: 2 outputs
    line = _one_error_line(["submit", str(tmp_path / "sweep"), "--out", str(tmp_path / "s.zip")], capsys)
    assert "predictions_test.npz: expected an 'index' and 'outputs' of 2 number(s) per row" in line
    assert not (tmp_path / "s.zip").exists()


def test_a_conll_line_with_an_extra_column_is_refused(tmp_path):
    from electra.finetune.tagging.data import read_conll

    path = tmp_path / "train.txt"
    path.write_text("EU B-ORG\nrejects O\n\nNew York B-LOC\ncalls O\n")  # a word with a space: "York" is no tag
    with pytest.raises(ElectraError, match=r"train.txt:4: 3 columns \('New York B-LOC'\), but line 1 has 2"):
        read_conll(path)
    path.write_text("EU NNP B-ORG\nrejects VBZ O\n\n-DOCSTART- -X- O\n\ncalls VBZ O\n")  # the same columns: read
    assert [s.tags for s in read_conll(path).sentences] == [["B-ORG", "O"], ["O"]]


def test_a_squad_dev_answer_outside_its_context_is_refused(tmp_path):
    from electra.finetune.qa.data import load_squad

    def dev(answers: list[dict]) -> Path:
        context = "Alice ran to the park."
        qas = [{"id": "q1", "question": "who ran?", "answers": answers}]
        path = tmp_path / "dev.json"
        path.write_text(json.dumps({"version": "1.1", "data": [{"paragraphs": [{"context": context, "qas": qas}]}]}))
        return path

    with pytest.raises(ElectraError, match=r"answer 'park' at answer_start 40 lies outside the context \(22 char"):
        load_squad(dev([{"text": "Alice", "answer_start": 0}, {"text": "park", "answer_start": 40}]), "1.1", "dev")
    with pytest.raises(ElectraError, match=r"answer 'Bob' is not in the context"):
        load_squad(dev([{"text": "Bob", "answer_start": 0}]), "1.1", "dev")
    # only the text of a dev answer is scored: one whose answer_start is off but whose text is there is kept
    (ex,) = load_squad(dev([{"text": "the park", "answer_start": 10}]), "1.1", "dev").examples
    assert ex.answers == ["the park"]


def test_a_resume_names_damaged_kept_checkpoints_and_restores_a_deleted_tokenizer_file(data_dir, tmp_path, capsys):  # noqa: F811
    run = tmp_path / "run"
    assert _short_run(data_dir, run) == 0  # kept: step_1, step_2, step_3, step_6
    root = run / "checkpoints"
    for name in ("step_2", "step_6"):  # (their files are hard links of `latest`'s: damage these copies only)
        data = (root / name / "model.safetensors").read_bytes()
        (root / name / "model.safetensors").unlink()
        (root / name / "model.safetensors").write_bytes(data[: len(data) // 2])
    shutil.rmtree(root / "latest")
    shutil.copytree(root / "step_3", root / "latest")  # killed after step 3
    (run / "config.json").write_text((run / "config.json").read_text().replace('"finished": true', '"finished": false'))
    (run / "tokenizer" / "tokenizer.json").unlink()
    capsys.readouterr()
    assert main(["pretrain", "--out", str(run), "--resume", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "step_2/model.safetensors is unreadable" in err and "the kept checkpoint step_2 stays damaged" in err
    assert "step_6/model.safetensors is unreadable" in err and "the resumed run writes step_6 again" in err
    from electra import checkpoint as ckpt

    assert ckpt.problem(root / "step_6") is None  # written again
    assert (run / "tokenizer" / "tokenizer.json").is_file()


def test_argparse_errors_are_one_line_without_the_usage_block(capsys):
    cases = {
        "a missing --out": (["finetune", "--model", "random:tiny"], "the following arguments are required: --out"),
        "a type error": (["pretrain", "--preset", "tiny", "--max-steps", "ten", "--out", "x"], "invalid int value"),
        "a bad choice": (["finetune", "--model", "m", "--out", "o", "--kind", "ner"], "invalid choice: 'ner'"),
        "a mistyped option": (["pretrain", "--hiden-size", "64", "--out", "x"], "did you mean --hidden-size?"),
    }
    for what, (argv, words) in cases.items():
        line = _one_error_line(argv, capsys)
        assert line.startswith("electra") and ": error: " in line and words in line, (what, line)


def test_command_line_messages_use_the_options_words(tmp_path, capsys):
    """The Python API's keywords on the command line become the options (`--qa-version 2.0`, `--save-model`), and
    an own-data run is not called a GLUE run."""
    from glue_fixtures import write_vocab

    vocab = write_vocab(tmp_path / "vocab.txt")
    context = "the cat sat on the mat ."
    qas = [{"id": "q1", "question": "who sat ?", "answers": [], "is_impossible": True}]
    squad = tmp_path / "train.json"
    squad.write_text(json.dumps({"version": "2.0", "data": [{"paragraphs": [{"context": context, "qas": qas}]}]}))
    argv = ["finetune", "--model", "random:tiny", "--tokenizer", str(vocab), "--kind", "qa", "--quiet"]
    line = _one_error_line([*argv, "--train", str(squad), "--dev", str(squad), "--out", str(tmp_path / "q")], capsys)
    assert "pass --qa-version 2.0" in line and "version=" not in line
    tagging = tmp_path / "tagging" / "run_0"
    tagging.mkdir(parents=True)
    (tagging / "config.json").write_text(json.dumps({"task": "tagging", "finetune": {}, "labels": ["O"]}))
    (tagging / "metrics.json").write_text("{}")
    line = _one_error_line(["export", str(tagging), "--out", str(tmp_path / "e")], capsys)
    assert "finetune with --save-model" in line and "save_model" not in line
    own = tmp_path / "own" / "run_0"
    own.mkdir(parents=True)
    record = {"kind": "classification", "labels": ["a", "b"], "text_column": "text", "pair_column": None}
    (own / "config.json").write_text(json.dumps({"task": "mine", "finetune": {}, "own_task": record}))
    (own / "metrics.json").write_text("{}")
    line = _one_error_line(["export", str(own), "--out", str(tmp_path / "e")], capsys)
    assert "GLUE run" not in line and "finetuning run (your own data)" in line
    assert not (tmp_path / "e").exists()


def test_messages_name_the_users_path_not_a_temporary_one(data_dir, tmp_path):  # noqa: F811
    # a dataset whose files do not fit: the dataset directory, not `.partial-*` inside it
    argv = [sys.executable, "-m", "electra", "prepare", "--corpus", str(data_dir.parent / "corpus.txt")]
    argv += ["--vocab", str(data_dir.parent / "vocab.txt"), "--max-length", "32", "--out", str(tmp_path / "data")]
    done = subprocess.run(
        [*argv, "--quiet"], env=subprocess_env(), capture_output=True, text=True, preexec_fn=_limited(4000)
    )
    line = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 2 and line.startswith(f"electra prepare: error: {tmp_path / 'data'}: "), line
    assert ".partial-" not in line and ".tmp" not in line
    # a file written over a directory: the directory, not the temporary file beside it
    (tmp_path / "report.md").mkdir()
    with pytest.raises(IsADirectoryError) as err:
        io.write_text(tmp_path / "report.md", "x")
    assert err.value.filename == str(tmp_path / "report.md")

    # a directory built beside its target: a failure inside names the target
    def write(tmp: Path) -> None:
        raise ElectraError(f"cannot verify {tmp / 'model'}")

    with pytest.raises(ElectraError, match=f"^cannot verify {tmp_path / 'export' / 'model'}$"):
        io.write_dir(tmp_path / "export", write)


def test_a_table_of_one_glue_task_claims_no_average(tmp_path):
    from electra.finetune.results import glue_label, markdown_table

    assert glue_label(["rte"]) == "RTE" and glue_label([]) == "GLUE-0" and glue_label(["rte", "wnli"]) == "RTE"
    stats = {"n": 1, "median": 60.0, "mean": 60.0, "std": 0.0, "max": 60.0, "min": 60.0}
    task = {"display": "RTE", "glue": True, "score": "acc", "n_runs": 1, "metrics": {"acc": stats}}
    task.update(max_train_examples=[None], n_train=[100])
    results = {"tasks": {"rte": task}, "average": {"label": "RTE", "tasks": ["rte"], "median": 60.0, "mean": 60.0}}
    table = markdown_table(results, "m")
    assert "Avg." not in table and "GLUE-1" not in table and "(no " not in table and "covers only" not in table
    assert "| m median | — | — | — | — | — | — | — | 60.00 |\n" in table
