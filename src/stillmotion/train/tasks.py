"""Frame tasks: which frames of a training clip are given to the network as known frames.

One network learns text-to-video, image-to-video, prediction and interpolation at once by training on clips
where some frames are known (they enter through `Cond.frames` + `Cond.frame_mask`, and are left out of the
loss), as in masked video diffusion (Voleti et al. 2022, MCVD) and the frame-mask conditioning of
Make-A-Video's interpolation network (Singer et al. 2022):

  t2v          nothing known: the whole clip comes from the text
  i2v          frame 0 known: where the object goes next must come from the text ("moving left")
  predict      the first k frames known, 1 <= k <= F/2: continue a video
  interpolate  k evenly spaced keyframes known, first and last included: fill the frames in between

Known frames also make the text matter more: with the whole clip noisy, the motion of a small object is
decided in a narrow band of noise levels, but with frame 0 known, every later frame follows from the
prompt's direction. `TrainConfig.tasks` weights the four; text-to-video alone is the default.
"""

from __future__ import annotations

import torch

TASKS = ("t2v", "i2v", "predict", "interpolate")


def check_task_weights(weights: dict) -> list[str]:
    """Problems with a {task: weight} dict (empty list when it is fine)."""
    problems = []
    unknown = sorted(set(weights) - set(TASKS))
    if unknown:
        problems.append(f"tasks: unknown task(s) {unknown}; known tasks are {list(TASKS)}")
    if any(float(w) < 0 for w in weights.values()) or sum(float(w) for w in weights.values()) <= 0:
        problems.append(f"tasks: weights must be >= 0 with a positive sum (got {weights})")
    return problems


def draw_task(weights: dict, generator: torch.Generator) -> str:
    """One task, drawn with probability proportional to its weight (one uniform draw from `generator`)."""
    names = [t for t in TASKS if float(weights.get(t, 0)) > 0]
    p = torch.tensor([float(weights[t]) for t in names], dtype=torch.float64)
    u = torch.rand((), generator=generator, dtype=torch.float64)
    return names[int(torch.searchsorted(p.cumsum(0) / p.sum(), u, right=True).clamp(max=len(names) - 1))]


def task_frame_mask(task: str, frames: int, generator: torch.Generator) -> torch.Tensor:
    """(F,) float mask, 1 where the task gives the frame. Never all ones: something is always left to predict.

    A clip of one frame is always text-to-image (there is nothing to condition on).
    """
    mask = torch.zeros(frames)
    if task not in TASKS:
        raise ValueError(f"unknown frame task '{task}'; known tasks are {list(TASKS)}")
    if frames < 2 or task == "t2v":
        return mask
    if task == "i2v":
        mask[0] = 1
    elif task == "predict":
        k = int(torch.randint(1, frames // 2 + 1, (), generator=generator))
        mask[:k] = 1
    elif frames < 3:  # interpolate needs a frame between two keyframes; two frames leave image-to-video
        mask[0] = 1
    else:  # interpolate: k keyframes from first to last, k <= (F + 1) / 2 so some frame lies between two
        k = int(torch.randint(2, (frames + 1) // 2 + 1, (), generator=generator))
        mask[torch.linspace(0, frames - 1, k).round().long()] = 1
    return mask
