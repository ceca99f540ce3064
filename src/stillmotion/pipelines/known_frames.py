"""Known frames from a file: image-to-video, continuing a video, and filling in between keyframes.

All three are the same call, text-to-video with some frames given (`TextToVideo(..., known_frames, frame_mask)`);
only which frames are known differs. `keep` names them:

  first      frame 0 (image-to-video; the only choice for an image file)
  first:K    frames 0 .. K-1 of the video (prediction: continue it)
  every:N    frames 0, N, 2N, ... and the last (keyframes; the model fills the frames in between)

The model must have been trained with the matching frame task (train/tasks.py: i2v, predict, interpolate).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from stillmotion.data.folder import crop_resize
from stillmotion.data.images import read_image
from stillmotion.data.video_io import read_video, to_float

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def keep_mask(keep: str, frames: int) -> torch.Tensor:
    """(F,) float mask of the frames a `keep` spec names (see the module docstring)."""
    kind, _, arg = keep.partition(":")
    mask = torch.zeros(frames)
    try:
        n = int(arg) if arg else None
    except ValueError:
        n = -1
    if kind == "first" and n is None:
        mask[0] = 1
    elif kind == "first" and n is not None and 1 <= n < frames:
        mask[:n] = 1
    elif kind == "every" and n is not None and 2 <= n < frames:
        mask[::n] = 1
        mask[-1] = 1
    else:
        raise ValueError(f"keep '{keep}' is not one of: first, first:K (1 <= K < {frames}), every:N "
                         f"(2 <= N < {frames}), for a {frames}-frame clip")
    return mask


def keep_task(keep: str) -> str:
    """The frame task (train/tasks.py) a `keep` spec asks the model for."""
    kind, _, arg = keep.partition(":")
    if kind == "every":
        return "interpolate"
    return "i2v" if arg in ("", "1") else "predict"


TASK_WORDS = {"i2v": "image-to-video", "predict": "continuing a video", "interpolate": "filling in between keyframes"}


def untrained_task(info: dict, keep: str) -> str | None:
    """Why a model (its checkpoint config `info`) cannot do what `keep` asks, or None when it was trained for it.

    A model that never saw known frames keeps them (they are pasted in) but draws the rest as if they were not
    there: an image given for frame 0 is followed by an unrelated clip. Continuing from one frame is
    image-to-video, so either task serves `first`. A config without a training record is given the benefit
    of the doubt.
    """
    if not isinstance(info.get("train"), dict):
        return None
    tasks = info["train"].get("tasks") or {"t2v": 1.0}  # the default of TrainConfig.tasks
    task = keep_task(keep)
    serving = ("i2v", "predict") if task == "i2v" else (task,)
    if any(float(tasks.get(t, 0)) > 0 for t in serving):
        return None
    return (f"this model was not trained for {TASK_WORDS[task]} (its config.json's train.tasks {tasks} has no "
            f"'{task}' weight), so it would keep the given frames and draw the rest unrelated to them")


def load_known_frames(path: str | os.PathLike, keep: str, frames: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Read the known frames from an image or a video, cropped and resized to the model's size.

    Returns:
        known (1, 3, F, size, size) in [-1, 1] (zeros where unknown) and frame_mask (1, F).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: '{path}'; give an image ({', '.join(IMAGE_SUFFIXES)}) or a video")
    mask = keep_mask(keep, frames)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        if keep != "first":
            raise ValueError(f"'{path.name}' is an image: it can only be the first frame (keep 'first', not '{keep}')")
        source = read_image(path)[None]  # (1, H, W, 3), every mode and bit depth (data/images.py)
    else:
        needed = int(torch.nonzero(mask).max()) + 1
        source = read_video(path, num_frames=needed)  # (<= needed, H, W, 3)
        if len(source) < needed:
            raise ValueError(f"'{path.name}' has {len(source)} frames; keep '{keep}' needs {needed} of them")
    source = crop_resize(source, (size, size))  # (n, size, size, 3)
    video = np.zeros((frames, size, size, 3), np.uint8)
    idx = torch.nonzero(mask).flatten().numpy()
    video[idx] = source[idx] if len(source) > 1 else source[0]
    return to_float(video)[None], mask[None]
