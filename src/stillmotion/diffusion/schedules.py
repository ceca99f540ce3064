"""Noise schedules in one currency: sigma.

Every noise level in stillmotion is a VE/EDM sigma: a noisy sample is `x = x0 + sigma * eps`. A VP
(DDPM-style) model trained on `x_vp = sqrt(alphabar) * x0 + sqrt(1 - alphabar) * eps` sees the same thing
scaled: `x_vp = x / sqrt(1 + sigma^2)` with `sigma = sqrt((1 - alphabar) / alphabar)` (Karras et al. 2022,
"Elucidating the Design Space of Diffusion-Based Generative Models", Sec. 2 and Table 1). So a VP
schedule is only a list of sigmas, and one sampler serves both families.

All arithmetic here is float64. Sampling schedules are 1-D, decreasing, and end with an appended 0.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

VP_KINDS = ("cosine", "linear", "scaled_linear")
SPACINGS = ("trailing", "leading", "linspace")


# ---------------------------------------------------------------------------------------------------------
# VP (discrete-time) schedules
# ---------------------------------------------------------------------------------------------------------
def vp_alphas_cumprod(kind: str = "cosine", num_train_steps: int = 1000, beta_start: float = 0.0001,
                      beta_end: float = 0.02) -> Tensor:
    """alphabar_t for t = 0 .. num_train_steps - 1, as diffusers defines them (but in float64).

    Args:
        kind: "linear" (DDPM: betas linear in [beta_start, beta_end]), "scaled_linear" (Stable Diffusion:
            sqrt(beta) linear), or "cosine" (Nichol & Dhariwal 2021; diffusers' "squaredcos_cap_v2":
            alphabar(u) = cos^2((u + 0.008) / 1.008 * pi / 2), betas capped at 0.999).
        num_train_steps: number of training timesteps T.
        beta_start, beta_end: ends of the linear schedules (ignored by "cosine").

    Returns:
        (T,) float64, decreasing in t.
    """
    n = num_train_steps
    if kind == "linear":
        betas = torch.linspace(beta_start, beta_end, n, dtype=torch.float64)
    elif kind == "scaled_linear":
        betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, n, dtype=torch.float64) ** 2
    elif kind == "cosine":
        def alphabar(u: float) -> float:
            return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
        betas = torch.tensor([min(1 - alphabar((i + 1) / n) / alphabar(i / n), 0.999) for i in range(n)],
                             dtype=torch.float64)
    else:
        raise ValueError(f"vp_alphas_cumprod: unknown kind {kind!r}; expected one of {VP_KINDS}")
    return torch.cumprod(1 - betas, dim=0)


def alphas_cumprod_to_sigmas(alphas_cumprod: Tensor) -> Tensor:
    """sigma = sqrt((1 - alphabar) / alphabar), elementwise, float64."""
    a = torch.as_tensor(alphas_cumprod, dtype=torch.float64)
    return ((1 - a) / a).sqrt()


def sigmas_to_alphas_cumprod(sigmas: Tensor) -> Tensor:
    """alphabar = 1 / (1 + sigma^2), elementwise, float64 (the inverse of `alphas_cumprod_to_sigmas`)."""
    s = torch.as_tensor(sigmas, dtype=torch.float64)
    return 1 / (1 + s ** 2)


def vp_timesteps(n: int, num_train_steps: int = 1000, spacing: str = "trailing",
                 steps_offset: int = 0) -> Tensor:
    """The n sampling timesteps diffusers' DDIM/Euler schedulers pick, decreasing, float64.

    Spacings (Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps are Flawed", Table 2):
      "trailing": round(arange(T, 0, -T/n)) - 1, so the first step is the last training timestep T-1.
      "leading":  arange(n) * (T // n) + steps_offset, reversed (first step below T-1: never pure noise).
      "linspace": linspace(0, T-1, n) reversed, left fractional (as diffusers' Euler scheduler does).

    Returns:
        (n,) float64 timesteps in [0, T-1].
    """
    t_max = num_train_steps
    if not 1 <= n <= t_max:
        raise ValueError(f"vp_timesteps: need 1 <= n <= num_train_steps={t_max}, got n={n}")
    if spacing == "trailing":
        ts = torch.arange(t_max, 0, -t_max / n, dtype=torch.float64).round() - 1
    elif spacing == "leading":
        ts = (torch.arange(n, dtype=torch.float64) * (t_max // n)).round().flip(0) + steps_offset
    elif spacing == "linspace":
        ts = torch.linspace(0, t_max - 1, n, dtype=torch.float64).flip(0)
    else:
        raise ValueError(f"vp_timesteps: unknown spacing {spacing!r}; expected one of {SPACINGS}")
    return ts


def vp_sigmas(n: int, alphas_cumprod: Tensor, spacing: str = "trailing", steps_offset: int = 0) -> Tensor:
    """Sampling sigmas of a trained VP model at the timesteps diffusers would pick, plus a final 0.

    Fractional timesteps ("linspace") interpolate sigma linearly between training steps, like diffusers'
    EulerDiscreteScheduler. Integer timesteps give exactly `alphas_cumprod_to_sigmas(alphas_cumprod)[t]`.

    Args:
        n: number of sampling steps.
        alphas_cumprod: (T,) alphabar of the trained model (e.g. from `vp_alphas_cumprod`).
        spacing: "trailing" | "leading" | "linspace" (see `vp_timesteps`).
        steps_offset: added to "leading" timesteps (Stable Diffusion uses 1).

    Returns:
        (n + 1,) float64, decreasing, last entry 0.
    """
    train_sigmas = alphas_cumprod_to_sigmas(alphas_cumprod)
    ts = vp_timesteps(n, len(train_sigmas), spacing, steps_offset)
    lo = ts.floor().long().clamp(max=len(train_sigmas) - 1)
    hi = ts.ceil().long().clamp(max=len(train_sigmas) - 1)
    w = ts - lo
    sigmas = (1 - w) * train_sigmas[lo] + w * train_sigmas[hi]
    return _append_zero(sigmas)


# ---------------------------------------------------------------------------------------------------------
# Continuous (EDM-style) schedules
# ---------------------------------------------------------------------------------------------------------
def karras_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> Tensor:
    """Karras et al. 2022, Eq. 5: sigma_i = (smax^(1/rho) + i/(n-1) (smin^(1/rho) - smax^(1/rho)))^rho.

    Returns:
        (n + 1,) float64, decreasing from sigma_max to sigma_min, then 0.
    """
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return _append_zero((hi + ramp * (lo - hi)) ** rho)


def loglinear_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0) -> Tensor:
    """Sigmas evenly spaced in log sigma (equal steps in the DPM-Solver time lambda = -log sigma).

    Returns:
        (n + 1,) float64, decreasing from sigma_max to sigma_min, then 0.
    """
    log_sigmas = torch.linspace(math.log(sigma_max), math.log(sigma_min), n, dtype=torch.float64)
    return _append_zero(log_sigmas.exp())


SCHEDULES = {"karras": karras_sigmas, "loglinear": loglinear_sigmas, "vp": vp_sigmas}


def get_sigmas(name: str, n: int, **kw) -> Tensor:
    """Sampling sigmas by schedule name: `get_sigmas("karras", 20, sigma_max=80)`.

    Names: "karras", "loglinear", "vp" (needs `alphas_cumprod=`). Returns (n + 1,) float64 ending in 0.
    """
    if name not in SCHEDULES:
        raise ValueError(f"get_sigmas: unknown schedule {name!r}; choose one of {sorted(SCHEDULES)}")
    return SCHEDULES[name](n, **kw)


# ---------------------------------------------------------------------------------------------------------
# Training-time sigma distributions
# ---------------------------------------------------------------------------------------------------------
_TRAINING_DEFAULTS = {
    # EDM (Karras et al. 2022, Table 1): ln sigma ~ N(P_mean, P_std^2).
    "lognormal": {"P_mean": -1.2, "P_std": 1.2},
    # t ~ U(0, 1), sigma = tan(pi/2 t): the cosine schedule (alphabar = cos^2(pi/2 t)) written in sigma.
    # `shift` > 1 moves mass to higher noise for larger resolutions (Hoogeboom et al. 2023, simple diffusion).
    "cosine": {"sigma_min": 0.002, "sigma_max": 80.0, "shift": 1.0},
    # log sigma ~ U(log sigma_min, log sigma_max).
    "uniform_log": {"sigma_min": 0.002, "sigma_max": 80.0},
}


def sample_training_sigmas(n: int, kind: str = "lognormal", generator: torch.Generator | None = None,
                           device: torch.device | str | None = None, **params) -> Tensor:
    """Draw n training noise levels.

    Args:
        n: how many (usually the batch size).
        kind: "lognormal" (params P_mean=-1.2, P_std=1.2), "cosine" (sigma_min=0.002, sigma_max=80, shift=1)
            or "uniform_log" (sigma_min=0.002, sigma_max=80).
        generator: torch.Generator for reproducible draws (must live on `device`).
        device: where to create the sigmas (default: CPU).
        **params: overrides of the kind's parameters above.

    Returns:
        (n,) float64 sigmas > 0.

    Note: for "cosine" the shift is applied before clipping, so [sigma_min, sigma_max] stays the range the
    network is trained on whatever the shift.
    """
    if kind not in _TRAINING_DEFAULTS:
        raise ValueError(f"sample_training_sigmas: unknown kind {kind!r}; "
                         f"choose one of {sorted(_TRAINING_DEFAULTS)}")
    unknown = set(params) - set(_TRAINING_DEFAULTS[kind])
    if unknown:
        raise TypeError(f"sample_training_sigmas(kind={kind!r}): unknown parameter(s) {sorted(unknown)}; "
                        f"it accepts {sorted(_TRAINING_DEFAULTS[kind])}")
    p = {**_TRAINING_DEFAULTS[kind], **params}
    opts = dict(generator=generator, device=device, dtype=torch.float64)
    if kind == "lognormal":
        return (p["P_mean"] + p["P_std"] * torch.randn(n, **opts)).exp()
    if kind == "cosine":
        u = torch.rand(n, **opts)
        sigma = torch.tan(math.pi / 2 * u) * p["shift"]
        return sigma.clamp(p["sigma_min"], p["sigma_max"])
    lo, hi = math.log(p["sigma_min"]), math.log(p["sigma_max"])
    return (lo + (hi - lo) * torch.rand(n, **opts)).exp()


def _append_zero(sigmas: Tensor) -> Tensor:
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def compute_dtype(device: torch.device | str | None) -> torch.dtype:
    """float64 for schedule/solver arithmetic, except on Apple MPS which has no float64 (float32 there)."""
    return torch.float32 if torch.device(device or "cpu").type == "mps" else torch.float64
