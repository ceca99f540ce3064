"""Scoring in-betweens: fill the frames between a clip's keyframes, compare with the true frames (PSNR / SSIM).

Held-out shapes-world clips (seeds 10^9 + seed + i, never training examples), keyframes every `every` frames plus
the last one (0, 5, 10, 15 of 16). Three ways to fill the rest, scored only on the frames that were not given:
  diffusion   a model's own interpolation: known keyframes through Cond, the clip's caption as the prompt (the
              model must have been trained with the "interpolate" frame task)
  flow        OpenCV optical flow between neighbouring keyframes, bidirectional warping and blending
              (pipelines/flow_interpolation.py)
  crossfade   a linear blend of the two neighbouring keyframes
"""

from __future__ import annotations

import numpy as np
import torch

from stillmotion.data.video_io import to_float, to_uint8
from stillmotion.data.worlds import get_world
from stillmotion.eval.reconstruction import psnr, ssim
from stillmotion.pipelines.flow_interpolation import flow_interpolate

HELDOUT_SEED = 10**9


def keyframe_mask(frames: int, every: int) -> np.ndarray:
    """(F,) bool: every `every`-th frame and the last one."""
    known = np.zeros(frames, bool)
    known[::every] = True
    known[-1] = True
    return known


def crossfade(video: np.ndarray, known: np.ndarray) -> np.ndarray:
    """(F, H, W, 3) uint8 with each unknown frame a linear blend of its two neighbouring known frames."""
    out = video.copy()
    keys = np.flatnonzero(known)
    for a, b in zip(keys[:-1], keys[1:]):
        for i in range(a + 1, b):
            t = (i - a) / (b - a)
            out[i] = np.rint((1 - t) * video[a] + t * video[b])
    return out


def score_interpolation(pipe=None, *, n: int = 32, every: int = 5, steps: int = 20, seed: int = 0,
                        frames: int = 16, size: int = 32) -> dict:
    """PSNR (pooled over all filled frames) and mean SSIM of each way of filling in; `pipe` None skips diffusion."""
    if pipe is not None:
        frames, size = pipe.frames, pipe.size
    world = get_world("shapes", size=size, frames=frames, p_two=0.0)
    clips = [world.sample(HELDOUT_SEED + seed + i) for i in range(n)]
    known = keyframe_mask(frames, every)
    ways = {"flow": [flow_interpolate(c.video, known) for c in clips],
            "crossfade": [crossfade(c.video, known) for c in clips]}
    if pipe is not None:
        videos = torch.stack([to_float(c.video) for c in clips])  # (N, C, F, H, W)
        mask = torch.from_numpy(known).float().expand(n, -1)
        made = [pipe([c.caption for c in clips[i:i + 16]], known_frames=videos[i:i + 16], frame_mask=mask[i:i + 16],
                     steps=steps, seed=seed + i, progress=False) for i in range(0, n, 16)]
        ways = {"diffusion": list(to_uint8(torch.cat(made))), **ways}
    truth = np.concatenate([c.video[~known] for c in clips])
    return {"protocol": {"n": n, "keyframes": np.flatnonzero(known).tolist(), "seeds": f"{HELDOUT_SEED + seed} + i",
                         "steps": steps, "scored": "the frames that were not given"},
            **{name: {"psnr": float(psnr(np.concatenate([o[~known] for o in outs]), truth)),
                      "ssim": float(np.mean([ssim(o[~known], c.video[~known]) for o, c in zip(outs, clips)]))}
               for name, outs in ways.items()}}
