"""Skip and record: what a folder scan cannot use, why, and the skip list file.

A folder command (curate, preprocess, train --data, evaluate --videos) never dies on one directory entry. Each
entry is checked with `os.stat` before anything opens it:
  symlink loop, dangling symlink   the link is named with where it points; fix or remove it;
  FIFO, socket, device             never opened (reading a FIFO would wait forever for a writer);
  unreadable file                  the open error (e.g. permission denied);
  unusable caption file            binary (NUL bytes), not UTF-8, or mostly control characters.
The command goes on with the rest and writes every (path, reason) to SKIP_LIST in its output or run folder,
one tab-separated line each, so a console message may shorten the list without losing any of it.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path

from stillmotion.atomic import write_atomic

log = logging.getLogger("stillmotion.data")

SKIP_LIST = "skipped.tsv"
MAX_CONTROL_SHARE = 0.1  # text with more control characters than this is binary, whatever its decoding

Rejected = tuple[Path, str]


def entry_problem(path: str | os.PathLike) -> str | None:
    """Why `path` is not a readable regular file (after following symlinks), or None when it is one.

    Only `os.stat` and, for regular files, an open for reading: a FIFO or device is never opened.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except OSError as e:
        return _stat_problem(path, e)
    mode = st.st_mode
    if stat.S_ISREG(mode):
        try:
            with open(path, "rb"):
                return None
        except OSError as e:
            return f"unreadable ({e.strerror or e}); check its permissions"
    if stat.S_ISDIR(mode):
        return "a folder, not a file"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe), not a file; it was not opened (reading it would wait for a writer)"
    if stat.S_ISSOCK(mode):
        return "a socket, not a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device, not a file"
    return "not a regular file"


def _stat_problem(path: Path, error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return f"symlink loop ({_link_text(path)} leads back to itself); fix or remove the link"
    if os.path.islink(path) and error.errno == errno.ENOENT:
        return f"dangling symlink ({_link_text(path)} does not exist); fix or remove the link"
    if error.errno == errno.ENOENT:
        return "file not found (removed during the scan?)"
    return f"cannot stat ({error.strerror or error}); check the path and its permissions"


def _link_text(path: Path) -> str:
    try:
        return f"-> {os.readlink(path)}"
    except OSError:
        return "a link on the way"


def read_text_lines(path: str | os.PathLike) -> tuple[list[str], str | None]:
    """The lines of a UTF-8 text file (a sidecar caption), or ([], why it is unusable).

    Binary content is refused rather than decoded into garbage captions: NUL bytes (a binary or UTF-16 file),
    bytes that are not UTF-8, or more than MAX_CONTROL_SHARE control characters.
    """
    path = Path(path)
    problem = entry_problem(path)
    if problem is not None:
        return [], problem
    try:
        data = path.read_bytes()
    except OSError as e:
        return [], f"unreadable ({e.strerror or e}); check its permissions"
    if b"\x00" in data:
        return [], "binary, not text (it holds NUL bytes; UTF-16?); save the caption as UTF-8 text"
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        return [], f"not UTF-8 text (a bad byte on line {line}); save the caption as UTF-8 text"
    control = sum(1 for c in text if not c.isprintable() and c not in "\t\n\r")
    if control > MAX_CONTROL_SHARE * len(text):
        return [], (f"binary, not text ({control} of {len(text)} characters are control characters); "
                    "save the caption as UTF-8 text")
    return text.splitlines(), None


def skipped_of(source) -> list[Rejected]:
    """Everything a training source left out: what its scan skipped, and clips that failed to decode since
    (a synthetic world skips nothing)."""
    return [*getattr(source, "rejected", ()), *getattr(source, "failures", ())]


def write_skip_list(path: str | os.PathLike, skipped: list[Rejected]) -> Path:
    """Write `path<TAB>reason` per skipped item (a header line first) atomically; `path` may be a folder, then
    the file is SKIP_LIST in it. Written even when nothing was skipped, so an empty list is a statement."""
    path = Path(path)
    if path.is_dir():
        path = path / SKIP_LIST
    rows = [f"{_one_line(p)}\t{_one_line(r)}\n" for p, r in skipped]
    write_atomic(path, "path\treason\n" + "".join(rows))
    if skipped:
        log.info("full list of the %d skipped item(s): %s", len(skipped), path)
    return path


def read_skip_list(path: str | os.PathLike) -> list[Rejected]:
    """The (path, reason) rows of a skip list (a folder means its SKIP_LIST)."""
    path = Path(path)
    if path.is_dir():
        path = path / SKIP_LIST
    rows = path.read_text(encoding="utf-8").splitlines()[1:]
    return [(Path(p), r) for p, _, r in (row.partition("\t") for row in rows)]


def _one_line(value) -> str:
    """A path or reason as one TSV field: tabs and line breaks (legal in file names) become spaces, and bytes
    that are not UTF-8 (also legal in file names) are written as escapes."""
    text = " ".join(str(value).replace("\t", " ").splitlines())
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
