"""Finding the videos of a collection and their captions: caption manifests, sidecar .txt files, UCF-101, Kinetics.

A scan returns `Scan(layout, entries, rejected)`: one `VideoEntry` per training clip (a file, or a time span of
one, with one or more captions) and (path, reason) for everything that cannot be used. Nothing here decodes
pixels; `verify_entries` opens each file once (`probe_video`) and rejects the unreadable ones. A bad directory
entry (symlink loop, dangling link, FIFO, unreadable file, binary caption) is one rejected item, never an error
that stops the scan (see stillmotion.data.skips); a video whose sidecar caption is unusable is rejected like
one without a caption, with the sidecar's problem as the reason.

Layouts (`detect_layout` picks one from what is on disk):
  captions  a folder of videos with a CSV or JSONL manifest (columns `path, caption[, start, end]`; a JSONL row
            may hold a list under `captions`; a path listed on several rows collects several captions) and/or
            a sidecar `name.txt` next to `name.mp4` holding one caption per non-empty line. A manifest file may
            also be opened directly (e.g. curate's kept.jsonl); relative paths are relative to its folder.
  ucf101    class folders `ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi` (optionally under `UCF-101/`), with the
            official split lists `trainlist01.txt` / `testlist01.txt` beside them or in `ucfTrainTestlist/`.
  kinetics  class folders (optionally under train/ val/ test/), or an annotation CSV
            (`label,youtube_id,time_start,time_end,split`) whose rows name trimmed files
            `{youtube_id}_{time_start:06d}_{time_end:06d}.mp4` or whole videos `{youtube_id}.mp4` (then the
            clip is the [time_start, time_end] span of the file).
Class layouts caption a clip by its class name ("ApplyEyeMakeup" -> "apply eye makeup") through TEMPLATES;
the entry carries every templated caption and a dataset draws one per sample.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from stillmotion.data.skips import Rejected, entry_problem, read_text_lines
from stillmotion.data.video_io import VIDEO_SUFFIXES, VideoInfo, VideoReadError, probe_video

log = logging.getLogger("stillmotion.data")

# files that belong to a collection without being videos: never reported as unsupported
COMPANION_SUFFIXES = (".txt", ".csv", ".jsonl", ".json", ".md", ".yaml", ".yml")
LAYOUTS = ("captions", "ucf101", "kinetics")
TEMPLATES = ("{action}", "a video of {action}", "a person {action}", "someone {action}", "a clip of {action}",
             "footage of {action}")
PATH_KEYS = ("path", "file", "filename", "video", "video_path")
CAPTION_KEYS = ("caption", "captions", "text", "prompt")
SPLIT_NAMES = {"train": ("train", "training"), "val": ("val", "valid", "validate", "validation"),
               "test": ("test", "testing")}
_UCF_NAME = re.compile(r"^v_.+_g\d+_c\d+\.\w+$")


@dataclass(frozen=True)
class VideoEntry:
    """One training clip: a video file, or the [start, end] seconds of one, with its captions.

    Attributes:
        path: the video file.
        captions: one or more captions (a dataset draws one per sample); multi-sentence captions stay whole.
        start, end: seconds; `end=None` means the end of the file.
        label: the class name for class layouts (UCF-101, Kinetics), else None.
        info: what `probe_video` said (filled by `verify_entries`, or read from a manifest that has it).
    """

    path: Path
    captions: tuple[str, ...]
    start: float = 0.0
    end: float | None = None
    label: str | None = None
    info: VideoInfo | None = None


@dataclass
class Scan:
    """What a scan found: the layout, usable entries, and (path, reason) for each thing skipped."""

    layout: str
    entries: list[VideoEntry]
    rejected: list[Rejected]


# ----------------------------------------------------------------------------------------------- captions

def clean_caption(text: str) -> str:
    """Strip and collapse whitespace (a caption wrapped over lines becomes one line; sentences stay whole)."""
    return " ".join(str(text).split())


def caption_from_label(label: str) -> str:
    """A class name as words: "ApplyEyeMakeup" -> "apply eye makeup", "air_drumming" -> "air drumming"."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", label.replace("_", " "))
    return clean_caption(words).lower()


