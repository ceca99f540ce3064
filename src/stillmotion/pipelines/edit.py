"""Text-guided editing of a video: start the sampler part-way down its schedule from the given clip, not from noise.

Two ways to reach the starting point, both built from the text-to-video pipe's pieces (its conditions, guidance,
schedule and samplers; nothing here overwrites the network's estimates):

  sdedit     SDEdit (Meng et al. 2022, "SDEdit: Guided Image Synthesis and Editing with Stochastic Differential
             Equations"): add Gaussian noise up to the level sigma_k of the schedule and denoise with the new
             prompt. The noise erases detail below sigma_k, and with it, at high strength, where the object was.
  inversion  DDIM inversion (diffusion/inversion.py): run the probability-flow ODE upward from the clip to sigma_k
             with the source prompt (guidance 1), then sample down with the new prompt. The starting point is the
             clip's own noise, so what the prompts share (path, shape, motion) is carried through the round trip.

`strength` picks where on the `steps`-step schedule the edit starts, as diffusers' img2img does, the last
strength * steps steps run, but continuously: at position (1 - strength) * steps of the schedule, between two of its
levels, the start is their geometric interpolation and the first step is the shorter one (`edit_sigmas`). Strength 1
starts at sigma_max (SDEdit: from pure noise), strength -> 0 returns (nearly) the clip itself, and on the grid
(strength * steps whole) the edit runs exactly the schedule's tail. Every frame is edited jointly; no frame is kept
as given.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from stillmotion.diffusion.guidance import cfg_denoiser
from stillmotion.diffusion.inversion import invert_euler
from stillmotion.diffusion.noise_warp import warped_noise
from stillmotion.diffusion.samplers import sample
from stillmotion.diffusion.schedules import get_sigmas
from stillmotion.pipelines.sampling import SamplingConfig

MODES = ("sdedit", "inversion")
DEFAULT_SAMPLER = {"sdedit": "dpmpp-2m", "inversion": "euler"}  # inversion undoes Euler steps; they must match


def check_strength(strength: float) -> float:
    """`strength` as a float in (0, 1], else a ValueError that says so."""
    strength = float(strength)
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength must be in (0, 1] (got {strength}): 0.3 keeps the clip nearly as it is, 1 starts "
                         "from the top of the noise schedule")
    return strength


def edit_sigmas(sigmas: Tensor, strength: float) -> Tensor:
    """The part of a sampling schedule an edit of `strength` runs.

    Args:
        sigmas: (steps + 1,) a decreasing schedule ending in 0 (schedules.get_sigmas).
        strength: in (0, 1].

    Returns:
        (K + 1,) from the level at position p = (1 - strength) * steps down to 0: sigmas[p:] when p is whole, else
        the geometric mean sigmas[k]^(1 - t) sigmas[k + 1]^t (k = floor p, t = p - k; linear below sigma_min)
        followed by sigmas[k + 1:]. K = ceil(strength * steps) steps.
    """
    strength = check_strength(strength)
    steps = len(sigmas) - 1
    pos = (1.0 - strength) * steps
    k = math.floor(pos + 1e-9)
    t = max(pos - k, 0.0)
    if t < 1e-9:
        return sigmas[k:]
    lo, hi = sigmas[k + 1], sigmas[k]
    start = hi * (1 - t) if lo == 0 else hi ** (1 - t) * lo ** t
    return torch.cat([start.view(1), sigmas[k + 1:]])


@torch.inference_mode()
def edit_sweep(pipe, video: Tensor, prompt: str | list[str], strengths, *, mode: str = "inversion",
               source_prompt: str | list[str] = "", sampling: SamplingConfig | None = None,
               inversion_guidance: float = 1.0, iterations: int = 0, seed: int = 0,
               callback=None) -> dict[float, Tensor]:
    """Edit a batch of clips at several strengths, sharing the noise (sdedit) or the inversion (one run up to the
    highest strength passes through every lower one's starting point).

    Args:
        pipe: a `TextToVideo` (its denoiser, text encoder, `conditions`).
        video: (B, 3, F, H, W) clips in [-1, 1]; any F (the network takes other frame counts).
        prompt: the edit prompt, one or B of them.
        strengths: values in (0, 1].
        mode: "sdedit" or "inversion".
        source_prompt: what the clip shows, for inversion ("" = the unconditional model, as guidance uses it).
        sampling: the sampler, the steps of the full schedule (an edit runs the last strength * steps of them,
            `edit_sigmas`), the guidance scale while sampling with the edit prompt, the schedule; the strategy
            is not used. None: `edit_sampling(pipe, mode)`.
        inversion_guidance: guidance scale while inverting (1: the source prompt alone, which inverts best).
        iterations: fixed-point corrections per inversion step (diffusion/inversion.py; 0: plain DDIM inversion).
        seed: the SDEdit noise (inversion is deterministic).
        callback: passed to the samplers.

    Returns:
        {strength: (B, 3, F, H, W) edited clips in [-1, 1]}.
    """
    if mode not in MODES:
        raise ValueError(f"unknown edit mode '{mode}'; choose one of: {', '.join(MODES)}")
    sampling = sampling or edit_sampling(pipe, mode)
    if video.dim() != 5 or video.shape[1] != 3:
        raise ValueError(f"video must be (B, 3, F, H, W); got {tuple(video.shape)}")
    b, device = video.shape[0], pipe.device
    prompts = _batch(prompt, b, "prompt")
    video = video.to(device, torch.float32)
    sigmas = get_sigmas(sampling.schedule, sampling.steps).to(device)      # (steps + 1,) decreasing, ends in 0
    runs = {float(s): edit_sigmas(sigmas, s) for s in strengths}            # strength -> its levels down to 0
    cond, uncond, displacement = pipe.conditions(prompts)
    denoise = cfg_denoiser(pipe.denoiser, cond, uncond, sampling.guidance)
    if mode == "sdedit":
        g = torch.Generator(device).manual_seed(seed)
        noise = warped_noise(torch.randn(video.shape, generator=g, device=device), displacement, sampling.noise_warp,
                             generator=g)                                   # (B, 3, F, H, W), as TextToVideo draws
        begin = {s: video + run[0].float() * noise for s, run in runs.items()}
    else:
        begin = _inverted(pipe, video, _batch(source_prompt, b, "source_prompt"), sigmas, runs, inversion_guidance,
                          iterations)
    # each strength samples with its own generator (ancestral samplers): a sweep gives what single edits give
    return {s: sample(sampling.sampler, denoise, begin[s], run, generator=torch.Generator(device).manual_seed(seed + 1),
                      callback=callback).clamp(-1, 1) for s, run in runs.items()}


def edit_sampling(pipe, mode: str) -> SamplingConfig:
    """The model's sampling settings with the edit mode's sampler (DEFAULT_SAMPLER)."""
    return pipe.sampling.merged(sampler=DEFAULT_SAMPLER[mode])


def edit_video(pipe, video: Tensor, prompt: str | list[str], *, strength: float = 0.6, **options) -> Tensor:
    """Edit (B, 3, F, H, W) clips in [-1, 1] with the prompt at one strength; options as `edit_sweep`.

    Returns:
        (B, 3, F, H, W) edited clips in [-1, 1].
    """
    strength = check_strength(strength)
    return edit_sweep(pipe, video, prompt, [strength], **options)[strength]


def _inverted(pipe, video: Tensor, sources: list[str], sigmas: Tensor, runs: dict[float, Tensor], guidance: float,
              iterations: int) -> dict[float, Tensor]:
    """Each run's starting point on the clip's ODE trajectory with the source prompts: {strength: x at run[0]}.

    One inversion up the schedule's grid serves every strength; a start between two grid levels adds one step from
    the level below it, so each strength gets exactly what inverting along its own run would give.
    """
    cond, uncond, _ = pipe.conditions(sources)
    if not any(s.strip() for s in sources):  # the empty prompt: the unconditional branch exactly (no planned hint)
        cond = uncond
    denoise = cfg_denoiser(pipe.denoiser, cond, uncond, guidance)
    last = len(sigmas) - 1                                                  # index of sigma = 0
    first = {s: len(sigmas) - len(run) for s, run in runs.items()}          # grid index k of each run's start
    on_grid = {s: bool(run[0] == sigmas[first[s]]) for s, run in runs.items()}
    top = min(k if on_grid[s] else k + 1 for s, k in first.items())
    states = {last: video}

    def keep(info: dict) -> None:
        states[last - 1 - info["i"]] = info["x"].float()                    # step i reaches sigmas[last - 1 - i]
    if top < last:
        invert_euler(denoise, video, sigmas[top:].flip(0), iterations=iterations, callback=keep)
    return {s: states[first[s]] if on_grid[s] else
            invert_euler(denoise, states[first[s] + 1], run[:2].flip(0), iterations=iterations).float()
            for s, run in runs.items()}


def _batch(text: str | list[str], b: int, name: str) -> list[str]:
    texts = [text] * b if isinstance(text, str) else list(text)
    if len(texts) != b:
        raise ValueError(f"{len(texts)} values of {name} for {b} clips")
    return texts
