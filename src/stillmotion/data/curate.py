"""Curation: measure every video of a collection, filter by thresholds, write kept and rejected manifests.

Each file is decoded once, its frames downscaled to ANALYSIS_WIDTH pixels wide, and measured:
  metadata     width, height, fps, frames, duration, codec, bytes; `decodable`: every frame decodes and about as
               many as the header promises.
  scene cuts   d_i = half the L1 distance between the 8x8x8-bin RGB histograms of frames i-1 and i (0: same
               colours, 1: disjoint); a cut where d_i exceeds the median of its neighbours by more than
               Thresholds.cut_threshold (`scene_cuts`). `cuts` keeps [time, excess] of the peaks above CUT_FLOOR.
  motion       OpenCV Farneback optical flow between consecutive frames at FLOW_POINTS places:
                 motion = mean |flow|, in frame widths per second (a static clip is ~0);
                 shake  = mean |g2 - g1|, g the global (median) flow of two consecutive frame pairs, in frame
                          widths per second (a smooth pan is ~0, a handheld jitter large).
  sharpness    variance of the Laplacian of the grey frames (low: blurry).
  brightness   mean grey level, 0..255.
  phash        64-bit DCT perceptual hash of the frames at HASH_POINTS (3 x 64 bits, hex); near-duplicates
               differ in few bits, found exactly by pigeonhole bucketing (no all-pairs comparison).
The thresholds apply afterwards (`apply_thresholds`), so re-running with other thresholds reuses the cached
measurements. User files are only read; everything is written to the output folder, each file atomically.
A bad directory entry (symlink loop, dangling link, FIFO, unreadable file, binary caption) is one rejected row,
never an error; a run that fails before measuring anything leaves no output folder behind.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av
import numpy as np
from tqdm import tqdm

from stillmotion.atomic import write_json, write_jsonl
from stillmotion.data.layouts import TEMPLATES, VideoEntry, check_video, report_rejected, scan
from stillmotion.data.skips import SKIP_LIST, entry_problem, write_skip_list
from stillmotion.data.video_io import VideoReadError
from stillmotion.flow import optical_flow, require_cv2

log = logging.getLogger("stillmotion.data")

MEASURE_VERSION = 1
ANALYSIS_WIDTH = 160
FLOW_POINTS = 4
HASH_POINTS = (0.25, 0.5, 0.75)
CUT_FLOOR = 0.15
HASH_BITS = 64 * len(HASH_POINTS)


@dataclass
class Thresholds:
    """What a kept clip must satisfy. The defaults are starting points: look at `Curation.summary()` (the
    spread of each score in your collection) and the rejected list, then tune."""

    min_side: int = 64             # shorter side, pixels
    min_duration: float = 1.0      # seconds
    min_fps: float = 5.0
    cut_threshold: float = 0.4     # histogram-distance spike between consecutive frames that counts as a cut
    max_cuts: int = 0
    min_motion: float = 0.003      # frame widths per second; below: static
    max_shake: float = 0.5         # frame widths per second of global-motion change; above: shaky
    min_sharpness: float = 10.0    # variance of the Laplacian at ANALYSIS_WIDTH; below: blurry
    min_brightness: float = 16.0
    max_brightness: float = 240.0
    max_hash_distance: int = 12    # of HASH_BITS; at most this many bits apart: near-duplicates


@dataclass
class Curation:
    """The result of `curate`: where the manifests are, and their rows."""

    out: Path
    manifest: Path                 # every item: metadata, scores, kept, reasons
    kept_manifest: Path            # kept clips: opens with open_video_dataset / preprocess
    rejected_manifest: Path        # path, reasons
    kept: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)

    def summary(self) -> str:
        """Counts, the commonest rejection reasons, and the spread of each score (to tune thresholds)."""
        lines = [f"{len(self.kept)} kept, {len(self.rejected)} rejected -> {self.kept_manifest}"]
        kinds = Counter(r.split(":")[0].split(" (")[0] for row in self.rejected for r in row["reasons"])
        lines += [f"  {n:6d}  {kind}" for kind, n in kinds.most_common(8)]
        rows = [r for r in self.kept + self.rejected if r.get("decodable")]
        for key in ("motion", "shake", "sharpness", "brightness", "duration"):
            values = [r[key] for r in rows if r.get(key) is not None]
            if values:
                q = np.percentile(values, [5, 50, 95])
                lines.append(f"  {key:10s} 5% {q[0]:.4g}  median {q[1]:.4g}  95% {q[2]:.4g}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- scores

def _cv2():
    return require_cv2("curation (motion, sharpness, near-duplicates)")


def colour_histogram(rgb: np.ndarray, bins: int = 8) -> np.ndarray:
    """(H, W, 3) uint8 -> (bins**3,) joint RGB histogram summing to 1."""
    q = (rgb.astype(np.int32) * bins) // 256                            # (H, W, 3) bin per channel
    codes = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    return np.bincount(codes.ravel(), minlength=bins**3) / codes.size


def scene_cuts(diffs: np.ndarray, fps: float, window: int = 4) -> list[list[float]]:
    """[time, excess] of the frames whose histogram distance to the previous one stands out.

    excess_i = d_i - median(d_j, 0 < |j - i| <= window): steady change (motion, noise, a slow pan over a busy
    texture) raises every d_j alike and cancels; a cut is a spike. Peaks above CUT_FLOOR, strongest 50.

    Args:
        diffs: (n,) histogram distance of each frame to the previous one (diffs[0] = 0).
    """
    peaks = []
    for i in range(1, len(diffs)):
        nearby = np.concatenate([diffs[max(1, i - window):i], diffs[i + 1:i + 1 + window]])
        excess = diffs[i] - (np.median(nearby) if len(nearby) else 0.0)
        if excess > CUT_FLOOR:
            peaks.append([round(i / fps, 3), round(float(excess), 4)])
    return sorted(peaks, key=lambda c: -c[1])[:50]


def flow_scores(triplets: list[tuple[np.ndarray, np.ndarray, np.ndarray]], fps: float) -> tuple[float, float]:
    """(motion, shake) from triplets of consecutive grey frames (H, W) uint8, in frame widths per second."""
    mags, jitters = [], []
    for a, b, c in triplets:
        f1, f2 = optical_flow(a, b), optical_flow(b, c)  # Farneback, (H, W, 2) each
        mags += [float(np.linalg.norm(f, axis=-1).mean()) for f in (f1, f2)]   # (H, W, 2) -> mean |flow|, px
        g1, g2 = np.median(f1.reshape(-1, 2), 0), np.median(f2.reshape(-1, 2), 0)
        jitters.append(float(np.linalg.norm(g2 - g1)))
    per_second = fps / a.shape[1]
    return float(np.mean(mags)) * per_second, float(np.mean(jitters)) * per_second


def sharpness(grey: np.ndarray) -> float:
    """Variance of the Laplacian (Pech-Pacheco et al. 2000): edges make it large, blur makes it small."""
    cv2 = _cv2()
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def phash(grey: np.ndarray) -> int:
    """64-bit perceptual hash: the 8x8 lowest DCT frequencies of a 32x32 thumbnail, above or below their
    median (the DC term left out of the median)."""
    cv2 = _cv2()
    small = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8].ravel()
    bits = low > np.median(low[1:])
    return int("".join("1" if b else "0" for b in bits), 2)


def _decode_pass(path: Path, width: int, height: int, wanted: set[int]):
    """Decode every frame at (height, width): histogram distances to the previous frame, and grey copies of the
    `wanted` frames. Returns (greys {index: (H, W) uint8}, diffs (n,), frames decoded, error or None)."""
    cv2 = _cv2()
    greys: dict[int, np.ndarray] = {}
    diffs, prev, decoded, error = [0.0], None, 0, None
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as e:
        return greys, diffs, 0, f"cannot open ({e})"
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(container.decode(stream)):
            small = frame.reformat(width=width, height=height, format="rgb24").to_ndarray()   # (H, W, 3)
            hist = colour_histogram(small)
            if prev is not None:
                diffs.append(0.5 * float(np.abs(hist - prev).sum()))
            prev = hist
            if i in wanted:
                greys[i] = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
            decoded = i + 1
    except av.error.FFmpegError as e:
        error = f"decoding failed after {decoded} frame(s) ({e}); the file is corrupt or truncated"
    finally:
        container.close()
    return greys, diffs, decoded, error


def measure_video(path: str | os.PathLike) -> dict:
    """Metadata and scores of one file (see the module docstring); never raises for a bad file.

    Returns:
        A dict; `decodable` False with an `error` when the file cannot be used.
    """
    path = Path(path)
    try:
        size = os.path.getsize(path)
    except OSError:
        size = 0
    rec: dict = {"path": str(path.absolute()), "bytes": size}
    try:
        info = check_video(path)
    except (VideoReadError, OSError) as e:
        text = str(e)
        return {**rec, "decodable": False, "error": text[len(str(path)) + 2:] if text.startswith(f"{path}: ")
                else text}
    rec.update(width=info.width, height=info.height, fps=round(info.fps, 4), num_frames=info.num_frames,
               duration=round(info.duration, 4), codec=info.codec)
    n, fps = info.num_frames, info.fps or 25.0
    flow_at = sorted({int((k + 0.5) / FLOW_POINTS * max(n - 2, 1)) for k in range(FLOW_POINTS)})
    hash_at = [int(q * (n - 1)) for q in HASH_POINTS]
    wanted = {i + d for i in flow_at for d in range(3)} | set(hash_at)
    aw = max(2, min(ANALYSIS_WIDTH, info.width) // 2 * 2)
    ah = max(2, round(info.height * aw / max(info.width, 1)) // 2 * 2)
    greys, diffs, decoded, error = _decode_pass(path, aw, ah, wanted)
    if error is None and decoded < 0.9 * n - 1:
        error = f"truncated: {decoded} of the {n} frames the header promises decode"
    if error is None and decoded == 0:
        error = "no decodable frames"
    triplets = [tuple(greys[i + d] for d in range(3)) for i in flow_at if all(i + d in greys for d in range(3))]
    hashes = [phash(greys[i]) for i in hash_at if i in greys]
    rec.update(decodable=error is None, error=error, decoded_frames=decoded, cuts=scene_cuts(np.array(diffs), fps))
    if greys:
        motion, shake = flow_scores(triplets, fps) if triplets else (None, None)
        rec.update(motion=motion, shake=shake, sharpness=float(np.mean([sharpness(g) for g in greys.values()])),
                   brightness=float(np.mean([g.mean() for g in greys.values()])),
                   phash="".join(f"{h:016x}" for h in hashes) if len(hashes) == len(HASH_POINTS) else None)
    return rec


# ----------------------------------------------------------------------------------------------- filtering

def reasons(rec: dict, th: Thresholds) -> list[str]:
    """Why one measured file fails the thresholds (empty: it passes); duplicates are decided separately."""
    if not rec.get("decodable"):
        return [f"unreadable: {rec.get('error')}"]
    out = []
    if min(rec["width"], rec["height"]) < th.min_side:
        out.append(f"too small: {rec['width']}x{rec['height']}, shorter side under {th.min_side} px")
    if rec["duration"] < th.min_duration:
        out.append(f"too short: {rec['duration']:.2f} s < {th.min_duration} s")
    if rec["fps"] < th.min_fps:
        out.append(f"low frame rate: {rec['fps']:g} fps < {th.min_fps}")
    cuts = [t for t, d in rec.get("cuts", []) if d > th.cut_threshold]
    if len(cuts) > th.max_cuts:
        out.append(f"scene cut at {', '.join(f'{t:.2f}' for t in sorted(cuts)[:5])} s "
                   f"(histogram-distance spike > {th.cut_threshold})")
    if rec.get("motion") is not None and rec["motion"] < th.min_motion:
        out.append(f"static: motion {rec['motion']:.2g} < {th.min_motion} frame widths/s")
    if rec.get("shake") is not None and rec["shake"] > th.max_shake:
        out.append(f"shaky: global motion changes {rec['shake']:.2g} > {th.max_shake} frame widths/s")
    if rec.get("sharpness") is not None and rec["sharpness"] < th.min_sharpness:
        out.append(f"blurry: sharpness {rec['sharpness']:.3g} < {th.min_sharpness}")
    if rec.get("brightness") is not None and rec["brightness"] < th.min_brightness:
        out.append(f"too dark: brightness {rec['brightness']:.0f} < {th.min_brightness:g}")
    if rec.get("brightness") is not None and rec["brightness"] > th.max_brightness:
        out.append(f"too bright: brightness {rec['brightness']:.0f} > {th.max_brightness:g}")
    return out


def near_duplicates(hashes: dict[str, str], max_distance: int) -> list[list[tuple[str, int]]]:
    """Groups of paths whose hashes differ in at most `max_distance` bits (linked transitively).

    Pigeonhole: split the HASH_BITS bits into max_distance + 1 bands; two hashes that close agree exactly on at
    least one band, so only paths sharing a band value are compared.

    Returns:
        Groups of two or more, each [(path, distance to the group's first path), ...], in input order.
    """
    paths = list(hashes)
    ints = [int(hashes[p], 16) for p in paths]
    nb = max_distance + 1
    edges = np.linspace(0, HASH_BITS, nb + 1).round().astype(int)
    parent = list(range(len(paths)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for b in range(nb):
        lo, width = int(edges[b]), int(edges[b + 1] - edges[b])
        buckets: dict[int, list[int]] = {}
        for i, h in enumerate(ints):
            buckets.setdefault((h >> lo) & ((1 << width) - 1), []).append(i)
        for members in buckets.values():
            for x, i in enumerate(members):
                for j in members[x + 1:]:
                    if root(i) != root(j) and (ints[i] ^ ints[j]).bit_count() <= max_distance:
                        parent[max(root(i), root(j))] = min(root(i), root(j))
    groups: dict[int, list[int]] = {}
    for i in range(len(paths)):
        groups.setdefault(root(i), []).append(i)
    return [[(paths[i], (ints[i] ^ ints[g[0]]).bit_count()) for i in g] for g in groups.values() if len(g) > 1]


def apply_thresholds(records: list[dict], th: Thresholds) -> list[dict]:
    """Set `kept` and `reasons` on every record; of near-duplicate files the largest (then longest) is kept."""
    by_path = {}
    for rec in records:
        rec["reasons"] = reasons(rec, th)
        by_path.setdefault(rec["path"], rec)
    hashes = {p: r["phash"] for p, r in by_path.items() if not r["reasons"] and r.get("phash")}
    dup_of: dict[str, tuple[str, int]] = {}
    for group in near_duplicates(hashes, th.max_hash_distance):
        best = max((p for p, _ in group), key=lambda p: (by_path[p]["width"] * by_path[p]["height"],
                                                         by_path[p]["duration"], -list(hashes).index(p)))
        ref = int(hashes[best], 16)
        dup_of.update({p: (best, (int(hashes[p], 16) ^ ref).bit_count()) for p, _ in group if p != best})
    for rec in records:
        if rec["path"] in dup_of:
            best, d = dup_of[rec["path"]]
            rec["reasons"].append(f"near-duplicate of {best} ({d} of {HASH_BITS} hash bits differ)")
        rec["kept"] = not rec["reasons"]
    return records


# ----------------------------------------------------------------------------------------------- driver

def _cache_key(path: Path) -> str | None:
    """What identifies one measurement of `path`, or None when it cannot be stat'ed (gone since the scan)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return f"{path.absolute()}|{st.st_size}|{st.st_mtime_ns}|{MEASURE_VERSION}|{ANALYSIS_WIDTH}"


def _read_cache(path: Path) -> dict[str, dict]:
    cache = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
                cache[row["key"]] = row["record"]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line torn by an interruption: measured again
    return cache


def curate(source: str | os.PathLike, out: str | os.PathLike | None = None, *, thresholds: Thresholds | None = None,
           layout: str = "auto", manifest=None, split: str | None = None, fold: int = 1, templates=TEMPLATES,
           workers: int = 1, progress: bool = False) -> Curation:
    """Scan a collection, measure each video, apply thresholds, and write the manifests.

    Args:
        source: a folder of videos (captions layout, UCF-101, Kinetics) or a caption manifest.
        out: output folder (default: a sibling `<source>-curated`). It receives manifest.jsonl (every item),
            kept.jsonl (the kept clips with captions and metadata: give it to `open_video_dataset` or
            `preprocess`), rejected.jsonl (path and reasons), thresholds.json, and measure-cache.jsonl (an
            append-only cache: an interrupted or re-run curation measures only new or changed files).
            It also receives skipped.tsv: every rejected path and its reasons, one `path<TAB>reasons` line each.
        thresholds: see Thresholds.
        layout, manifest, split, fold, templates: passed to `layouts.scan`.
        workers: files measured in parallel (threads).

    Returns:
        Curation (paths, kept and rejected rows; `.summary()` for a report).

    Raises:
        ValueError: bad source/layout, or `out` would overwrite an input.
    """
    source = Path(source).expanduser()
    th = thresholds or Thresholds()
    out = Path(out).expanduser() if out is not None else source.with_name(source.stem + "-curated")
    if out.resolve() == (source if source.is_dir() else source.parent).resolve():
        raise ValueError(f"curate writes its manifests to a separate folder, not into {out}; pass another out=")
    paths = {name: out / name for name in ("manifest.jsonl", "kept.jsonl", "rejected.jsonl")}
    if source.is_file() and source.resolve() in {p.resolve() for p in paths.values()}:
        raise ValueError(f"{source} is one of curate's outputs; pass another out= so it is not overwritten")
    found = scan(source, layout, manifest=manifest, split=split, fold=fold, templates=templates)
    if found.entries:
        _cv2()  # a missing OpenCV stops the run here, before the output folder exists
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        measured = _measure(found.entries, out / "measure-cache.jsonl", workers, progress)
    except BaseException:
        if created:
            _remove_if_unused(out)
        raise
    records = [{**measured[e.path], "captions": list(e.captions), "start": e.start, "end": e.end,
                "label": e.label} for e in found.entries]
    apply_thresholds(records, th)
    scan_rejects = [{"path": str(p.absolute()), "kept": False, "reasons": [r]} for p, r in found.rejected]
    kept = [r for r in records if r["kept"]]
    rejected = [r for r in records if not r["kept"]] + scan_rejects
    write_jsonl(paths["manifest.jsonl"], records + scan_rejects)
    write_jsonl(paths["kept.jsonl"], kept)
    write_jsonl(paths["rejected.jsonl"], [{"path": r["path"], "reasons": r["reasons"]} for r in rejected])
    write_json(out / "thresholds.json", {"layout": found.layout, "source": str(source.absolute()), **asdict(th)})
    total = len(records) + len(scan_rejects)
    skipped = [(Path(r["path"]), "; ".join(r["reasons"])) for r in rejected]
    report_rejected(skipped, f"of {total} item(s) in {source}", listed_in=write_skip_list(out / SKIP_LIST, skipped))
    return Curation(out, paths["manifest.jsonl"], paths["kept.jsonl"], paths["rejected.jsonl"], kept, rejected)


def _measure(entries: list[VideoEntry], cache_path: Path, workers: int, progress: bool) -> dict[Path, dict]:
    """The measurement of each entry's file: from the cache, else measured now and appended to the cache. A
    file that vanished since the scan gets an undecodable record saying so (not cached)."""
    cache = _read_cache(cache_path)
    files = sorted({e.path for e in entries})
    keys = {p: _cache_key(p) for p in files}
    found = {p: {"path": str(p.absolute()), "bytes": 0, "decodable": False, "error": entry_problem(p) or "vanished"}
             for p in files if keys[p] is None}
    todo = [p for p in files if keys[p] is not None and keys[p] not in cache]
    with ThreadPoolExecutor(max(1, workers)) as pool, open(cache_path, "a") as log_file:
        for p, rec in tqdm(zip(todo, pool.map(measure_video, todo)), total=len(todo), unit="video",
                           disable=not progress):
            cache[keys[p]] = rec
            log_file.write(json.dumps({"key": keys[p], "record": rec}) + "\n")
            log_file.flush()
    return {**{p: cache[keys[p]] for p in files if keys[p] is not None}, **found}


def _remove_if_unused(out: Path) -> None:
    """Remove an output folder this run created when nothing worth keeping is in it (at most an empty cache)."""
    cache = out / "measure-cache.jsonl"
    if cache.is_file() and cache.stat().st_size == 0:
        cache.unlink()
    if not any(out.iterdir()):
        out.rmdir()
