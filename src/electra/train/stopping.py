"""SIGTERM (preemption) and SIGINT (Ctrl-C) during pretraining: a checkpoint at the next step boundary, then
`Stopped` (exit 128 + the signal number); while setting up, or at a second signal, at once."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

import torch

from electra import dist
from electra.errors import Stopped

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


class StopSignals:
    """Handlers for SIGTERM and SIGINT for the duration of a `with` block (in the main thread only: elsewhere Python
    cannot install them, and the block runs with the handlers it found)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.armed = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def arm(self) -> None:
        """From now on a signal is recorded for the next step boundary instead of stopping at once."""
        self.armed = True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal_name(signum)
        if not self.armed:
            raise Stopped(f"stopped by {name} before training started; nothing was saved", signum)
        if self.signum is not None:
            raise Stopped(
                f"stopped by a second {name} before the step and its checkpoint were finished; the last complete "
                "checkpoint stays: the same command with --resume continues from it",
                signum,
            )
        self.signum = signum

    def requested(self, info: dist.DistInfo, check_all: bool) -> int | None:
        """The signal to stop for at this step boundary, or None; in a torchrun job the processes agree (the highest
        signal any got) at the `check_all` steps."""
        if not info.distributed:
            return self.signum
        if not check_all:
            return None
        flag = torch.tensor(self.signum or 0, device=info.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return int(flag.item()) or None
