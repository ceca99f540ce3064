"""Temporal consistency of any clip, from optical flow: warping error, flicker, dynamic degree. No downloads.

Flow is stillmotion/flow.py's (OpenCV: Farnebäck 2003 by default; DIS, Kroeger et al. 2016, as an option) on the
grey frames at the clip's own resolution. For each pair of neighbouring frames (I0, I1) = (frame i, frame i + 1):
    forward flow   fw:  I0(p) ~ I1(p + fw(p))
    backward flow  bw:  I1(p) ~ I0(p + bw(p))
A pair of identical frames gets exactly zero flow without asking OpenCV, so a still clip scores exactly 0.

Metrics (intensities in 0..255 levels, averaged over the RGB channels; motion in pixels per frame at the clip's
resolution, so compare clips of one resolution). Every mean is over all counted pixels of all pairs:
    warping_error      mean |I1(p) - I0(p + bw(p))| over the pixels p of I1 that are not occluded (bilinear warp).
                       0..255, lower is more consistent. What motion does not explain: flicker, popping, smearing.
    occluded_fraction  share of pixels left out of warping_error, 0..1: those that fail flow.py's forward-backward
                       check (Sundaram, Brox & Keutzer 2010) or whose p + bw(p) falls outside the frame.
    flicker            mean |I1(p) - I0(p)| over static pixels (|fw(p)| and |bw(p)| below `static_px`), 0..255,
                       lower is better: brightness change where nothing moves.
    static_fraction    share of pixels counted as static, 0..1.
    dynamic_degree     per pair, the mean of the largest `top_fraction` (5%) flow magnitudes, then the mean over
                       pairs; px/frame, 0..inf, 0 for a still clip. The recipe of VBench's dynamic degree (Huang et
                       al. 2024), with OpenCV flow instead of RAFT and reported as a number, not a yes/no.
    moving_fraction    share of pairs whose per-pair dynamic degree exceeds `moving_px`, 0..1. The default
                       threshold is VBench's, 6 px at a 256-pixel short side, scaled to the clip.
    mean_flow          mean forward-flow magnitude over all pixels and pairs, px/frame.
A metric with no pixel to average over (everything occluded, nothing static) is NaN.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from stillmotion.data.skips import entry_problem
from stillmotion.data.video_io import VIDEO_SUFFIXES, as_frames, read_video
from stillmotion.flow import FLOW_METHODS, require_cv2, video_flows, visible, warp


def _frames(video) -> np.ndarray:
    """Any clip -> uint8 (F, H, W, 3) with F >= 2."""
    frames = as_frames(video)
    if len(frames) < 2:
        raise ValueError(f"temporal metrics need at least 2 frames; got a clip of shape {frames.shape}")
    return frames


def _flows_for(frames: np.ndarray, flows, method: str) -> tuple[np.ndarray, np.ndarray]:
    if flows is None:
        return video_flows(frames, method)
    forward, backward = flows
    expected = (len(frames) - 1, *frames.shape[1:3], 2)
    if forward.shape != expected or backward.shape != expected:
        raise ValueError(f"flows must be (forward, backward) from video_flows, each {expected}; got "
                         f"{forward.shape} and {backward.shape}")
    return forward, backward


def _ratio(total: float, count: float) -> float:
    return total / count if count else math.nan


# ----------------------------------------------------------------------------------------------- metrics

def warping_error(video, *, method: str = "farneback", flows=None) -> dict:
    """Mean absolute error between each frame and its predecessor warped by the backward flow, on visible pixels.

    Args:
        video: uint8 (F, H, W, 3) frames or a float (C, F, H, W) clip in [-1, 1]; F >= 2.
        method: flow method, "farneback" or "dis".
        flows: optional (forward, backward) from `flow.video_flows`, to reuse flow computed once.

    Returns:
        {"warping_error": 0..255 levels (NaN if every pixel is occluded), "occluded_fraction": 0..1}.
    """
    frames = _frames(video)
    forward, backward = _flows_for(frames, flows, method)
    err_sum, valid, total = 0.0, 0, 0
    for i, (fw, bw) in enumerate(zip(forward, backward)):
        prev, nxt = frames[i].astype(np.float64), frames[i + 1].astype(np.float64)
        warped, _ = warp(prev, bw)                                         # I0(p + bw(p)), (H, W, 3)
        seen = visible(fw, bw)                                             # (H, W)
        err_sum += float(np.abs(nxt - warped).mean(-1)[seen].sum())
        valid += int(seen.sum())
        total += seen.size
    return {"warping_error": _ratio(err_sum, valid), "occluded_fraction": 1.0 - valid / total}


def flicker(video, *, method: str = "farneback", static_px: float = 0.2, flows=None) -> dict:
    """Mean absolute frame-to-frame change of pixels that do not move.

    Args:
        video: uint8 (F, H, W, 3) frames or a float (C, F, H, W) clip in [-1, 1]; F >= 2.
        method: flow method. static_px: a pixel is static when both its forward and backward flow are shorter.
        flows: optional (forward, backward) from `flow.video_flows`.

    Returns:
        {"flicker": 0..255 levels (NaN if no pixel is static), "static_fraction": 0..1}.
    """
    frames = _frames(video)
    forward, backward = _flows_for(frames, flows, method)
    change = np.abs(np.diff(frames.astype(np.float64), axis=0)).mean(-1)  # (F-1, H, W)
    static = (np.linalg.norm(forward, axis=-1) < static_px) & (np.linalg.norm(backward, axis=-1) < static_px)
    return {"flicker": _ratio(float(change[static].sum()), int(static.sum())),
            "static_fraction": float(static.mean())}


def dynamic_degree(video, *, method: str = "farneback", moving_px: float | None = None,
                   top_fraction: float = 0.05, flows=None) -> dict:
    """How much the clip moves: mean of the largest flow magnitudes per frame pair, and how many pairs move.

    Args:
        video: uint8 (F, H, W, 3) frames or a float (C, F, H, W) clip in [-1, 1]; F >= 2.
        method: flow method. top_fraction: share of the largest magnitudes averaged per pair (0, 1].
        moving_px: a pair moves when its value exceeds this (default 6 * min(H, W) / 256, VBench's threshold).
        flows: optional (forward, backward) from `flow.video_flows`.

    Returns:
        {"dynamic_degree": px/frame >= 0, "moving_fraction": 0..1, "mean_flow": px/frame >= 0}.
    """
    if not 0 < top_fraction <= 1:
        raise ValueError(f"top_fraction must be in (0, 1]; got {top_fraction}")
    frames = _frames(video)
    forward, _ = _flows_for(frames, flows, method)
    moving_px = 6.0 * min(frames.shape[1:3]) / 256 if moving_px is None else moving_px
    magnitude = np.linalg.norm(forward, axis=-1).reshape(len(forward), -1)  # (F-1, H*W)
    k = max(1, math.ceil(top_fraction * magnitude.shape[1]))
    per_pair = np.sort(magnitude, axis=1)[:, -k:].mean(axis=1)              # (F-1,)
    return {"dynamic_degree": float(per_pair.mean()), "moving_fraction": float((per_pair > moving_px).mean()),
            "mean_flow": float(magnitude.mean())}


def temporal_report(video, *, method: str = "farneback", static_px: float = 0.2, moving_px: float | None = None,
                    top_fraction: float = 0.05) -> dict:
    """All temporal metrics of one clip from one flow computation (see the module docstring for each key).

    Args:
        video: uint8 (F, H, W, 3) frames or a float (C, F, H, W) clip in [-1, 1]; F >= 2.

    Returns:
        {"frames", "height", "width", "warping_error", "occluded_fraction", "flicker", "static_fraction",
         "dynamic_degree", "moving_fraction", "mean_flow"}.
    """
    frames = _frames(video)
    flows = video_flows(frames, method)
    return {"frames": len(frames), "height": frames.shape[1], "width": frames.shape[2],
            **warping_error(frames, flows=flows),
            **flicker(frames, static_px=static_px, flows=flows),
            **dynamic_degree(frames, moving_px=moving_px, top_fraction=top_fraction, flows=flows)}


def evaluate_videos(folder: str | os.PathLike, *, method: str = "farneback", num_frames: int | None = None,
                    static_px: float = 0.2, moving_px: float | None = None, top_fraction: float = 0.05,
                    progress: bool = False) -> dict:
    """Temporal metrics of every video file in a folder (not its subfolders), with the settings that made them.

    Entries with a video suffix (VIDEO_SUFFIXES) are read with `read_video`; those that cannot be read or scored
    are skipped and reported with the reason, and so are symlink loops, dangling links, FIFOs and unreadable
    files (checked with `skips.entry_problem`, never opened). Hidden files and other suffixes are listed as
    ignored; subfolders are passed over.

    Args:
        folder: the folder. num_frames: read at most this many frames of each video (None: all).
        method, static_px, moving_px, top_fraction: as in `temporal_report`.
        progress: show a progress bar (one step per video) on stderr.

    Returns:
        {"folder", "settings": {...}, "videos": {file name: temporal_report}, "mean": {metric: mean over scored
         videos, ignoring NaN}, "skipped": {file name: reason}, "ignored": [file names]}.
    """
    from tqdm import tqdm

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder; pass the folder that holds the videos to evaluate")
    if method not in FLOW_METHODS:
        raise ValueError(f"unknown flow method '{method}'; choose one of {', '.join(FLOW_METHODS)}")
    settings = {"method": method, "num_frames": num_frames, "static_px": static_px, "moving_px": moving_px,
                "top_fraction": top_fraction}
    videos, skipped, ignored, todo = {}, {}, [], []
    for path in sorted(folder.iterdir()):
        if path.is_dir():  # follows links; False for a loop or a dangling link, which are reported below
            continue
        if path.name.startswith(".") or path.suffix.lower() not in VIDEO_SUFFIXES:
            ignored.append(path.name)
            continue
        problem = entry_problem(path)
        if problem is None:
            todo.append(path)
        else:
            skipped[path.name] = problem
    for path in tqdm(todo, unit="video", disable=not progress):
        try:
            frames = read_video(path, num_frames=num_frames)
            videos[path.name] = temporal_report(frames, method=method, static_px=static_px, moving_px=moving_px,
                                                top_fraction=top_fraction)
        except (ValueError, require_cv2().error) as e:  # VideoReadError is a ValueError; so is a one-frame clip
            skipped[path.name] = f"{type(e).__name__}: {e}"
    metrics = ("warping_error", "occluded_fraction", "flicker", "static_fraction", "dynamic_degree",
               "moving_fraction", "mean_flow")
    mean = {}
    for m in metrics:
        values = [r[m] for r in videos.values() if not math.isnan(r[m])]
        mean[m] = float(np.mean(values)) if values else math.nan
    return {"folder": str(folder), "settings": settings, "videos": videos, "mean": mean, "skipped": skipped,
            "ignored": ignored}