def label_captions(label: str, templates=TEMPLATES) -> tuple[str, ...]:
    """Every template filled with the class name's words, e.g. ("apply eye makeup", "a video of apply ...")."""
    action = caption_from_label(label)
    return tuple(dict.fromkeys(t.format(action=action) for t in templates))


def _unique(captions) -> tuple[str, ...]:
    return tuple(dict.fromkeys(c for c in (clean_caption(x) for x in captions) if c))


# ----------------------------------------------------------------------------------------------- files

def list_files(root: Path) -> tuple[list[Path], list[Rejected]]:
    """Every readable, non-hidden regular file under `root`, sorted, and (path, reason) for each entry that is
    not one (symlink loops, dangling links, FIFOs, unreadable files and folders: see `skips.entry_problem`).

    Hidden files and folders (e.g. our temp files) are passed over silently. Symlinked folders are followed, each
    real folder once: a link back to a folder already scanned is recorded, not walked again (no loop).
    """
    files: list[Path] = []
    rejected: list[Rejected] = []

    def unlisted(error: OSError) -> None:
        rejected.append((Path(error.filename), f"cannot list this folder ({error.strerror}); check its permissions"))

    seen = {os.path.realpath(root)}
    for folder, dirs, names in os.walk(root, onerror=unlisted, followlinks=True):
        keep = []
        for d in sorted((d for d in dirs if not d.startswith(".")), key=lambda d: (_is_link(folder, d), d)):
            real = os.path.realpath(os.path.join(folder, d))
            if real not in seen:
                seen.add(real)
                keep.append(d)
            elif _is_link(folder, d):
                rejected.append((Path(folder) / d, f"symlink to a folder scanned already ({real}); not scanned twice"))
            else:
                rejected.append((Path(folder) / d, "folder scanned already through a symlink; not scanned twice"))
        dirs[:] = sorted(keep)
        for name in sorted(n for n in names if not n.startswith(".")):
            path = Path(folder) / name
            problem = entry_problem(path)
            if problem is None:
                files.append(path)
            else:
                rejected.append((path, problem))
    return files, rejected


def _is_link(folder: str, name: str) -> bool:
    return os.path.islink(os.path.join(folder, name))


def _real(path: Path) -> Path:
    """The path with symlinks resolved where possible; never raises (a loop stays as it is)."""
    return Path(os.path.realpath(path))


def _unsupported(path: Path) -> str:
    return (f"unsupported file type '{path.suffix or 'no suffix'}' (expected one of {', '.join(VIDEO_SUFFIXES)}); "
            "convert it, e.g. ffmpeg -i in.ext out.mp4")


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def _read_rows(path: Path) -> list[tuple[int, dict]]:
    """(line number, row) of a CSV (with a header) or a JSONL file; keys lower-cased. Bad JSON lines come back
    as rows {"_error": ...}; so does the place where the file stops being readable text (the rows before it
    are kept)."""
    rows = []
    problem = entry_problem(path)
    if problem is not None:
        return [(0, {"_error": problem})]
    n = 1
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            if path.suffix.lower() == ".jsonl":
                for n, line in enumerate(f, 1):
                    if line.strip():
                        rows.append((n, _json_row(line)))
            else:
                reader = csv.DictReader(f)
                for n, row in enumerate(reader, 2):
                    rows.append((n, {(k or "").strip().lower(): v for k, v in row.items()}))
    except (UnicodeDecodeError, csv.Error, OSError) as e:
        what = "not UTF-8 text" if isinstance(e, UnicodeDecodeError) else str(e)
        rows.append((n + 1, {"_error": f"unreadable from here on ({what}); save it as UTF-8 text"}))
    return rows


def _json_row(line: str) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        return {"_error": f"invalid JSON ({e.msg})"}
    if not isinstance(row, dict):
        return {"_error": "a JSON line must be an object"}
    return {str(k).strip().lower(): v for k, v in row.items()}


