"""Guidance: wrap a denoiser D(x, sigma, cond) into the `denoise(x, sigma)` the samplers call.

Classifier-free guidance (Ho & Salimans 2022): D_cfg = D_u + s (D_c - D_u), with D_c conditional and D_u
unconditional (or negative-prompt) predictions. The scale may differ per frame, e.g. a ramp that guides
frames far from a known first frame harder (Blattmann et al. 2023, Stable Video Diffusion).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from stillmotion.cond import Cond

DenoiserFn = Callable[[Tensor, Tensor, Cond | None], Tensor]
DenoiseFn = Callable[[Tensor, Tensor], Tensor]


def bind(denoiser: DenoiserFn, cond: Cond | None) -> DenoiseFn:
    """No guidance: fix the conditioning. Returns denoise(x, sigma) = denoiser(x, sigma, cond)."""
    def denoise(x: Tensor, sigma: Tensor) -> Tensor:
        return denoiser(x, sigma, cond)
    return denoise


def cfg_denoiser(denoiser: DenoiserFn, cond: Cond | None, uncond: Cond | None,
                 scale: float | Tensor) -> DenoiseFn:
    """Classifier-free guidance as a denoise(x, sigma) callable.

    Args:
        denoiser: D(x, sigma, cond) -> x0_hat, e.g. a `Denoiser`.
        cond: the conditioning, batch B.
        uncond: the unconditional conditioning (empty prompt) or a negative prompt; batch B or 1
            (a batch of 1 is repeated to B).
        scale: guidance scale s: a float, an (F,) tensor (one per frame) or a (B, F) tensor.
            s = 1 everywhere returns the conditional denoiser (one forward pass, no unconditional one).

    Returns:
        denoise(x, sigma) computing D_u + s (D_c - D_u) with one batched forward pass of size 2B on
        `Cond.cat([cond, uncond])` and x repeated; the scale broadcasts to (B, C, F, H, W).
    """
    if _all_ones(scale):
        return bind(denoiser, cond)
    cond = cond if cond is not None else Cond()
    uncond = uncond if uncond is not None else Cond()

    def denoise(x: Tensor, sigma: Tensor) -> Tensor:
        b, f = x.shape[0], x.shape[2]
        un = uncond
        if un.batch_size == 1 and b > 1:
            un = un.map(lambda t: t.expand(b, *t.shape[1:]))
        both = Cond.cat([cond, un])                                        # batch 2B: [cond; uncond]
        s = torch.as_tensor(sigma)
        s2 = s if s.dim() == 0 else torch.cat([s, s], dim=0)               # (), (2B,) or (2B, F)
        d_cond, d_uncond = denoiser(torch.cat([x, x], dim=0), s2, both).chunk(2, dim=0)
        w = _scale_like(scale, b, f, d_cond)
        return d_uncond + w * (d_cond - d_uncond)
    return denoise


def _all_ones(scale: float | Tensor) -> bool:
    return bool((torch.as_tensor(scale) == 1).all())


def _scale_like(scale: float | Tensor, b: int, f: int, like: Tensor) -> Tensor | float:
    """float -> float; (F,) -> (1,1,F,1,1); (B,F) -> (B,1,F,1,1), on like's device/dtype."""
    if not torch.is_tensor(scale) or scale.dim() == 0:
        return float(scale)
    w = scale.to(device=like.device, dtype=like.dtype)
    if w.shape == (f,):
        return w.view(1, 1, f, 1, 1)
    if w.shape == (b, f):
        return w.view(b, 1, f, 1, 1)
    raise ValueError(f"cfg_denoiser: scale must be a float, an (F,)=({f},) or a (B, F)=({b}, {f}) tensor; "
                     f"got shape {tuple(w.shape)}")
