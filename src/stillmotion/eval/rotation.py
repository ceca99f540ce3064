"""How far, and how steadily, a single object turns over a clip: the rotation that best carries each frame onto the
next, tracked and summed.

Why: a mask that changes shape while held still is not yet a turn. The model's drawings wobble (their outline
shifts by a pixel from frame to frame), which made `probe.read_motion`'s mask test read 0.72-0.81 of clips asked
to sit still as rotating, while the object's tracked turn was 4-7 degrees with no steady sense (the world's own
rotating clips: 60-150 degrees, always one way). docs/motion.md has the experiment.

The angle is found by alignment, not from the mask's principal axis, which squares and equilateral triangles do
not have (their second moments are isotropic).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def centred(img: torch.Tensor) -> torch.Tensor:
    """(F, 1, H, W) brightness in [0, 1] -> each frame shifted (sub-pixel) so that its centroid is the centre."""
    f, _, h, w = img.shape
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    mass = img.sum((1, 2, 3)).clamp_min(1e-6)
    cx, cy = (img[:, 0] * xs).sum((1, 2)) / mass, (img[:, 0] * ys).sum((1, 2)) / mass
    grid = torch.stack([xs, ys], -1)[None].repeat(f, 1, 1, 1) + torch.stack([cx, cy], -1)[:, None, None]
    return F.grid_sample(img, grid, align_corners=True)


def rotations(angles_deg: torch.Tensor) -> torch.Tensor:
    """(A,) degrees -> (A, 2, 3) affine matrices for F.affine_grid."""
    rad = torch.deg2rad(angles_deg)
    theta = torch.zeros(len(angles_deg), 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = rad.cos(), -rad.sin(), rad.sin(), rad.cos()
    return theta


@torch.no_grad()
def tracked_turn(video: np.ndarray, max_step_deg: int = 20) -> tuple[float, float]:
    """The turn of a single-object clip: (total degrees, consistency).

    For each pair of neighbouring frames, the rotation in whole degrees (|angle| <= max_step_deg; the world turns
    at most 10 degrees a frame) of the earlier centred frame that best matches the later one; total = their sum,
    consistency = |total| / sum of |steps| (1: one steady sense of turning, about 0: jitter).

    Args:
        video: (F, H, W, 3) uint8 on a dark background.
    """
    img = torch.from_numpy(video.max(-1).astype(np.float32) / 255)[:, None]      # (F, 1, H, W)
    img = centred(F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False))
    angles = torch.arange(-max_step_deg, max_step_deg + 1, dtype=torch.float32)  # (A,)
    grid = F.affine_grid(rotations(angles), (len(angles), 1, *img.shape[2:]), align_corners=False)
    steps = []
    for f in range(1, len(img)):
        turned = F.grid_sample(img[f - 1:f].expand(len(angles), -1, -1, -1), grid, align_corners=False)
        steps.append(float(angles[int(((turned - img[f:f + 1]) ** 2).sum((1, 2, 3)).argmin())]))
    total = float(np.sum(steps)) if steps else 0.0
    return total, abs(total) / max(float(np.abs(steps).sum()) if steps else 0.0, 1e-6)
