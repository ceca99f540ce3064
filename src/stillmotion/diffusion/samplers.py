"""Samplers: each one function `sample_x(denoise, x, sigmas, *, generator=None, callback=None, edit=None, **opts)`.

They integrate the probability-flow ODE of Karras et al. 2022 (Eq. 4 with s(t) = 1, sigma(t) = t)

    dx / dsigma = (x - D(x, sigma)) / sigma

(or its ancestral SDE counterpart) from sigmas[0] down to sigmas[-1] (usually 0). `denoise(x, sigma)`
returns x0_hat for a 0-d float64 sigma; wrap a `Denoiser` with `guidance.bind` or `guidance.cfg_denoiser`.
The state x and all step arithmetic are float64 (float32 on MPS); the output has the input's dtype.
Random numbers come only from `generator`, so a seed fixes the result.

Between steps a sampler calls `edit(x, denoised, sigma_next) -> x` if one is given: the one place where a
method may change the state (e.g. replace known frames, RePaint-style, or clamp); the sampler runs once from the
first noise level to the last, so multistep solvers (DPM-Solver++(2M)) keep their history across edits. An edit
that returns x unchanged gives a result bit-identical to no edit. Guidance is not an edit: it wraps `denoise`.

Credit: the structure follows k-diffusion (Crowson, `k_diffusion/sampling.py`) and EDM's `edm_sampler`
(Karras et al. 2022, Algorithm 1); the code is written afresh to this contract.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from stillmotion.diffusion.schedules import compute_dtype

DenoiseFn = Callable[[Tensor, Tensor], Tensor]
Callback = Callable[[dict], None]
# edit(x, denoised, sigma_next) -> x: called after each step with the new state (see the module docstring).
EditFn = Callable[[Tensor, Tensor, Tensor], Tensor]
# step(i, x, sigma, sigma_next, denoised) -> x_next; may call denoise again (Heun) or keep state (DPM++).
StepFn = Callable[[int, Tensor, Tensor, Tensor, Tensor], Tensor]


# ---------------------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------------------
def _integrate(denoise: DenoiseFn, x: Tensor, sigmas: Tensor, step: StepFn,
               callback: Callback | None, edit: EditFn | None = None) -> Tensor:
    """The loop every sampler shares: denoise at sigmas[i], let `step` move x to sigmas[i+1], edit, report."""
    dtype = x.dtype
    work = compute_dtype(x.device)
    sigmas = torch.as_tensor(sigmas, dtype=work, device=x.device)
    if sigmas.dim() != 1 or len(sigmas) < 2 or bool((sigmas[1:] > sigmas[:-1]).any()) or sigmas[-1] < 0:
        raise ValueError("sampler: sigmas must be a 1-D non-increasing tensor of >= 2 noise levels >= 0 "
                         f"(e.g. schedules.karras_sigmas(n)); got {sigmas.tolist()}")
    x = x.to(work)
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = _denoise(denoise, x, sigma)
        x = step(i, x, sigma, sigma_next, denoised)
        if edit is not None:
            x = edit(x, denoised, sigma_next).to(work)
        if callback is not None:
            callback(dict(i=i, x=x, sigma=sigma, sigma_next=sigma_next, denoised=denoised))
    return x.to(dtype)


def _denoise(denoise: DenoiseFn, x: Tensor, sigma: Tensor) -> Tensor:
    return denoise(x, sigma).to(x.dtype)


def _euler(x: Tensor, sigma: Tensor, sigma_next: Tensor, denoised: Tensor) -> Tensor:
    """One Euler step of dx/dsigma = (x - D)/sigma; equivalently x_next = D + sigma_next * eps_hat."""
    return x + (sigma_next - sigma) * (x - denoised) / sigma


def _noise_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def ancestral_step(sigma: Tensor, sigma_next: Tensor, eta: float = 1.0) -> tuple[Tensor, Tensor]:
    """Split a step sigma -> sigma_next into a deterministic part to sigma_down and fresh noise sigma_up.

    DDIM (Song et al. 2021, Eq. 12 and 16) in VP form: x_prev = sqrt(a') x0 + sqrt(1 - a' - s_t^2) eps_hat
    + s_t z with s_t^2 = eta^2 (1 - a')/(1 - a) (1 - a/a'), a = alphabar. Divide by sqrt(a') to reach VE
    scale and substitute a = 1/(1 + sigma^2), a' = 1/(1 + sigma_next^2):

        sigma_up^2   = s_t^2 / a' = eta^2 sigma_next^2 (sigma^2 - sigma_next^2) / sigma^2
        sigma_down^2 = (1 - a' - s_t^2) / a' = sigma_next^2 - sigma_up^2

    so x_next = x0_hat + sigma_down eps_hat + sigma_up z: an Euler step to sigma_down plus noise. The VP
    schedule drops out. For eta > 1, sigma_up is capped at sigma_next.

    Returns:
        (sigma_down, sigma_up), 0-d tensors.
    """
    if sigma_next == 0:
        return sigma_next, sigma_next
    sigma_up = torch.clamp(eta * sigma_next * (sigma ** 2 - sigma_next ** 2).clamp(min=0).sqrt() / sigma,
                           max=sigma_next)
    sigma_down = (sigma_next ** 2 - sigma_up ** 2).sqrt()
    return sigma_down, sigma_up


# ---------------------------------------------------------------------------------------------------------
# Samplers
# ---------------------------------------------------------------------------------------------------------
def sample_euler(denoise: DenoiseFn, x: Tensor, sigmas: Tensor, *, generator: torch.Generator | None = None,
                 callback: Callback | None = None, edit: EditFn | None = None) -> Tensor:
    """Euler's method on the probability-flow ODE (Karras et al. 2022, Algorithm 2 without churn).

    Args:
        denoise: D(x, sigma) -> x0_hat with x (B,C,F,H,W) and sigma a 0-d tensor.
        x: (B, C, F, H, W) initial noise already scaled by sigmas[0].
        sigmas: (N + 1,) decreasing noise levels, usually ending in 0.
        generator: unused (deterministic); kept for the common signature.
        callback: called after each step with dict(i, x, sigma, sigma_next, denoised).
        edit: called after each step, before the callback: x = edit(x, denoised, sigma_next) (module docstring).

    Returns:
        (B, C, F, H, W) the sample at sigmas[-1].
    """
    def step(i, x, sigma, sigma_next, denoised):
        return _euler(x, sigma, sigma_next, denoised)
    return _integrate(denoise, x, sigmas, step, callback, edit)


def sample_heun(denoise: DenoiseFn, x: Tensor, sigmas: Tensor, *, generator: torch.Generator | None = None,
                callback: Callback | None = None, edit: EditFn | None = None) -> Tensor:
    """Heun's 2nd-order method (Karras et al. 2022, Algorithm 1 with S_churn = 0); 2N - 1 evaluations.

    Same arguments as `sample_euler`. The step to sigma = 0 is a plain Euler step (no slope at sigma = 0).
    """
    def step(i, x, sigma, sigma_next, denoised):
        x_euler = _euler(x, sigma, sigma_next, denoised)             # Alg. 1 line 5-6: predictor
        if sigma_next == 0:
            return x_euler
        d = (x - denoised) / sigma
        d_next = (x_euler - _denoise(denoise, x_euler, sigma_next)) / sigma_next  # line 8: slope at the end
        return x + (sigma_next - sigma) * (d + d_next) / 2          # line 9: trapezoidal corrector
    return _integrate(denoise, x, sigmas, step, callback, edit)


def sample_ddim(denoise: DenoiseFn, x: Tensor, sigmas: Tensor, *, generator: torch.Generator | None = None,
                callback: Callback | None = None, edit: EditFn | None = None,
                eta: float = 0.0) -> Tensor:
    """DDIM (Song et al. 2021) in sigma space.

    eta = 0 is deterministic DDIM, which is exactly Euler in sigma: x_next = x0_hat + sigma_next * eps_hat.
    eta > 0 adds DDIM's stochasticity (see `ancestral_step` for the derivation); eta = 1 is DDPM ancestral
    sampling (`sample_ddpm`).

    Args:
        eta: stochasticity, 0 (deterministic) to 1 (DDPM).
        Others as `sample_euler`; `generator` draws the fresh noise.
    """
    def step(i, x, sigma, sigma_next, denoised):
        sigma_down, sigma_up = ancestral_step(sigma, sigma_next, eta)
        x = _euler(x, sigma, sigma_down, denoised)
        if sigma_up > 0:
            x = x + sigma_up * _noise_like(x, generator)
        return x
    return _integrate(denoise, x, sigmas, step, callback, edit)


def sample_ddpm(denoise: DenoiseFn, x: Tensor, sigmas: Tensor, *, generator: torch.Generator | None = None,
                callback: Callback | None = None, edit: EditFn | None = None) -> Tensor:
    """Ancestral DDPM sampling (Ho et al. 2020): draw x_next from the posterior q(x_next | x, x0 = x0_hat).

    In sigma space x = x_next + sqrt(sigma^2 - sigma_next^2) n, so Gaussian conditioning gives
        mean = x0_hat + r^2 (x - x0_hat),   std = sigma_next sqrt(1 - r^2),   r = sigma_next / sigma,
    which is DDPM's posterior mean/variance (beta_tilde) divided by sqrt(alphabar_next). It equals
    `sample_ddim(eta=1)` exactly (same generator -> same output); written out here as the reference.

    Same arguments as `sample_euler`; `generator` draws the fresh noise.
    """
    def step(i, x, sigma, sigma_next, denoised):
        r2 = (sigma_next / sigma) ** 2
        x = denoised + r2 * (x - denoised)
        if sigma_next > 0:
            x = x + sigma_next * (1 - r2).sqrt() * _noise_like(x, generator)
        return x
    return _integrate(denoise, x, sigmas, step, callback, edit)


def sample_dpmpp_2m(denoise: DenoiseFn, x: Tensor, sigmas: Tensor, *,
                    generator: torch.Generator | None = None, callback: Callback | None = None,
                    edit: EditFn | None = None) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2), multistep 2nd order in x0 space.

    With lambda = -log sigma and h = lambda_next - lambda, the exact solution of the ODE with D frozen is
    x_next = (sigma_next / sigma) x - expm1(-h) D. 2M replaces D by the linear extrapolation
    D_d = (1 + 1/(2r)) D_i - 1/(2r) D_{i-1}, r = h_{i-1} / h_i. First step and the step to sigma = 0 are first
    order (at sigma_next = 0 the update is x_next = D). In VP variables this is the same update as diffusers'
    `DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2)`: dividing its
    x_t = (s_t/s_s) x_s - alpha_t expm1(-h) D by alpha_t gives the VE form above.

    Same arguments as `sample_euler`.
    """
    prev: dict[str, Tensor] = {}  # denoised and lambda of the previous step

    def step(i, x, sigma, sigma_next, denoised):
        if sigma_next == 0:
            return denoised
        lam, lam_next = -sigma.log(), -sigma_next.log()
        h = lam_next - lam
        d = denoised
        if prev:
            r = (lam - prev["lam"]) / h
            d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * prev["denoised"]
        prev.update(denoised=denoised, lam=lam)
        return (sigma_next / sigma) * x - torch.expm1(-h) * d
    return _integrate(denoise, x, sigmas, step, callback, edit)


SAMPLERS: dict[str, Callable[..., Tensor]] = {
    "euler": sample_euler,
    "heun": sample_heun,
    "ddim": sample_ddim,
    "ddpm": sample_ddpm,
    "dpmpp-2m": sample_dpmpp_2m,
}


def sample(name: str, denoise: DenoiseFn, x: Tensor, sigmas: Tensor, *,
           generator: torch.Generator | None = None, callback: Callback | None = None, edit: EditFn | None = None,
           **options) -> Tensor:
    """Run the sampler called `name` (a key of `SAMPLERS`); `edit` runs between steps; options (e.g. eta=) go to it."""
    if name not in SAMPLERS:
        raise ValueError(f"sample: unknown sampler {name!r}; choose one of {sorted(SAMPLERS)}")
    return SAMPLERS[name](denoise, x, sigmas, generator=generator, callback=callback, edit=edit, **options)
