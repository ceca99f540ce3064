"""Decode a collection once into fixed-size uint8 shards (resumable); data/folder.py's `ShardDataset` reads them.

Decoding and resizing real videos costs far more than a small model's training step; doing it once turns
every later epoch into memory-mapped reads. The output folder holds:
  plan.json           the clip settings and the source entries, fixed by the first run and reused on resume
                      (so a folder that changed meanwhile cannot shift which clip lands in which shard);
  shard-00000.npy     (n, F, H, W, 3) uint8, the clips j = k * clips_per_shard ... (k + 1) * clips_per_shard - 1
                      of the plan (n is smaller only where clips failed to decode);
  shard-00000.json    per clip: plan index, source path, start seconds, every caption of its entry;
  index.json          the finished shards, the failures, and `complete` once every shard is written;
  skipped.tsv         every source item left out and why (what the scan skipped, then clips that failed to
                      decode), one `path<TAB>reason` line each (stillmotion.data.skips).
Each file goes to a hidden temp file first and is renamed when whole; a shard enters index.json only after both
of its files are in place. An interrupted run therefore resumes at the first unfinished shard, redoes nothing
finished, and writes no clip twice (clip j always belongs to shard j // clips_per_shard).
"""

from __future__ import annotations

import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from stillmotion.atomic import remove_stale_temps, write_atomic, write_json
from stillmotion.data.folder import (
    DECODE_ERRORS,
    TEXT_CACHE,
    FolderClip,
    VideoFolder,
    as_size,
    cache_json,
    mix_seed,
    open_video_dataset,
)
from stillmotion.data.layouts import VideoEntry
from stillmotion.data.skips import SKIP_LIST, write_skip_list
from stillmotion.data.video_io import VideoInfo

log = logging.getLogger("stillmotion.data")

PLAN_VERSION = 1


def _entry_to_json(e: VideoEntry) -> dict:
    info = asdict(e.info) if e.info else None
    if info:
        info["path"] = str(info["path"])
    return {"path": str(e.path), "captions": list(e.captions), "start": e.start, "end": e.end, "label": e.label,
            "info": info}


def _entry_from_json(d: dict) -> VideoEntry:
    info = VideoInfo(**{**d["info"], "path": Path(d["info"]["path"])}) if d.get("info") else None
    return VideoEntry(Path(d["path"]), tuple(d["captions"]), d["start"], d["end"], d.get("label"), info)


def preprocess(source: str | os.PathLike, out: str | os.PathLike, *, frames: int, size, stride: int = 1,
               fps: float | None = None, crop: str = "center", clips_per_video: int = 1, clips_per_shard: int = 256,
               layout: str = "auto", split: str | None = None, seed: int = 0, workers: int = 1,
               progress: bool = False, text_encoder: str | None = "minilm") -> Path:
    """Decode `clips_per_video` clips of every usable video of `source` into shards under `out`; resumable.

    Args:
        source: anything `open_video_dataset` opens (a folder, a caption manifest such as curate's kept.jsonl,
            UCF-101, Kinetics). Ignored when `out` already holds a plan (resume).
        out: output folder (created; must not be a folder of someone else's files).
        frames, size, stride, fps, crop: the clips, as in `VideoFolder`; clips are evenly spaced over each
            video (one clip: the centre).
        clips_per_video: clips cut from each video.
        clips_per_shard: clips per shard file.
        layout, split: passed to `open_video_dataset`.
        seed: random crops (crop="random") are functions of (seed, clip index).
        workers: decoding threads.
        text_encoder: also embed every caption once with this encoder ("minilm" or a local Hugging Face folder)
            into TEXT_CACHE, which training loads instead of running the encoder; None skips it.

    Returns:
        `out`, ready for `ShardDataset(out)` or `open_video_dataset(out, ...)`.

    Raises:
        ValueError: `out` holds a plan with other settings (the message shows both), or no usable clips.
    """
    out = Path(out).expanduser()
    h, w = as_size(size)
    if clips_per_video < 1 or clips_per_shard < 1:
        raise ValueError(f"clips_per_video and clips_per_shard must be >= 1; got {clips_per_video}, {clips_per_shard}")
    config = {"version": PLAN_VERSION, "frames": frames, "size": [h, w], "stride": stride, "fps": fps, "crop": crop,
              "clips_per_video": clips_per_video, "clips_per_shard": clips_per_shard, "seed": seed}
    index_path = out / "index.json"
    entries, rejected = _plan(source, out, config, layout=layout, split=split)
    dataset = VideoFolder(entries, frames=frames, size=(h, w), stride=stride, fps=fps, clip="center", crop=crop,
                          seed=seed)
    remove_stale_temps(out)  # what an interrupted run was writing: redone below
    index = cache_json(index_path) if index_path.is_file() else {"config": config, "shards": [], "failures": []}
    done = {s["file"] for s in index["shards"] if (out / s["file"]).is_file() and (out / s["meta"]).is_file()}
    index["shards"] = [s for s in index["shards"] if s["file"] in done]
    total = len(entries) * clips_per_video
    num_shards = math.ceil(total / clips_per_shard)

    def cut(j: int) -> FolderClip | tuple[str, str]:
        entry, k = divmod(j, clips_per_video)
        try:
            return dataset.load(entry, mix_seed(seed, j), position=(k + 0.5) / clips_per_video)
        except DECODE_ERRORS as e:
            return str(entries[entry].path), str(e)

    todo = [k for k in range(num_shards) if f"shard-{k:05d}.npy" not in done]
    bar = tqdm(total=num_shards, initial=num_shards - len(todo), unit="shard", disable=not progress)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for k in todo:
            name = f"shard-{k:05d}"
            js = list(range(k * clips_per_shard, min(total, (k + 1) * clips_per_shard)))
            results = list(pool.map(cut, js))
            shard, failures = _write_shard(out, name, js, results, entries, (frames, h, w))
            index["shards"].append(shard)
            index["failures"] += failures
            write_json(index_path, index)   # the shard is done only now
            bar.update(1)
    bar.close()
    index["shards"].sort(key=lambda s: s["file"])
    if text_encoder is not None and not (out / TEXT_CACHE).is_file():
        from stillmotion.models.text import TextEncoder

        captions = [c for s in index["shards"] for m in cache_json(out / s["meta"])["clips"] for c in m["captions"]]
        if captions:
            TextEncoder(text_encoder).save_cache(out / TEXT_CACHE, captions)
    index["complete"] = True
    write_json(index_path, index)
    listed_in = write_skip_list(out / SKIP_LIST, rejected + [(Path(p), r) for p, r in index["failures"]])
    if index["failures"]:
        log.warning("%s: %d clip(s) failed to decode and were left out, e.g. %s (full list in %s)", out,
                    len(index["failures"]), index["failures"][0], listed_in)
    return out


