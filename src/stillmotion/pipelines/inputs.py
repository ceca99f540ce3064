"""A user's own image or video, fitted to a model's canvas, with a note that says what was done to it.

The applications (animate, extend, interpolate, edit) take any file: an image of any size, mode or bit depth
(`data/images.py`), or any video FFmpeg reads. Each is cut to the model's square canvas the way the training data
was (the largest centred square, resized with antialiasing: `data.folder.crop_resize`) and, for videos, its frames
are taken evenly from the whole file when there are more than asked for. Nothing here is silent: every function
returns, beside the frames, one line that says what it did, which the commands print.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from stillmotion.data.folder import crop_resize
from stillmotion.data.images import read_image
from stillmotion.data.video_io import probe_video, read_video

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def fit_canvas(frames: np.ndarray, size: int) -> tuple[np.ndarray, str]:
    """(F, H, W, 3) uint8 -> (F, size, size, 3) uint8: the centred square, resized; and what was done."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"fit_canvas: frames must be (F, H, W, 3) uint8; got {frames.shape} {frames.dtype}")
    _, h, w, _ = frames.shape
    side = min(h, w)
    steps = [f"{w}x{h}"]
    if h != w:
        steps.append(f"centre crop {side}x{side}")
    if side != size:
        steps.append(f"resized to {size}x{size}")
    note = " -> ".join(steps) if len(steps) > 1 else f"{w}x{h} (the model's canvas already)"
    return crop_resize(frames, (size, size)), note


def even_frames(count: int, wanted: int) -> np.ndarray:
    """Indices of `wanted` frames spread evenly over `count` (all of them, in order, when count <= wanted)."""
    if count <= wanted:
        return np.arange(count)
    return np.round(np.linspace(0, count - 1, wanted)).astype(int)


def read_input_image(path: str | os.PathLike, size: int) -> tuple[np.ndarray, str]:
    """An image file as one frame (1, size, size, 3) uint8, and a note of the crop and resize."""
    path = _existing(path)
    frames, note = fit_canvas(read_image(path)[None], size)
    return frames, f"'{path.name}': {note}"


def read_input_video(path: str | os.PathLike, size: int, *, frames: int | None = None,
                     min_frames: int = 1) -> tuple[np.ndarray, str]:
    """A video file as (F, size, size, 3) uint8, and a note of what was done to it.

    Args:
        frames: the most frames wanted; a longer video gives that many, spread evenly over its length
            (None: every frame).
        min_frames: fewer frames than this is an error that says so (e.g. 2 for in-betweens).
    """
    path = _existing(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise ValueError(f"'{path.name}' is an image; this command needs a video (an .mp4, .gif, .webm, ...)")
    count = probe_video(path).num_frames  # a VideoReadError (a ValueError) names a corrupt file
    stride = max(1, count // (2 * frames)) if frames else 1  # decode no more than twice what is kept
    video = read_video(path, stride=stride)
    count = len(video)
    if count < min_frames:
        raise ValueError(f"'{path.name}' has {count} frame(s); this needs at least {min_frames}")
    keep = even_frames(count, frames) if frames is not None else np.arange(count)
    video, note = fit_canvas(video[keep], size)
    total = count * stride
    took = f"{count} frames" if len(keep) == total else f"{len(keep)} of its ~{total} frames, evenly spaced"
    return video, f"'{path.name}': {took}, {note}"


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: '{path}'")
    return path
