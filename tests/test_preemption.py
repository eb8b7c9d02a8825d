"""SIGTERM (preemption: SLURM, Kubernetes, cloud spot instances) and SIGINT (Ctrl-C) during pretraining: the step
finishes, a checkpoint is saved at that step boundary, one line says so, the exit status is 143 / 130, and the same
command with `--resume` brings the run directory to exactly what an uninterrupted run writes.

The signals are real ones, sent by the process to itself at a chosen moment with the `ELECTRA_FAULT` hook
(`electra.io.fault_point`, `moment@N:SIGTERM`), or from outside while the run trains.
"""

import json
import signal
import subprocess
import sys
import time

import pytest
from test_pretrain import TINY, data_dir, metrics, subprocess_env  # noqa: F401  (data_dir: the session fixture)
from test_reliability import _run, _snapshot

# (signal, the moment it arrives, the step whose boundary then saves) -- with 12 steps, logs every step, evaluations
# every 4, saves every 5 and kept checkpoints at 1, 2, 3, 6, 12 (see test_reliability.KILLS)
SIGNALS = [
    # the 8th log line: step 7's; step 8 (an evaluation, no checkpoint due) then saves and stops
    (signal.SIGTERM, "metrics.written@8", 8),
    # while the weights of the 3rd checkpoint (step_3) are written: it is finished intact, step 4 saves and stops
    (signal.SIGINT, "checkpoint.model_written@3", 4),
]


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "moment", "saved_at"), SIGNALS, ids=["SIGTERM", "SIGINT"])
def test_a_signal_saves_at_the_next_step_boundary_and_resume_gives_the_uninterrupted_run(
    data_dir,  # noqa: F811
    tmp_path,
    signum,
    moment,
    saved_at,
):
    full, run = tmp_path / "full", tmp_path / "run"
    assert _run(data_dir, full).returncode == 0
    stopped = _run(data_dir, run, fault=f"{moment}:{signal.Signals(signum).name}")
    assert stopped.returncode == 128 + signum, stopped.stderr[-2000:]  # 143 / 130
    lines = [line for line in stopped.stderr.splitlines() if line.strip()]
    assert "Traceback" not in stopped.stderr and len(lines) == 1, stopped.stderr[-2000:]
    assert lines[0] == (
        f"electra pretrain: stopped by {signal.Signals(signum).name} after step {saved_at} of 12; checkpoint saved "
        f"in {run / 'checkpoints' / 'latest'}: the same command with --resume continues the run"
    )
    state = json.loads((run / "checkpoints" / "latest" / "trainer_state.json").read_text())
    assert state["step"] == saved_at and not state["finished"]
    assert not (run / ".lock").exists() and not json.loads((run / "config.json").read_text()).get("finished")
    assert max(r["step"] for r in metrics(run)) == saved_at  # nothing logged past the checkpoint
    resumed = _run(data_dir, run, "--resume")  # the same command, plus --resume
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming from {run / 'checkpoints' / 'latest'} at step {saved_at}" in resumed.stdout
    expected, got = _snapshot(full), _snapshot(run)
    for key in expected:
        assert got[key] == expected[key], key  # weights of every checkpoint, index, metrics, config: identical


@pytest.mark.slow
def test_sigterm_from_outside_stops_a_training_run_within_seconds_with_a_checkpoint(data_dir, tmp_path):  # noqa: F811
    run = tmp_path / "run"
    argv = [*TINY, "--data", str(data_dir), "--max-steps", "100000", "--log-every", "1", "--save-every", "100000"]
    argv += ["--eval-every", "0", "--probe", "none", "--out", str(run)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "electra", "pretrain", *argv],
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 180
    log = run / "metrics.jsonl"
    while time.time() < deadline and not (log.exists() and log.read_text().count("\n") >= 3):
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    sent = time.time()
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert time.time() - sent < 30  # a step and a checkpoint of a tiny model
    assert proc.returncode == 143, err[-2000:]
    step = json.loads((run / "checkpoints" / "latest" / "trainer_state.json").read_text())["step"]
    assert step >= 3 and max(r["step"] for r in metrics(run)) == step
    assert err.strip().splitlines()[-1].startswith(f"electra pretrain: stopped by SIGTERM after step {step} of ")
    assert "Traceback" not in err and not (run / ".lock").exists()


def test_fault_point_sends_a_named_signal_once(monkeypatch):
    from electra import io

    got = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: got.append(signum))
    try:
        monkeypatch.setenv(io.FAULT_ENV, "somewhere@2:SIGUSR1")
        io.fault_point("somewhere")
        assert got == [] and io.os.environ[io.FAULT_ENV] == "somewhere@1:SIGUSR1"
        io.fault_point("somewhere")
        io.fault_point("somewhere")
        assert got == [signal.SIGUSR1] and io.FAULT_ENV not in io.os.environ
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_signals_before_training_stop_at_once_and_the_handlers_are_restored():
    from electra.train.stopping import Stopped, StopSignals

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Stopped, match="stopped by SIGTERM before training started") as stopped, StopSignals():
        signal.raise_signal(signal.SIGTERM)
    assert stopped.value.status == 143 and signal.getsignal(signal.SIGTERM) is before
    with StopSignals() as stop:
        stop.arm()
        signal.raise_signal(signal.SIGINT)  # recorded for the next step boundary
        assert stop.signum == signal.SIGINT
        with pytest.raises(Stopped, match="second SIGINT") as again:
            signal.raise_signal(signal.SIGINT)  # a second one stops at once
        assert again.value.status == 130
