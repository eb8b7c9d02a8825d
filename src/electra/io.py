"""Files that are never seen half-written (a temporary file or directory beside the target, renamed into place),
and one writer per output directory (`DirLock`)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from electra.errors import ElectraError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LOCK_FILE = ".lock"
FAULT_ENV = "ELECTRA_FAULT"


def fault_point(name: str) -> None:
    """A kill for the tests: SIGKILL this process here when ELECTRA_FAULT is `name`, or `name@N` for the N-th time
    here (counted in the variable); `name@N:SIGTERM` sends that signal instead, once. Otherwise a no-op."""
    spec = os.environ.get(FAULT_ENV)
    point, _, signame = (spec or "").partition(":")
    if not spec or point.partition("@")[0] != name:
        return
    n = int(point.partition("@")[2] or 1)
    if n > 1:
        os.environ[FAULT_ENV] = f"{name}@{n - 1}" + (f":{signame}" if signame else "")
        return
    if signame:
        del os.environ[FAULT_ENV]
    os.kill(os.getpid(), getattr(signal, signame) if signame else signal.SIGKILL)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def user_path(err: BaseException, tmp: str | os.PathLike, final: str | os.PathLike) -> None:
    """Make an error that names the temporary path `tmp` (or a file inside it) name `final` instead, in place."""
    tmp, final = str(tmp), str(final)
    if isinstance(err, OSError):
        for attr in ("filename", "filename2"):
            name = getattr(err, attr)
            if isinstance(name, str | os.PathLike) and os.fspath(name).startswith(tmp):
                rest = os.fspath(name)[len(tmp) :]
                setattr(err, attr, final + rest if rest[:1] in ("", os.sep) else final)
        if err.filename2 == err.filename:
            err.filename2 = None
    elif isinstance(err, ElectraError):
        err.args = tuple(a.replace(tmp, final) if isinstance(a, str) else a for a in err.args)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to a temporary file in `path`'s directory, flush it to disk, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        user_path(err, path.parent / f".{path.name}.", path)
        raise
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        user_path(err, tmp, path)
        raise


@contextlib.contextmanager
def library_writes(path: str | os.PathLike) -> Iterator[None]:
    """Failed writes of libraries that write files themselves (safetensors, `torch.save`, `save_pretrained`, numpy
    `tofile`) raised as the `OSError` they are, naming `path`: a full disk is one line like any other."""
    try:
        yield
    except OSError as err:
        if err.errno is None:  # numpy's short write: "N requested and M written"
            raise OSError(errno.EIO, f"writing failed, {err} bytes (is the disk full?)", str(path)) from err
        if err.filename is None:
            err.filename = str(path)
        raise
    except Exception as err:
        text = str(err)
        code = re.search(r"os error (\d+)", text)
        if code:
            raise OSError(int(code.group(1)), os.strerror(int(code.group(1))), str(path)) from err
        if "file write failed" in text or "failed writing file" in text or "unexpected pos" in text:
            # torch: a failed or short write (on a full disk, torch.save reports "unexpected pos N vs M")
            raise OSError(errno.EIO, "writing failed (is the disk full?)", str(path)) from err
        raise


def write_safetensors(path: str | os.PathLike, tensors: dict[str, Any]) -> None:
    """`safetensors` file of `tensors` (moved to the CPU, made contiguous), written beside `path` and renamed."""
    from safetensors.torch import save_file

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with library_writes(path):
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
        tmp.replace(path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        user_path(err, tmp, path)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 100) -> None:
    """`fig.savefig` to a temporary PNG beside `path`, then renamed over it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        user_path(err, tmp, path)
        raise