def _header(path: Path) -> set[str]:
    """The column names of a CSV or the keys of a JSONL file's first row (empty if unreadable)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            if path.suffix.lower() == ".jsonl":
                first = next((line for line in f if line.strip()), "{}")
                row = json.loads(first)
                return {str(k).lower() for k in row} if isinstance(row, dict) else set()
            return {k.strip().lower() for k in next(csv.reader(f), [])}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error):
        return set()


def is_caption_manifest(path: Path) -> bool:
    keys = _header(path) if path.suffix.lower() in (".csv", ".jsonl") and path.is_file() else set()
    return bool(keys & set(PATH_KEYS)) and bool(keys & set(CAPTION_KEYS))


def is_kinetics_csv(path: Path) -> bool:
    return path.suffix.lower() == ".csv" and path.is_file() and {"label", "youtube_id"} <= _header(path)


def _first(row: dict, keys) -> object:
    return next((row[k] for k in keys if row.get(k) not in (None, "")), None)


def _float(value, default):
    return default if value in (None, "") else float(value)


def _info(row: dict, path: Path) -> VideoInfo | None:
    """Metadata a manifest row already carries (curate writes it), so opening it needs no probing."""
    keys = ("width", "height", "fps", "num_frames", "duration")
    if not all(row.get(k) not in (None, "") for k in keys):
        return None
    return VideoInfo(path, int(row["width"]), int(row["height"]), float(row["fps"]), int(row["num_frames"]),
                     float(row["duration"]), str(row.get("codec") or ""))


# ----------------------------------------------------------------------------------------------- layouts

def read_manifest(manifest: Path, root: Path | None = None) -> tuple[list[VideoEntry], list[Rejected]]:
    """Entries of a caption manifest (CSV or JSONL); rows naming the same (path, start, end) pool captions.

    Relative paths resolve against the manifest's folder, then `root`. Rows without a path or caption, with
    bad times, or naming a missing or unsupported file are rejected with the line number.
    """
    groups: dict[tuple, dict] = {}
    rejected: list[Rejected] = []
    for n, row in _read_rows(manifest):
        where = f"{manifest.name} line {n}" if n else manifest.name
        if "_error" in row:
            rejected.append((manifest, f"{where}: {row['_error']}"))
            continue
        name = _first(row, PATH_KEYS)
        if name is None:
            rejected.append((manifest, f"{where}: no video path (expected a column {' / '.join(PATH_KEYS)})"))
            continue
        path = Path(str(name)).expanduser()
        if not path.is_absolute():
            path = manifest.parent / path if root is None or (manifest.parent / path).exists() else root / path
        raw = _first(row, CAPTION_KEYS)
        captions = _unique(raw if isinstance(raw, list) else [raw or ""])
        if not captions:
            rejected.append((path, f"no caption ({where} has an empty caption)"))
            continue
        try:
            start, end = _float(row.get("start"), 0.0), _float(row.get("end"), None)
        except (TypeError, ValueError):
            rejected.append((path, f"{where}: start/end must be seconds, got {row.get('start')!r}, {row.get('end')!r}"))
            continue
        if end is not None and end <= start:
            rejected.append((path, f"{where}: end {end} s is not after start {start} s"))
            continue
        group = groups.setdefault((path, start, end), {"captions": [], "row": row})
        group["captions"] += captions
    entries = []
    for (path, start, end), g in groups.items():
        problem = entry_problem(path) if os.path.lexists(path) else "file not found"
        if problem is not None:
            rejected.append((path, f"{problem} (listed in {manifest.name})"))
        elif not _is_video(path):
            rejected.append((path, _unsupported(path)))
        else:
            row = g["row"]
            entries.append(VideoEntry(path, _unique(g["captions"]), start, end, row.get("label"), _info(row, path)))
    return entries, rejected


def scan_captions(root: Path, manifest: Path | None = None) -> Scan:
    """A folder of videos captioned by a manifest and/or sidecar .txt files, or a manifest file on its own."""
    if root.is_file():
        return Scan("captions", *read_manifest(root))
    if manifest is None:
        found = [p for p in sorted(root.iterdir()) if p.is_file() and is_caption_manifest(p)]
        if len(found) > 1:
            raise ValueError(f"{root}: several caption manifests ({', '.join(p.name for p in found)}); pass one "
                             "with manifest=... (or open the manifest file itself)")
        manifest = found[0] if found else None
    entries, rejected = read_manifest(Path(manifest), root) if manifest else ([], [])
    listed = {_real(e.path) for e in entries} | {_real(p) for p, _ in rejected}
    files, bad = list_files(root)
    rejected += [(p, r) for p, r in bad if _real(p) not in listed]
    for path in files:
        if not _is_video(path):
            if path.suffix.lower() not in COMPANION_SUFFIXES:
                rejected.append((path, _unsupported(path)))
            continue
        if _real(path) in listed:
            continue
        captions, problem = _sidecar_captions(path.with_suffix(".txt"))
        if captions:
            entries.append(VideoEntry(path, captions))
        else:
            where = f"not in {Path(manifest).name} and " if manifest else ""
            rejected.append((path, f"no caption ({where}{problem})"))
    return Scan("captions", entries, rejected)


def _sidecar_captions(sidecar: Path) -> tuple[tuple[str, ...], str]:
    """(captions, "") from a sidecar file, or ((), why there are none); a binary or non-UTF-8 file gives none."""
    if not os.path.lexists(sidecar):
        return (), f"no sidecar {sidecar.name}"
    lines, problem = read_text_lines(sidecar)
    if problem is not None:
        return (), f"sidecar {sidecar.name} is unusable: {problem}"
    captions = _unique(lines)
    return captions, "" if captions else f"sidecar {sidecar.name} is empty"


def _class_entries(folder: Path, label: str, templates) -> tuple[list[VideoEntry], list[Rejected]]:
    captions = label_captions(label, templates)
    files, rejected = list_files(folder)
    entries = []
    for path in files:
        if _is_video(path):
            entries.append(VideoEntry(path, captions, label=label))
        elif path.suffix.lower() not in COMPANION_SUFFIXES:
            rejected.append((path, _unsupported(path)))
    return entries, rejected


def _subdirs(folder: Path) -> list[Path]:
    return [d for d in sorted(folder.iterdir()) if d.is_dir() and not d.name.startswith(".")]


def scan_ucf101(root: Path, split: str | None = None, fold: int = 1, templates=TEMPLATES) -> Scan:
    """UCF-101: `Class/v_Class_gXX_cYY.avi`; `split` "train" / "test" keeps the videos of `{split}list0{fold}.txt`.

    The label is the folder name (some file names spell the class differently, e.g. HandStandPushups).
    """
    if (root / "UCF-101").is_dir():
        root = root / "UCF-101"
    entries, rejected = [], []
    for folder in _subdirs(root):
        e, r = _class_entries(folder, folder.name, templates)
        entries += e
        rejected += r
    if split is None:
        return Scan("ucf101", entries, rejected)
    if split not in ("train", "test") or fold not in (1, 2, 3):
        raise ValueError(f"UCF-101 split must be 'train' or 'test' and fold 1, 2 or 3; got {split!r}, {fold}")
    name = f"{split}list{fold:02d}.txt"
    lists = [d / name for d in (root, root / "ucfTrainTestlist", root.parent / "ucfTrainTestlist", root.parent)]
    listing = next((p for p in lists if p.is_file()), None)
    if listing is None:
        looked = ", ".join(str(p.parent) for p in lists)
        raise ValueError(f"{root}: UCF-101 split list {name} not found (looked in {looked}); "
                         "download UCF101TrainTestSplits-RecognitionTask.zip and unpack it next to the videos, "
                         "or pass split=None to use every video")
    wanted = [line.split()[0].replace("\\", "/") for line in listing.read_text().splitlines() if line.strip()]
    by_rel = {e.path.relative_to(root).as_posix().lower(): e for e in entries}
    kept = []
    for rel in wanted:
        entry = by_rel.get(rel.lower())
        if entry is None:
            rejected.append((root / rel, f"file not found (listed in {listing.name})"))
        else:
            kept.append(entry)
    return Scan("ucf101", kept, rejected)


def _split_matches(value: str, split: str | None) -> bool:
    """Whether a split name, folder name or file name ("kinetics_400_val") belongs to `split`."""
    value = value.strip().lower()
    return split is None or any(name in value for name in SPLIT_NAMES.get(split, (split,)))


def scan_kinetics(root: Path, split: str | None = None, annotations: Path | None = None,  # noqa: C901 - 2 layouts; rows checked
                  templates=TEMPLATES) -> Scan:
    """Kinetics: class folders (optionally under a split folder), or annotation CSV(s) naming the clips.

    Args:
        root: the dataset folder, or an annotation CSV (its folder holds the videos, at any depth).
        split: "train" / "val" / "test" (None: all).
        annotations: an annotation CSV (default: every `label,youtube_id,...` CSV in `root`).
    """
    if root.is_file():
        root, annotations = root.parent, root
    csvs = [annotations] if annotations else [p for p in sorted(root.glob("*.csv")) if is_kinetics_csv(p)]
    if not csvs:  # class folders
        bases = [root]
        splits = {d.name.lower(): d for d in _subdirs(root) if any(d.name.lower() in v for v in SPLIT_NAMES.values())}
        if split is not None:
            bases = [d for name, d in splits.items() if _split_matches(name, split)]
            if not bases:
                raise ValueError(f"{root}: no '{split}' folder (found {sorted(splits) or 'none'}); pass split=None")
        elif splits:
            bases = list(splits.values())
        entries, rejected = [], []
        for base in bases:
            for folder in _subdirs(base):
                e, r = _class_entries(folder, folder.name, templates)
                entries += e
                rejected += r
        return Scan("kinetics", entries, rejected)
    by_stem: dict[str, Path] = {}
    files, rejected = list_files(root)
    for path in files:
        if _is_video(path):
            by_stem.setdefault(path.stem, path)
    entries = []
    for table in csvs:
        for n, row in _read_rows(table):
            if "_error" in row:
                rejected.append((table, f"{table.name}{f' line {n}' if n else ''}: {row['_error']}"))
                continue
            if not _split_matches(row.get("split") or table.stem, split):  # no split column: the file name
                continue
            label, yid = (row.get("label") or "").strip(), (row.get("youtube_id") or "").strip()
            try:
                t0, t1 = float(row.get("time_start") or 0), float(row.get("time_end") or math.nan)
            except ValueError:
                rejected.append((table, f"{table.name} line {n}: time_start/time_end must be seconds"))
                continue
            trimmed = f"{yid}_{int(t0):06d}_{int(t1):06d}" if not math.isnan(t1) else yid
            if not label:
                rejected.append((root / f"{trimmed}.mp4", f"no caption ({table.name} line {n} has no label)"))
            elif trimmed in by_stem:
                entries.append(VideoEntry(by_stem[trimmed], label_captions(label, templates), label=label))
            elif yid in by_stem:  # the whole video: the clip is the annotated span
                end = None if math.isnan(t1) else t1
                entries.append(VideoEntry(by_stem[yid], label_captions(label, templates), t0, end, label))
            else:
                rejected.append((root / label / f"{trimmed}.mp4",
                                 f"file not found ({table.name} line {n}: no video named {trimmed}.* or {yid}.*)"))
    return Scan("kinetics", entries, rejected)


# ----------------------------------------------------------------------------------------------- detection

def detect_layout(path: Path) -> str:
    """"captions", "ucf101" or "kinetics", from what `path` holds (see the module docstring)."""
    if path.is_file():
        return "kinetics" if is_kinetics_csv(path) else "captions"
    top = [p for p in sorted(path.iterdir()) if p.is_file()]
    if any(is_caption_manifest(p) for p in top):
        return "captions"
    if any(is_kinetics_csv(p) for p in top):
        return "kinetics"
    if (path / "UCF-101").is_dir():
        return "ucf101"
    videos = [p for p in list_files(path)[0] if _is_video(p)]
    if any(p.with_suffix(".txt").is_file() for p in videos) or any(p.parent == path for p in videos):
        return "captions"
    if any(_UCF_NAME.match(p.name) for p in videos):
        return "ucf101"
    return "kinetics" if videos else "captions"  # class folders without captions: labels are the captions


def scan(path, layout: str = "auto", *, manifest=None, split: str | None = None, fold: int = 1,
         templates=TEMPLATES) -> Scan:
    """Find the clips and captions of a collection (no decoding; see `verify_entries`).

    Args:
        path: a folder, a caption manifest (.csv / .jsonl) or a Kinetics annotation CSV.
        layout: "auto", "captions", "ucf101" or "kinetics".
        manifest: captions layout: the manifest to use when the folder holds several.
        split, fold: UCF-101 ("train"/"test", fold 1-3) or Kinetics ("train"/"val"/"test") subset.
        templates: class layouts: caption templates with an `{action}` field.

    Raises:
        ValueError: missing path, unknown layout, or an ambiguous / incomplete layout (the message says why).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ValueError(f"{path}: no such file or folder; pass a folder of videos or a manifest (.csv/.jsonl)")
    problem = None if path.is_dir() else entry_problem(path)
    if problem is not None:
        raise ValueError(f"{path}: {problem}; pass a folder of videos or a manifest (.csv/.jsonl)")
    if layout == "auto":
        layout = detect_layout(path)
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected 'auto' or one of {', '.join(LAYOUTS)}")
    if any("{action}" not in t for t in templates):
        raise ValueError(f"every caption template needs an {{action}} field; got {list(templates)}")
    if layout == "captions":
        return scan_captions(path, Path(manifest) if manifest else None)
    if layout == "ucf101":
        return scan_ucf101(path, split, fold, templates)
    return scan_kinetics(path, split, None, templates)


