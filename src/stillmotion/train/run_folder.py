"""A run folder is owned by one training process at a time, and a fresh run never clobbers an old one.

    with claim(out, resume=False, overwrite=False):   # refuses a folder that holds a run, or one in use
        ...                                           # train; the lock file says who holds the folder

- `run.lock` (JSON: pid, host, start, command) is created atomically (O_EXCL); a second writer is refused with a
  message naming the holder. A lock left by a process that is gone (same host, pid not running) is taken over.
- Starting afresh in a folder that holds a run (a checkpoint, log.csv, train_config.json) is refused unless
  `resume` (continue it) or `overwrite` (the old run is renamed to `<out>.old-<time>` beside it: never deleted).
- `trim_csv` cuts a log back to a checkpoint's step, so rows written after the last checkpoint by a killed run
  are not repeated when it resumes.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import socket
import sys
import time
from pathlib import Path

from stillmotion.atomic import write_atomic

LOCK = "run.lock"
RUN_FILES = ("checkpoint", "checkpoint.old", "log.csv", "train_config.json")  # any of these: the folder holds a run


def holds_run(out: Path) -> bool:
    """Whether `out` holds a run (or the image stage of one) that a fresh start would overwrite."""
    return any((out / name).exists() for name in RUN_FILES) or any((out / "image" / n).exists() for n in RUN_FILES)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def _holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # being written, or damaged: treated as held by someone unknown


def _stale(holder: dict) -> bool:
    """A lock whose process is known to be gone: same host, pid no longer running."""
    pid = holder.get("pid")
    return holder.get("host") == socket.gethostname() and isinstance(pid, int) and not _alive(pid)


def _refusal(out: Path, holder: dict) -> RuntimeError:
    who = (f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('start')}" if holder
           else "another process")
    return RuntimeError(f"run folder '{out}' is in use by {who} (lock file {out / LOCK}); wait for that run to "
                        f"end or stop it, or train into another --out. If no run is using the folder, delete "
                        f"the lock file")


def acquire(out: Path) -> Path:
    """Create `out/run.lock` for this process; raise if a live process holds it."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK
    record = {"pid": os.getpid(), "host": socket.gethostname(), "start": time.strftime("%Y-%m-%d %H:%M:%S"),
              "command": " ".join(sys.argv)}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(path)
            if not _stale(holder):
                raise _refusal(out, holder) from None
            print(f"{out}: taking over the lock of pid {holder['pid']}, which is no longer running",
                  file=sys.stderr)
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        return path
    raise _refusal(out, _holder(path))


def release(path: Path) -> None:
    """Remove the lock if it is still this process's."""
    if _holder(path).get("pid") == os.getpid():
        path.unlink(missing_ok=True)


def move_aside(out: Path) -> Path:
    """Rename the run folder `out` to `<out>.old-<time>` (a new name each time) and return that path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest = out.with_name(f"{out.name}.old-{stamp}")
    n = 1
    while dest.exists():
        dest, n = out.with_name(f"{out.name}.old-{stamp}-{n}"), n + 1
    out.rename(dest)
    return dest


@contextlib.contextmanager
def claim(out: str | Path, *, resume: bool, overwrite: bool):
    """Own the run folder `out` for the duration (see the module docstring); yields the lock file's path."""
    out = Path(out)
    if resume and overwrite:
        raise ValueError("--resume continues the run in the folder and --overwrite replaces it: give one of them")
    holder = _holder(out / LOCK) if (out / LOCK).exists() else None
    if holder is not None and not _stale(holder):
        raise _refusal(out, holder)
    if not resume and holds_run(out):
        if not overwrite:
            raise FileExistsError(f"'{out}' holds a run already; continue it with --resume, start over with "
                                  f"--overwrite (the old run is moved to {out.name}.old-<time>, not deleted), or "
                                  f"train into another --out")
        print(f"{out}: the previous run is moved to {move_aside(out)}", file=sys.stderr)
    lock = acquire(out)
    try:
        yield lock
    finally:
        release(lock)


def trim_csv(path: Path, step: int) -> int:
    """Drop the rows of a step-keyed CSV (first column `step`) after `step`; return how many were dropped.

    The file is rewritten atomically (atomic.py), so a crash leaves the old or the new one.
    """
    if not path.is_file():
        return 0
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    keep = [r for i, r in enumerate(rows) if i == 0 or not r or not r[0].isdigit() or int(r[0]) <= step]
    if len(keep) == len(rows):
        return 0
    text = io.StringIO(newline="")
    csv.writer(text).writerows(keep)
    write_atomic(path, text.getvalue())
    return len(rows) - len(keep)