def install_dir(tmp: Path, final: Path) -> None:
    """Rename the finished directory `tmp` to `final`, replacing an existing one: final -> .old-*, tmp -> final,
    then delete the old one. A crash between the two renames leaves only `.old-*` (see `checkpoint.recover`)."""
    old = None
    if final.exists():
        old = final.with_name(f".old-{final.name}-{os.getpid()}-{time.time_ns()}")
        os.rename(final, old)
        fault_point("install.between_renames")
    os.rename(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def overlaps(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether `a` is `b`, inside it, or contains it."""
    a, b = Path(a).resolve(), Path(b).resolve()
    return a == b or a in b.parents or b in a.parents


def refuse_inputs_inside(out: str | os.PathLike, inputs: dict[str, Any], action: str = "--force") -> None:
    """Refuse when an existing input (`inputs`: option -> path(s) or None) is, holds or lies in `out`: `action`."""
    for option, values in inputs.items():
        for value in values if isinstance(values, (list, tuple)) else [values]:
            if value is None or not os.path.exists(value):
                continue
            if overlaps(value, out):
                raise ElectraError(
                    f"{option} {value} overlaps --out {out}, which {action} clears; "
                    "move the input out of it or choose another --out"
                )


def write_dir(
    out: str | os.PathLike,
    write: Callable[[Path], None],
    force: bool = False,
    source: str | os.PathLike | None = None,
    source_name: str = "the input",
) -> Path:
    """Call `write(tmp)` on a fresh temporary directory next to `out`, then rename it to `out` (an existing
    non-empty `out` only with `force`, replaced once the new content is complete; it may not overlap `source`)."""
    out = Path(out)
    if source is not None and overlaps(out, source):
        raise ElectraError(f"--out {out} would overlap {source_name} ({source}); choose a directory outside it")
    if out.exists() and not out.is_dir():
        raise ElectraError(f"--out {out} is a file; expected a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ElectraError(f"--out {out} already exists and is not empty; pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    mask = _umask()
    os.chmod(tmp, 0o777 & ~mask)  # mkdtemp creates 0700
    old = None
    try:
        with library_writes(out):
            write(tmp)
        for f in tmp.rglob("*"):  # some writers create 0600 files; an output is meant to be shared
            if f.is_file():
                os.chmod(f, 0o666 & ~mask)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}-{time.time_ns()}")
            os.rename(out, old)
        os.rename(tmp, out)
    except BaseException as err:
        user_path(err, tmp, out)
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not out.exists():
            os.rename(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` exists on this host (one we may not signal counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, ValueError):
        return False
    return True


class DirLock:
    """One writer per directory: an exclusive `flock` on `<dir>/.lock`, which records the holder's pid and host (to
    name a live holder, or a stale file). The kernel releases it however the process ends; without `flock` (some
    network mounts) the pid check alone decides, for holders on this host."""

    def __init__(self, directory: str | os.PathLike, what: str = "run directory"):
        self.directory = Path(directory)
        self.what = what
        self._fd: int | None = None
        self._path = self.directory / LOCK_FILE
        self.stale: str | None = None  # the previous holder, when a lock file was left behind

    def acquire(self) -> DirLock:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / LOCK_FILE
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
            holder = os.read(fd, 4096).decode(errors="replace").strip()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise ElectraError(
                    f"{self.what} {self.directory} is in use by another process ({_describe(holder)}); "
                    f"wait for it to finish or stop it; if it is gone, delete {path}"
                ) from None
            except OSError:  # no flock here: fall back to the recorded pid, which only this host can check
                if _held_elsewhere(holder):
                    os.close(fd)
                    raise ElectraError(
                        f"{self.what} {self.directory} is in use ({_describe(holder)}); if that process is gone, "
                        f"delete {path}"
                    ) from None
            try:  # the holder before us may have removed the file between our open and our lock: then retry
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        if holder and holder != _me():
            self.stale = holder
        os.ftruncate(fd, 0)
        os.pwrite(fd, _me().encode(), 0)
        self._fd, self._path = fd, path
        return self

    def release(self) -> None:
        """Remove the lock file (while still holding the lock, so a waiter notices and retries) and unlock."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self._path)
        os.close(self._fd)  # closing the descriptor drops the flock
        self._fd = None

    def __enter__(self) -> DirLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _me() -> str:
    return f"pid {os.getpid()} on host {socket.gethostname()}"


def _describe(holder: str) -> str:
    return holder or "a process that has not yet written its pid"


def _held_elsewhere(holder: str) -> bool:
    parts = holder.split()
    if len(parts) != 5 or not parts[1].isdigit():
        return False
    pid, host = int(parts[1]), parts[4]
    return host != socket.gethostname() or (pid != os.getpid() and pid_alive(pid))


@contextlib.contextmanager
def claimed(
    directory: str | os.PathLike,
    what: str = "run directory",
    *,
    lock: bool = True,
    clean_up: bool = True,
    worth_keeping: Callable[[Path], bool] | None = None,
) -> Iterator[DirLock | None]:
    """`with claimed(out, "run directory"):` -- write `out` as its one writer, and if the block fails in a directory
    it created, remove it again unless `worth_keeping(out)` (default: it holds more than the lock file)."""
    directory = Path(directory)
    created = not directory.exists()
    held = DirLock(directory, what).acquire() if lock else None
    try:
        yield held
    except BaseException:
        keep = worth_keeping or (lambda d: any(p.name != LOCK_FILE for p in d.iterdir()))
        if clean_up and created and directory.is_dir() and not keep(directory):
            shutil.rmtree(directory, ignore_errors=True)
        raise
    finally:
        if held is not None:
            held.release()


def locked(directory: str | os.PathLike, what: str = "run directory") -> contextlib.AbstractContextManager:
    """`with locked(dir):` -- hold `dir`'s lock for the block (see `DirLock`)."""
    return claimed(directory, what, clean_up=False)
