"""Deterministic inversion: run the probability-flow ODE backwards, from a clean video up to a noise level.

The samplers (samplers.py) integrate dx/dsigma = (x - D(x, sigma)) / sigma from high sigma down to 0. Because the
ODE is deterministic, it can be integrated the other way: a video x0 becomes the noise x_sigma from which the
sampler returns (nearly) x0. Sampling from x_sigma with another prompt then changes what the prompt asks for and
keeps what the ODE carries unchanged: layout, path, motion (DDIM inversion: Song et al. 2021, "Denoising Diffusion
Implicit Models", Sec. 4.3; used for editing by Mokady et al. 2023, "Null-text Inversion", and for video by
Qi et al. 2023, "FateZero").

`invert_euler` undoes `samplers.sample_euler` (= deterministic `sample_ddim`) step by step, on the same sigmas
in increasing order. The sampler's step from sigma_hi down to sigma_lo is

    x_lo = x_hi + (sigma_lo - sigma_hi) d(x_hi, sigma_hi),    d(x, sigma) = (x - D(x, sigma)) / sigma,

so undoing it means solving for x_hi given x_lo. Plain DDIM inversion uses the slope at the known end,
x_hi ~ x_lo + (sigma_hi - sigma_lo) d(x_lo, sigma_lo), which is off by O(step^2) per step (so a round trip is off
by O(step) overall; more steps, smaller error). `iterations` > 0 then solves the step exactly by the fixed-point
iteration x_hi <- x_lo - (sigma_lo - sigma_hi) d(x_hi, sigma_hi) (Pan et al. 2023, "Effective Real Image Editing
with Accelerated Iterative Diffusion Inversion"; Garibi et al. 2024, "ReNoise"): it contracts by
(1 - sigma_lo / sigma_hi) |1 - dD/dx| < 1 per iteration for any denoiser whose Jacobian has eigenvalues in (0, 2)
(about 0.5-0.7 per iteration on a coarse 8-20 step Karras schedule, so ~10 iterations reach 1e-3), and each
iteration costs one more network evaluation per step.

At sigma = 0 the slope is undefined: the first step up from sigmas[0] = 0 starts from x itself (the sampler's
last step to 0 returns D(x, sigma_min) ~ x at the smallest sigma; its error is about sigma_min, 0.002 for the
Karras schedule), which the fixed-point iterations then correct like any other step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from stillmotion.diffusion.samplers import Callback, DenoiseFn
from stillmotion.diffusion.schedules import compute_dtype


def invert_euler(denoise: DenoiseFn, x: Tensor, sigmas: Tensor, *, iterations: int = 0,
                 callback: Callback | None = None) -> Tensor:
    """Integrate the probability-flow ODE upward: the inverse of `sample_euler` on the same sigmas.

    Args:
        denoise: D(x, sigma) -> x0_hat with x (B, C, F, H, W) and sigma a 0-d float64 tensor (as the samplers).
        x: (B, C, F, H, W) the clean video (at sigmas[0], usually 0).
        sigmas: (N + 1,) increasing noise levels, e.g. a sampler's schedule tail flipped: `sigmas[k:].flip(0)`.
        iterations: fixed-point corrections per step (0: plain DDIM inversion; each one shrinks the round trip's
            error with `sample_euler` by the contraction factor above). Network evaluations: N (+ N * iterations),
            one fewer when sigmas[0] = 0.
        callback: called after each step with dict(i, x, sigma, sigma_next) (x at sigma_next).

    Returns:
        (B, C, F, H, W) x at sigmas[-1], in x's dtype; sampling it with `sample_euler(denoise, ., sigmas.flip(0))`
        gives x back (exactly, up to the iterations' convergence; to O(step) without them).
    """
    if iterations < 0:
        raise ValueError(f"invert_euler: iterations must be >= 0 (got {iterations})")
    dtype, work = x.dtype, compute_dtype(x.device)
    sigmas = torch.as_tensor(sigmas, dtype=work, device=x.device)
    if sigmas.dim() != 1 or len(sigmas) < 2 or bool((sigmas[1:] <= sigmas[:-1]).any()) or sigmas[0] < 0:
        raise ValueError("invert_euler: sigmas must be a 1-D increasing tensor of >= 2 noise levels >= 0 (a "
                         f"sampler's schedule flipped, e.g. get_sigmas('karras', n).flip(0)); got {sigmas.tolist()}")
    x = x.to(work)
    for i in range(len(sigmas) - 1):
        lo, hi = sigmas[i], sigmas[i + 1]
        y = x if lo == 0 else x + (hi - lo) * _slope(denoise, x, lo)   # predictor: DDIM inversion
        for _ in range(iterations):                                      # corrector: solve the sampler's step
            y = x + (hi - lo) * _slope(denoise, y, hi)
        x = y
        if callback is not None:
            callback(dict(i=i, x=x, sigma=lo, sigma_next=hi))
    return x.to(dtype)


def _slope(denoise: DenoiseFn, x: Tensor, sigma: Tensor) -> Tensor:
    """d(x, sigma) = (x - D(x, sigma)) / sigma: the ODE's dx/dsigma (Karras et al. 2022, Eq. 4 with s = 1)."""
    return (x - denoise(x, sigma).to(x.dtype)) / sigma
