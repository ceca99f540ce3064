"""Files that appear whole or not at all: write a hidden temp file in the same folder, then rename it.

A rename within one folder is atomic on POSIX and Windows, so a reader (or a resumed run) sees either the old
file or the complete new one, never a half-written one. Temp names start with "." so folder scans skip them.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

TEMP_MARK = ".part"


def temp_name(path: Path) -> Path:
    """A fresh hidden name next to `path`: `.name.<pid>.<random>.part`."""
    return path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TEMP_MARK}"


def write_atomic(path: str | os.PathLike, content: str | bytes | Callable[[BinaryIO], None]) -> Path:
    """Write `content` (text, bytes, or a function that writes to a binary file) to `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        with open(tmp, "wb") as f:
            if callable(content):
                content(f)
            else:
                f.write(content.encode("utf-8") if isinstance(content, str) else content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | os.PathLike, obj) -> Path:
    return write_atomic(path, json.dumps(obj, indent=1) + "\n")


def write_jsonl(path: str | os.PathLike, rows) -> Path:
    return write_atomic(path, "".join(json.dumps(row) + "\n" for row in rows))


def remove_stale_temps(folder: Path, prefix: str = ".") -> int:
    """Delete temp files an interrupted writer left in `folder` (only names this module makes)."""
    stale = [p for p in folder.glob(f"{prefix}*{TEMP_MARK}") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)
