"""A training-time optical-flow consistency term: the predicted clean clip should move the way the real clip moves.

For each training clip, OpenCV flow between neighbouring frames (stillmotion/flow.py: Farnebäck, forward and
backward, with the forward-backward occlusion check) says where every visible pixel of frame f + 1 was in frame f.
The denoiser's prediction x0_hat is then asked to agree with itself along that flow:

    L_flow = mean over f, visible p of  || x0_hat[f + 1](p) - x0_hat[f](p + bw_f(p)) ||^2

(bilinear backward warp with `grid_sample`, differentiable in x0_hat; occluded and out-of-frame pixels are left
out). It penalises flicker and objects that teleport or change colour between frames even where the per-pixel
denoising loss is content with a blurry average. The prediction is only a clean clip at low noise (at high noise it
is the posterior mean, which need not follow any one clip's flow), so each clip's term is weighted by
1 / (1 + sigma^2), i.e. ~1 below sigma 1 and ~0 above sigma 5.

Flow is computed from the clean training clip (the data), never from the prediction, so it is a fixed target per
clip. It costs ~2 x (F - 1) OpenCV calls per clip, made in the training process when the batch is built. The
flows are a function of the clip alone, so `FlowCache` keeps them for clips that come back (`clip_pool`, video
folders over several epochs); clips of a synthetic world are new every step and gain nothing.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from stillmotion.flow import video_flows, visible


def clip_flow(video: np.ndarray, method: str = "farneback") -> tuple[np.ndarray, np.ndarray]:
    """Backward flow and visibility of one clip.

    Args:
        video: (F, H, W, 3) uint8 frames, F >= 2.

    Returns:
        backward (F - 1, H, W, 2) float32: frame f + 1's pixel p was at p + backward[f](p) in frame f;
        seen (F - 1, H, W) bool: p is visible in both frames (not occluded, not outside).
    """
    forward, backward = video_flows(video, method)
    seen = np.stack([visible(fw, bw) for fw, bw in zip(forward, backward)])
    return backward.astype(np.float32), seen


class FlowCache:
    """Flows of clips, least recently used out. A clip is found by its key (e.g. its example seed) *and* a digest
    of its pixels: two runs in one process (an experiment's arms, a test session) can give the same seed to
    different clips (another world, size or frame count), and must never read each other's flows."""

    def __init__(self, size: int = 4096, method: str = "farneback"):
        self.size, self.method = size, method
        self._items: OrderedDict = OrderedDict()

    def __call__(self, key, video: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        key = (key, video.shape, hashlib.blake2b(np.ascontiguousarray(video).tobytes(), digest_size=16).digest())
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = clip_flow(video, self.method)
        self._items[key] = value
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return value


def warp_frames(frames: Tensor, flow: Tensor) -> Tensor:
    """Differentiable bilinear backward warp: out(p) = frames(p + flow(p)), border values outside.

    Args:
        frames: (N, C, H, W). flow: (N, H, W, 2) displacements (dx, dy) in pixels.

    Returns:
        (N, C, H, W).
    """
    n, _, h, w = frames.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=frames.device, dtype=frames.dtype),
                            torch.arange(w, device=frames.device, dtype=frames.dtype), indexing="ij")
    x = (xs + flow[..., 0].to(frames.dtype)) * (2 / max(w - 1, 1)) - 1  # align_corners=True coordinates
    y = (ys + flow[..., 1].to(frames.dtype)) * (2 / max(h - 1, 1)) - 1
    return F.grid_sample(frames, torch.stack([x, y], dim=-1), mode="bilinear", padding_mode="border",
                         align_corners=True)


def flow_consistency_loss(x0_hat: Tensor, backward: Tensor, seen: Tensor) -> Tensor:
    """Per-clip flow consistency of a predicted clip (see the module docstring).

    Args:
        x0_hat: (B, C, F, H, W) predicted clean clips.
        backward: (B, F - 1, H, W, 2) backward flows of the real clips (`clip_flow`).
        seen: (B, F - 1, H, W) bool visibility.

    Returns:
        (B,) mean squared difference over visible pixels and channels (0 for a clip with none).
    """
    b, c, f, h, w = x0_hat.shape
    if backward.shape != (b, f - 1, h, w, 2) or seen.shape != (b, f - 1, h, w):
        raise ValueError(f"flow_consistency_loss: for clips {tuple(x0_hat.shape)} expected flows "
                         f"{(b, f - 1, h, w, 2)} and visibility {(b, f - 1, h, w)}; got {tuple(backward.shape)} "
                         f"and {tuple(seen.shape)}")
    prev = x0_hat[:, :, :-1].transpose(1, 2).reshape(b * (f - 1), c, h, w)  # frames f
    nxt = x0_hat[:, :, 1:].transpose(1, 2).reshape(b * (f - 1), c, h, w)    # frames f + 1
    warped = warp_frames(prev, backward.reshape(b * (f - 1), h, w, 2))
    mask = seen.reshape(b * (f - 1), 1, h, w).to(x0_hat.dtype)
    err = ((nxt - warped) ** 2 * mask).reshape(b, f - 1, c, h, w).sum(dim=(1, 2, 3, 4))
    count = mask.reshape(b, -1).sum(1) * c
    return err / count.clamp(min=1)


def noise_weight(sigma: Tensor) -> Tensor:
    """1 / (1 + sigma^2) per clip: the term counts where x0_hat is a clean clip, not a posterior mean."""
    return 1.0 / (1.0 + sigma.double() ** 2)
