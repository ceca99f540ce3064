"""Motion-warped noise: the starting noise of a clip moves the way its content should.

A video model trained on independent noise per frame must decide where the object goes from the text alone, at
the high noise levels where the clip itself shows nothing yet, which is the weakest signal it gets (measured on
the shapes world: a model trained that way kept direction at chance while colour reached 93%). Warped noise makes
motion part of the input instead: frame f's noise is frame 0's noise translated by the clip's displacement so
far, so the noisy clip already drifts the right way at every noise level, and the denoiser only has to keep what
it draws on the drifting pattern. Training warps each clip's noise by the motion measured from its own optical
flow; sampling warps it by the motion asked for (a user's hint, or what the motion planner reads from the
prompt). In the spirit of "How I Warped Your Noise" (Chang et al. 2024) and "Go-with-the-Flow" (Burgert et al.
2025), reduced to one global translation per clip: the frames are integer-pixel windows of one larger noise
canvas that pans along the motion, which keeps every frame's noise exactly N(0, I).

    noise = warped_noise(torch.randn(B, C, F, H, W), displacement, amount=1.0, generator=g)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def frame_shifts(displacement: Tensor, frames: int, height: int, width: int) -> Tensor:
    """Integer pixel shift of every frame: round(u_f * displacement * size), u_f = f / (F - 1).

    Args:
        displacement: (B, 2) [dx, dy] in canvas fractions over the whole clip (x right, y down).

    Returns:
        (B, F, 2) long [shift_x, shift_y] in pixels; frame 0 is never shifted.
    """
    u = torch.linspace(0, 1, frames, dtype=torch.float64)[None, :, None]  # (1, F, 1)
    scale = torch.tensor([width, height], dtype=torch.float64)  # (2,)
    return (u * displacement.detach().double().cpu()[:, None, :] * scale).round().long()  # (B, F, 2)


def moving_noise(displacement: Tensor, shape: tuple[int, int, int, int], generator: torch.Generator | None = None,
                 device=None) -> Tensor:
    """Noise that pans: the frames are windows of one larger N(0, I) canvas, moved along the displacement.

    Frame f's pixel p shows the canvas where frame 0 showed pixel p - shift_f, so the pattern drifts by shift_f;
    what enters at an edge is fresh noise and nothing wraps around (a roll would bring the pattern leaving one edge
    back at the other, where no content ever comes from).

    Args:
        displacement: (2,) [dx, dy] canvas fractions over the clip.
        shape: (C, F, H, W).

    Returns:
        (C, F, H, W) noise, every frame exactly N(0, I).
    """
    channels, frames, height, width = shape
    shifts = frame_shifts(displacement[None], frames, height, width)[0]  # (F, 2)
    low, high = shifts.amin(0).clamp(max=0), shifts.amax(0).clamp(min=0)  # (2,) frame 0 shifts by 0
    extra = (high - low).tolist()  # [extra columns, extra rows]
    canvas = torch.randn(channels, height + extra[1], width + extra[0], generator=generator,
                         device=generator.device if generator is not None else device)  # (C, H', W')
    frames_out = [canvas[:, int(high[1] - sy):int(high[1] - sy) + height, int(high[0] - sx):int(high[0] - sx) + width]
                  for sx, sy in shifts.tolist()]
    return torch.stack(frames_out, dim=1).to(device)  # (C, F, H, W)


def warped_noise(noise: Tensor, displacement: Tensor, amount: float = 1.0,
                 generator: torch.Generator | list[torch.Generator] | None = None) -> Tensor:
    """Noise that follows a translation, mixed with independent noise: a * moving + sqrt(1 - a^2) * noise.

    Each frame stays N(0, I); along the motion, two frames share a fraction a^2 of their noise (a = 1: every frame
    is a window of the same panning canvas; a = 0: `noise` unchanged and nothing is drawn from `generator`).

    Args:
        noise: (B, C, F, H, W) independent N(0, I) noise.
        displacement: (B, 2) [dx, dy] canvas fractions over the clip (train/motion.py hints use the same units).
        amount: a in [0, 1].
        generator: draws the panning canvases, one clip after the other; a list gives each clip its own.

    Returns:
        (B, C, F, H, W), same dtype and device as `noise`.
    """
    if not 0.0 <= amount <= 1.0:
        raise ValueError(f"noise warp amount must be in [0, 1] (got {amount})")
    b, channels, frames, height, width = noise.shape
    if displacement.shape != (b, 2):
        raise ValueError(f"displacement has shape {tuple(displacement.shape)}; expected ({b}, 2) rows [dx, dy]")
    if amount == 0.0 or frames == 1:
        return noise
    gens = generator if isinstance(generator, (list, tuple)) else [generator] * b
    moving = torch.stack([moving_noise(d, (channels, frames, height, width), g, noise.device)
                          for d, g in zip(displacement, gens)])  # (B, C, F, H, W)
    return amount * moving.to(noise.dtype) + math.sqrt(1.0 - amount * amount) * noise
