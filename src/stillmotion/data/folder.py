"""Video folders as training data: clips of real videos with captions, deterministic per seed.

`open_video_dataset(path, frames=16, size=64)` finds the videos and captions (`layouts.scan`: caption manifests
or sidecar .txt files, UCF-101, Kinetics), opens each file once to reject the unusable ones, and returns a
`VideoFolder` (or, for a folder written by `preprocess`, a `ShardDataset`). Every problem is a (path, reason) in
`dataset.rejected` and one logged warning (plus, with `skip_list=`, the whole list in a file); nothing is
silently dropped.
`ShardDataset` reads what data/preprocess.py writes; it lives here, below the writer, so that opening a
dataset never imports preprocessing (and preprocess.py imports this module, not the other way round).

A clip is chosen in three steps, all drawn from one seeded generator:
  time    `frames` frames, `stride` apart, at the file's frame rate (or resampled to `fps`), starting at a
          random (or the centre) position inside the entry's [start, end];
  space   the largest box of the target aspect (centred or random), resized to `size` (shorter side first);
  words   one of the entry's captions.
So `dataset.sample(seed)` is a pure function of the seed, like a synthetic world's, and training with
per-example seeds resumes exactly. A clip that fails to decode at training time (a file truncated after the
scan) is replaced by another entry chosen from the same seed, and recorded in `dataset.failures`.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch

from stillmotion.data.layouts import TEMPLATES, Rejected, VideoEntry, report_rejected, scan, verify_entries
from stillmotion.data.skips import skipped_of, write_skip_list
from stillmotion.data.video_io import VideoReadError, probe_video, read_video, to_float

log = logging.getLogger("stillmotion.data")

# What a broken file raises while decoding; anything else is a bug and should surface.
DECODE_ERRORS = (VideoReadError, av.error.FFmpegError, OSError, EOFError)


@dataclass
class FolderClip:
    """One sample: video (F, H, W, 3) uint8, its caption, and where it came from (file, start seconds)."""

    video: np.ndarray
    caption: str
    path: Path
    start: float
    index: int
    seed: int


def mix_seed(*words: int) -> int:
    """One 63-bit seed from several non-negative integers (hashed by numpy's SeedSequence)."""
    a, b = np.random.SeedSequence([int(w) for w in words]).generate_state(2, np.uint64)
    return int(a ^ (b >> np.uint64(1))) & (2**63 - 1)


def as_size(size) -> tuple[int, int]:
    """An int (square) or (height, width) -> (height, width)."""
    h, w = (size, size) if isinstance(size, numbers.Integral) else tuple(size)
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got {size}")
    return int(h), int(w)


def crop_resize(frames: np.ndarray, size: tuple[int, int], crop: str = "center",
                rng: np.random.Generator | None = None) -> np.ndarray:
    """Cut the largest box with the aspect of `size` and resize it: a shorter-side resize plus a crop.

    Args:
        frames: (F, H, W, 3) uint8.
        size: (h, w) output size.
        crop: "center" or "random" (needs `rng`).

    Returns:
        (F, h, w, 3) uint8; bilinear with antialiasing (the box is only cropped when it has the size already).
    """
    _, big_h, big_w, _ = frames.shape
    h, w = size
    scale = max(h / big_h, w / big_w)                                  # the shorter side lands on the target
    box_h, box_w = min(big_h, round(h / scale)), min(big_w, round(w / scale))
    if crop == "random":
        y0, x0 = int(rng.integers(0, big_h - box_h + 1)), int(rng.integers(0, big_w - box_w + 1))
    else:
        y0, x0 = (big_h - box_h) // 2, (big_w - box_w) // 2
    box = np.ascontiguousarray(frames[:, y0:y0 + box_h, x0:x0 + box_w])
    if (box_h, box_w) == (h, w):
        return box
    x = torch.from_numpy(box).permute(0, 3, 1, 2).float()             # (F, H, W, 3) -> (F, 3, H, W)
    x = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


class VideoFolder(torch.utils.data.Dataset):
    """Clips of captioned videos. `dataset[i]` -> (video (C, F, H, W) float in [-1, 1], caption).

    `dataset[i]` reads entry i with randomness from (seed, epoch, i) (call `set_epoch` each epoch);
    `dataset.sample(seed)` draws an entry and a clip of it from `seed` alone (what the training loop calls).
    Decoding failures are logged and kept in `failures` by the process that met them (each DataLoader worker
    has its own copy); the replacement clip does not depend on which process met the failure first.

    Args:
        entries: from `layouts.scan` (+ `verify_entries`, which fills `info`; entries without it are probed when
            first read).
        frames: frames per clip.
        size: output size, an int (square) or (height, width).
        stride: keep every `stride`-th frame (after resampling to `fps`).
        fps: resample to this frame rate (None: the file's own frames).
        clip: "random" or "center" position in time.
        crop: "center" or "random" box in space.
        pad_short: hold the last frame of videos shorter than a clip (default: reject them).
        seed: base seed of `__getitem__`.
        rejected: (path, reason) found while scanning; too-short entries are added to it.
        max_retries: replacements tried for a clip that does not decode before giving up.
    """

    def __init__(self, entries: list[VideoEntry], *, frames: int, size, stride: int = 1, fps: float | None = None,
                 clip: str = "random", crop: str = "center", pad_short: bool = False, seed: int = 0,
                 rejected: list[Rejected] = (), max_retries: int = 16):
        if frames < 1 or stride < 1 or (fps is not None and fps <= 0):
            raise ValueError(f"need frames >= 1, stride >= 1, fps > 0 or None; got {frames}, {stride}, {fps}")
        if clip not in ("random", "center") or crop not in ("random", "center"):
            raise ValueError(f"clip and crop must be 'random' or 'center'; got clip={clip!r}, crop={crop!r}")
        self.frames, self.size, self.stride, self.fps = frames, as_size(size), stride, fps
        self.clip_mode, self.crop, self.pad_short = clip, crop, pad_short
        self.seed, self.epoch, self.max_retries = seed, 0, max_retries
        self.rejected: list[Rejected] = list(rejected)
        self.failures: list[Rejected] = []            # clips that failed to decode while training, and why
        self._bad: dict[int, str] = {}
        self._info = {}
        self.entries = []
        for e in entries:
            if e.info is not None and not pad_short and self.start_range(e, e.info) is None:
                self.rejected.append((e.path, self._too_short(e, e.info)))
            else:
                self.entries.append(e)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        clip = self.clip(index, mix_seed(self.seed, self.epoch, index))
        return to_float(clip.video), clip.caption                    # (C, F, H, W) in [-1, 1]

    def set_epoch(self, epoch: int) -> None:
        """Draw new clip positions, crops and captions for the next pass."""
        self.epoch = int(epoch)

    def sample(self, seed: int) -> FolderClip:
        """A random entry and a random clip of it; a pure function of `seed` (the worlds' interface)."""
        index = int(np.random.default_rng(seed).integers(len(self.entries)))
        return self.clip(index, seed)

    # -------------------------------------------------------------------------------------------- reading

    def clip(self, index: int, seed: int) -> FolderClip:
        """`load(index, seed)`, or, when that entry does not decode, the first entry that does among a
        sequence of replacements drawn from (seed, index): the same seed always gives the same clip."""
        j = index
        for attempt in range(self.max_retries + 1):
            if attempt:
                j = int(np.random.default_rng([seed, index, attempt]).integers(len(self.entries)))
            if j in self._bad:  # known broken: skipping it gives what trying again would
                continue
            try:
                return self.load(j, seed)
            except DECODE_ERRORS as e:
                self._record(j, e)
        raise RuntimeError(f"{self.max_retries + 1} clips in a row failed to decode (last: "
                           f"{self.entries[j].path}: {self._bad.get(j)}); {len(self._bad)} of {len(self.entries)} "
                           "files are broken: run `stillmotion curate` on the folder and train on its kept.jsonl")

    def load(self, index: int, seed: int, position: float | None = None) -> FolderClip:
        """Decode one clip of entry `index`, randomness from (seed, index); no replacement.

        Args:
            position: where the clip starts within the admissible range, 0 (earliest) .. 1 (latest); None:
                random or centre as the dataset says.

        Raises:
            VideoReadError (and the other DECODE_ERRORS): the file does not give a full clip.
        """
        entry = self.entries[index]
        rng = np.random.default_rng([seed, index])
        info = self.info(index)
        p = rng.random()  # drawn always, so that the crop and caption draws do not depend on the mode
        if position is None:
            position = p if self.clip_mode == "random" else 0.5
        found = self.start_range(entry, info)
        if found is None and not self.pad_short:
            raise VideoReadError(f"{entry.path}: {self._too_short(entry, info)}")
        lo, latest, step = found if found is not None else (entry.start, entry.start, 0.0)
        if step:  # the file's own frames: one of `count` whole-frame starts
            count = round((latest - lo) / step) + 1
            start = lo + min(count - 1, math.floor(position * count)) * step
        else:
            start = lo + position * (latest - lo)
        video = read_video(entry.path, num_frames=self.frames, stride=self.stride, fps=self.fps, start=start)
        if len(video) < self.frames:
            if not self.pad_short:
                raise VideoReadError(f"{entry.path}: only {len(video)} of {self.frames} frames decode from "
                                     f"{start:.2f} s (the file is shorter than its header says: truncated?)")
            video = np.concatenate([video, video[-1:].repeat(self.frames - len(video), 0)])
        video = crop_resize(video, self.size, self.crop, rng)
        caption = entry.captions[int(rng.integers(len(entry.captions)))]
        return FolderClip(video, caption, entry.path, float(start), index, seed)

    def info(self, index: int):
        entry = self.entries[index]
        if entry.info is not None:
            return entry.info
        if index not in self._info:
            self._info[index] = probe_video(entry.path)
        return self._info[index]

    def start_range(self, entry: VideoEntry, info) -> tuple[float, float, float] | None:
        """(earliest start, latest start, grid step) in seconds of a full clip in `entry`, or None if the entry
        is too short. The step is one source frame (starts on frames), or 0 when resampling to `fps`."""
        src_fps = info.fps or 25.0
        duration = info.duration if info.duration > 0 else info.num_frames / src_fps
        lo, hi = entry.start, min(duration, entry.end) if entry.end is not None else duration
        if self.fps is None:
            whole = entry.start == 0 and entry.end is None and info.num_frames > 0
            available = info.num_frames if whole else math.floor((hi - lo) * src_fps + 1e-6)
            spare = available - ((self.frames - 1) * self.stride + 1)  # spare frames before the first one
            return None if spare < 0 else (lo, lo + spare / src_fps, 1.0 / src_fps)
        span = (self.frames - 1) * self.stride / self.fps  # from the first output time to the last
        latest = hi - span - 0.5 / src_fps                 # keep half a source frame of slack at the end
        if latest < lo <= hi - span - 1e-3:
            latest = lo
        return None if latest < lo else (lo, latest, 0.0)

    def _too_short(self, entry: VideoEntry, info) -> str:
        rate = f"{self.fps:g} fps" if self.fps else f"its {info.fps:g} fps"
        need = ((self.frames - 1) * self.stride + 1) / (self.fps or info.fps or 25.0)
        have = (min(info.duration, entry.end) if entry.end else info.duration) - entry.start
        return (f"too short: {have:.2f} s, a clip of {self.frames} frames (stride {self.stride}, {rate}) needs "
                f"{need:.2f} s; lower frames/stride or pass pad_short=True")

    def _record(self, index: int, error: Exception) -> None:
        if index in self._bad:
            return
        path = self.entries[index].path
        text = str(error)
        reason = text[len(str(path)) + 2:] if text.startswith(f"{path}: ") else text
        self._bad[index] = reason
        self.failures.append((path, reason))
        log.warning("%s: cannot decode (%s); training on a replacement clip", path, reason)

    def __repr__(self) -> str:
        return (f"VideoFolder({len(self.entries)} clips, {len(self.rejected)} rejected, frames={self.frames}, "
                f"size={self.size}, stride={self.stride}, fps={self.fps}, clip={self.clip_mode}, crop={self.crop})")


def cache_json(path: Path) -> dict:
    """One JSON file of a `preprocess` output folder (index.json, plan.json, a shard's .json); an unreadable one
    is named with what to do."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: unreadable ({e}); it is not a preprocess output, or it was damaged: "
                         "remove the output folder and run preprocess again") from e


TEXT_CACHE = "text-cache.safetensors"  # caption embeddings (see TextEncoder.save_cache)


class ShardDataset(torch.utils.data.Dataset):
    """Clips written by `preprocess`. `dataset[i]` -> (video (C, F, H, W) float in [-1, 1], caption).

    Shards are memory-mapped (opened lazily, so each DataLoader worker maps its own). The caption of clip i is
    drawn from its entry's captions with (seed, epoch, i); `sample(seed)` draws a clip and a caption from
    `seed` alone, like a synthetic world.

    Args:
        folder: a `preprocess` output folder; it must be complete.
        seed: base seed of `__getitem__`'s caption draws.
        frames, size: if given, must match the shards (a guard against training on the wrong cache).
    """

    def __init__(self, folder: str | os.PathLike, *, seed: int = 0, frames: int | None = None, size=None):
        self.folder = Path(folder)
        index = cache_json(self.folder / "index.json")
        config = index["config"]
        if not index.get("complete"):
            raise ValueError(f"{self.folder}: preprocessing is unfinished ({len(index['shards'])} shards so far); "
                             "run preprocess again with the same settings to finish it")
        if (frames is not None and frames != config["frames"]) or (size is not None and
                                                                   list(as_size(size)) != config["size"]):
            raise ValueError(f"{self.folder} holds clips of {config['frames']} frames at {config['size']}, not "
                             f"{frames} at {list(as_size(size)) if size is not None else size}; preprocess again "
                             "with these settings into another folder, or train with the cached ones")
        self.frames, self.size = config["frames"], tuple(config["size"])
        self.seed, self.epoch = seed, 0
        self.shards = [s for s in index["shards"] if s["clips"]]
        self.captions: list[list[str]] = []
        self.sources: list[tuple[str, float]] = []    # (path, start seconds) of each clip
        for s in self.shards:
            meta = cache_json(self.folder / s["meta"])["clips"]
            self.captions += [m["captions"] for m in meta]
            self.sources += [(m["path"], m["start"]) for m in meta]
        self.offsets = np.cumsum([0] + [s["clips"] for s in self.shards]).tolist()  # first clip of each shard
        self.failures = [(Path(p), r) for p, r in index["failures"]]
        plan = self.folder / "plan.json"
        self.rejected = [(Path(p), r) for p, r in cache_json(plan).get("rejected", [])] if plan.is_file() else []
        self.text_cache = self.folder / TEXT_CACHE if (self.folder / TEXT_CACHE).is_file() else None
        self._arrays: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.offsets[-1]

    def video(self, index: int) -> np.ndarray:
        """Clip `index` as (F, H, W, 3) uint8."""
        if not 0 <= index < len(self):
            raise IndexError(f"clip {index} out of range for {len(self)} clips")
        k = bisect.bisect_right(self.offsets, index) - 1
        if k not in self._arrays:
            self._arrays[k] = np.load(self.folder / self.shards[k]["file"], mmap_mode="r")
        return np.array(self._arrays[k][index - self.offsets[k]])

    def clip(self, index: int, seed: int) -> FolderClip:
        captions = self.captions[index]
        caption = captions[int(np.random.default_rng([seed, index]).integers(len(captions)))]
        path, start = self.sources[index]
        return FolderClip(self.video(index), caption, Path(path), start, index, seed)

    def sample(self, seed: int) -> FolderClip:
        """A random clip and caption; a pure function of `seed`."""
        return self.clip(int(np.random.default_rng(seed).integers(len(self))), seed)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        clip = self.clip(index, mix_seed(self.seed, self.epoch, index))
        return to_float(clip.video), clip.caption

    def __repr__(self) -> str:
        return f"ShardDataset({self.folder}, {len(self)} clips of {self.frames} frames at {self.size})"


def open_video_dataset(path: str | os.PathLike, *, frames: int, size, layout: str = "auto", manifest=None,
                       split: str | None = None, fold: int = 1, stride: int = 1, fps: float | None = None,
                       clip: str = "random", crop: str = "center", templates=TEMPLATES, pad_short: bool = False,
                       seed: int = 0, verify: bool = True, workers: int = 4, skip_list=None):
    """Open a collection of videos as a dataset, detecting its layout.

    Args:
        path: a folder of videos (captions layout, UCF-101 or Kinetics), a caption manifest (.csv / .jsonl, e.g.
            curate's kept.jsonl), a Kinetics annotation CSV, or a folder written by `preprocess`.
        frames, size: clip length and (height, width) or side.
        layout: "auto", "captions", "ucf101" or "kinetics" (see stillmotion.data.layouts).
        manifest, split, fold, templates: passed to `layouts.scan`.
        stride, fps, clip, crop, pad_short, seed: see `VideoFolder`.
        verify: open every file once now and reject the unreadable ones (recommended; manifests written by
            curate carry the metadata and skip this).
        workers: threads for verification.
        skip_list: also write every skipped (path, reason) to this file (`skips.write_skip_list`; a folder gets
            skips.SKIP_LIST), also when nothing usable is found; the logged warning then names it. For a
            preprocessed folder: what its scan skipped and the clips that failed to decode.

    Returns:
        A VideoFolder, or a ShardDataset for a preprocessed folder (then frames/size must match it).

    Raises:
        ValueError: nothing usable found (the message lists the first reasons), or a bad argument.
    """
    path = Path(path).expanduser()
    if (path / "index.json").is_file() and (path / "plan.json").is_file():
        shards = ShardDataset(path, seed=seed, frames=frames, size=size)
        if skip_list is not None:
            write_skip_list(skip_list, skipped_of(shards))
        return shards
    found = scan(path, layout, manifest=manifest, split=split, fold=fold, templates=templates)
    entries, rejected = found.entries, list(found.rejected)
    if verify:
        entries, bad = verify_entries(entries, workers)
        rejected += bad
    dataset = VideoFolder(entries, frames=frames, size=size, stride=stride, fps=fps, clip=clip, crop=crop,
                          pad_short=pad_short, seed=seed, rejected=rejected)
    listed_in = write_skip_list(skip_list, dataset.rejected) if skip_list is not None else None
    report_rejected(dataset.rejected, f"of {len(dataset) + len(dataset.rejected)} item(s) in {path}",
                    listed_in=listed_in)
    if not len(dataset):
        reasons = "; ".join(f"{p.name}: {r}" for p, r in dataset.rejected[:3]) or "no video files found"
        raise ValueError(f"{path}: no usable clips ({found.layout} layout; {reasons}); see the module docstring of "
                         "stillmotion.data.layouts for the layouts understood")
    log.info("%s: %s layout, %s", path, found.layout, dataset)
    return dataset
