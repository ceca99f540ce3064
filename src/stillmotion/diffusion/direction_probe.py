"""The high-noise direction probe: does the denoiser's clean estimate move the way the text says?

At high noise (sigma 20-80 for 32x32 clips of small objects) the noisy clip shows almost nothing, so whether
"moving left" and "moving right" lead to different clips is decided by the text alone. The ideal denoiser's
estimate there is E[x0 | text]: a blur over every start, speed and size the text allows, whose centre of mass
travels with the asked direction. A network that has not learned motion returns the same blur for both.

    probe = direction_probe(denoiser, encode, sigmas=(20, 40, 80), n=8)
    probe["x"]["40"]   # mean over the noise draws of (right - left) centroid travel at sigma 40, in pixels

`travel` measures a clip the same way for the estimate and for real clips (eval/motion_probe.py computes the
ideal from the world's own clips): the mass-weighted centroid of the bright part of every frame, averaged over
the last third of the frames minus over the first third.

Only forward passes, no sampling: it is cheap enough to log during training (train/loop.py).
"""

from __future__ import annotations

import torch
from torch import Tensor

# opposite directions along each axis, and the prompt wording they are asked with
AXES = {"x": ("left", "right"), "y": ("up", "down")}
PROBE_SIGMAS = (20.0, 40.0, 80.0)


def travel(video: Tensor) -> Tensor:
    """Centroid travel of the bright part of each clip, last third of the frames minus first third.

    Args:
        video: (B, C, F, H, W) in [-1, 1] (a clean estimate or real clips).

    Returns:
        (B, 2) travel (dx, dy) in pixels (x right, y down).
    """
    b, _, f, h, w = video.shape
    bright = video.amax(dim=1)  # (B, F, H, W): an object's brightest channel stands out in any colour
    floor = bright.flatten(1).median(dim=1).values  # (B,) the background level
    mass = (bright - floor[:, None, None, None]).clamp(min=0)  # (B, F, H, W)
    total = mass.sum(dim=(2, 3)).clamp(min=1e-8)  # (B, F)
    xs = torch.arange(w, dtype=mass.dtype, device=mass.device) + 0.5
    ys = torch.arange(h, dtype=mass.dtype, device=mass.device) + 0.5
    cx = (mass.sum(dim=2) * xs).sum(-1) / total  # (B, F)
    cy = (mass.sum(dim=3) * ys).sum(-1) / total  # (B, F)
    third = max(f // 3, 1)
    centre = torch.stack([cx, cy], dim=-1)  # (B, F, 2)
    return centre[:, -third:].mean(1) - centre[:, :third].mean(1)  # (B, 2)


@torch.no_grad()
def direction_probe(denoise, encode, *, subjects: list[str], frames: int, size: int,
                    sigmas=PROBE_SIGMAS, n: int = 4, data_mean: float = 0.0, seed: int = 0,
                    first_frames: Tensor | None = None) -> dict:
    """Separation of opposite directions in the clean estimate at high noise.

    For each axis (left/right, up/down), each subject ("a red circle") and each of `n` noise draws, the same noisy
    clip x = data_mean + sigma * eps is denoised once with "<subject> moving <a>" and once with
    "<subject> moving <b>"; the probe is the mean of travel(b) - travel(a) along that axis.

    Args:
        denoise: D(x, sigma, cond) -> x0 (a `Denoiser`, no guidance: the estimate itself).
        encode: prompts -> `Cond` (a pipeline's `encode`).
        subjects: noun phrases to ask about.
        frames, size: the clip shape.
        sigmas: noise levels.
        n: noise draws per subject and level.
        data_mean: where the data's mass sits (the denoiser's `data_mean`): at high noise x ~ data_mean + noise.
        first_frames: (S, C, H, W), one per subject: give each clip's frame 0 as a known frame (image-to-video;
            the ideal is then the travel from that frame, about the same separation). None: text-to-video.

    Returns:
        {"x": {str(sigma): pixels}, "y": {...}}: the separation along each axis at each level.
    """
    device = next(denoise.parameters()).device
    g = torch.Generator().manual_seed(seed)
    out = {}
    for axis, (a, b) in AXES.items():
        k = 0 if axis == "x" else 1
        prompts = [f"{s} moving {d}" for d in (a, b) for s in subjects for _ in range(n)]  # (2 * S * n,)
        cond = encode(prompts)
        if first_frames is not None:  # frame 0 of every clip known: (2 S n, C, F, H, W) and mask (2 S n, F)
            first = first_frames.repeat_interleave(n, 0).repeat(2, 1, 1, 1).to(device)  # (2 S n, C, H, W)
            cond.frames = torch.zeros(len(prompts), first.shape[1], frames, size, size, device=device)
            cond.frames[:, :, 0] = first
            cond.frame_mask = torch.zeros(len(prompts), frames, device=device)
            cond.frame_mask[:, 0] = 1
        out[axis] = {}
        for sigma in sigmas:
            eps = torch.randn(len(subjects) * n, 3, frames, size, size, generator=g)  # shared by a and b
            x = (data_mean + sigma * torch.cat([eps, eps])).to(device)  # (2 S n, 3, F, H, W)
            sig = torch.full((x.shape[0],), float(sigma), device=device)
            moved = travel(denoise(x, sig, cond).float())[:, k]  # (2 S n,)
            out[axis][f"{sigma:g}"] = float((moved[len(eps):] - moved[:len(eps)]).mean())
    return out


def ideal_separation(clips_moving) -> dict:
    """What `direction_probe` reads from the ideal estimate E[x0 | direction]: the travel of the mean clip.

    Args:
        clips_moving: direction -> (N, C, F, H, W) real clips moving that way, in [-1, 1]
            (e.g. from `stillmotion.data.shapes.direction_clips`).

    Returns:
        {"x": pixels, "y": pixels}: travel(mean of b's clips) - travel(mean of a's clips) along each axis.
    """
    out = {}
    for axis, (a, b) in AXES.items():
        k = 0 if axis == "x" else 1
        mean = torch.stack([clips_moving(d).float().mean(0) for d in (a, b)])  # (2, C, F, H, W)
        moved = travel(mean)[:, k]
        out[axis] = float(moved[1] - moved[0])
    return out