def _reason(error: Exception, path: Path) -> str:
    """An error message without the leading "path: " (the path is kept next to the reason)."""
    text = str(error)
    return text[len(str(path)) + 2:] if text.startswith(f"{path}: ") else text


def check_video(path: Path) -> VideoInfo:
    """`probe_video`, plus a check that catches files cut short (their header promises more than is there).

    Raises:
        VideoReadError: unreadable, empty, corrupt or truncated.
    """
    info = probe_video(path)
    promised = info.duration * info.fps
    if promised > 4 and info.num_frames < 0.75 * promised - 2:  # counted frames fall far short of the header
        raise VideoReadError(f"{path}: truncated or corrupt: the header says {info.duration:.2f} s at "
                             f"{info.fps:g} fps but only {info.num_frames} frames decode; re-export or re-download it")
    return info


def verify_entries(entries: list[VideoEntry], workers: int = 1) -> tuple[list[VideoEntry], list[Rejected]]:
    """Probe every file once (entries whose `info` a manifest already gave are trusted); reject the unreadable.

    Returns:
        (entries with `info` filled, [(path, reason)]).
    """
    todo = sorted({e.path for e in entries if e.info is None})

    def probe(path: Path) -> VideoInfo | str:
        try:
            return check_video(path)
        except (VideoReadError, OSError) as e:
            return _reason(e, path)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        found = dict(zip(todo, pool.map(probe, todo)))
    good, rejected, reported = [], [], set()
    for e in entries:
        info = e.info or found[e.path]
        if isinstance(info, str):
            if e.path not in reported:
                rejected.append((e.path, info))
                reported.add(e.path)
        elif info.duration and e.start >= info.duration:
            rejected.append((e.path, f"start {e.start} s is past the end of the {info.duration:.2f} s video"))
        else:
            good.append(replace(e, info=info))
    return good, rejected


def report_rejected(rejected: list[Rejected], what: str = "file(s)", shown: int = 5,
                    listed_in: Path | None = None) -> None:
    """One logged warning naming the first few skipped files and why, and where the full list is."""
    if rejected:
        first = "; ".join(f"{p} ({r})" for p, r in rejected[:shown])
        more = f"; and {len(rejected) - shown} more" if len(rejected) > shown else ""
        where = f" (full list in {listed_in})" if listed_in is not None else ""
        log.warning("skipped %d %s: %s%s%s", len(rejected), what, first, more, where)