def _plan(source, out: Path, config: dict, **open_kwargs) -> tuple[list[VideoEntry], list[tuple[Path, str]]]:
    """The entries to cut clips from and the (path, reason) of what the scan skipped: read from out/plan.json
    when resuming, else found in `source` and saved (the skip list goes to out/SKIP_LIST at once, so that a
    scan that finds nothing usable still leaves the whole list)."""
    plan_path = out / "plan.json"
    if plan_path.is_file():
        plan = cache_json(plan_path)
        if plan["config"] != config:
            raise ValueError(f"{out} was prepared with {plan['config']}, not {config}; pass the same settings to "
                             "resume, or choose a new output folder")
        log.info("%s: resuming (%d entries from the plan)", out, len(plan["entries"]))
        return [_entry_from_json(d) for d in plan["entries"]], [(Path(p), r) for p, r in plan.get("rejected", [])]
    if out.exists() and any(p for p in out.iterdir() if not p.name.startswith(".") and p.name != SKIP_LIST):
        raise ValueError(f"{out} is not empty and holds no plan.json; choose an empty or new output folder")
    dataset = open_video_dataset(source, frames=config["frames"], size=config["size"], stride=config["stride"],
                                 fps=config["fps"], clip="center", crop=config["crop"], seed=config["seed"],
                                 skip_list=out / SKIP_LIST, **open_kwargs)
    if not isinstance(dataset, VideoFolder):
        raise ValueError(f"{source} is already a preprocess output; train on it directly")
    write_json(plan_path, {"config": config, "source": str(source),
                           "entries": [_entry_to_json(e) for e in dataset.entries],
                           "rejected": [[str(p), r] for p, r in dataset.rejected]})
    return dataset.entries, list(dataset.rejected)


def _write_shard(out: Path, name: str, js: list[int], results: list, entries: list[VideoEntry],
                 shape: tuple[int, int, int]) -> tuple[dict, list]:
    """Write one shard's clips (.npy) and captions (.json); return its index record and its failures."""
    ok = [(j, r) for j, r in zip(js, results) if isinstance(r, FolderClip)]
    failures = [list(r) for r in results if not isinstance(r, FolderClip)]
    array = np.stack([c.video for _, c in ok]) if ok else np.zeros((0, *shape, 3), np.uint8)  # (n, F, H, W, 3)
    _save_array(out / f"{name}.npy", array)
    meta = [{"clip": j, "path": str(c.path), "start": c.start, "captions": list(entries[c.index].captions)}
            for j, c in ok]
    write_json(out / f"{name}.json", {"clips": meta, "failures": failures})
    return {"file": f"{name}.npy", "meta": f"{name}.json", "clips": len(ok)}, failures


def _save_array(path: Path, array: np.ndarray) -> None:
    write_atomic(path, lambda f: np.save(f, array, allow_pickle=False))
