"""The low-noise probe: how much of the added noise a denoiser keeps, on the object and on the background.

At sigma 0.02-0.2 a noisy clip of the shapes world still shows its scene almost exactly (flat palette colours on a
flat background), so an ideal denoiser returns the clean clip and keeps none of the noise. A network that has not
learnt to draw flat colour passes the noise through instead, and the sampler's last steps then leave it in every
frame: textured objects and outlines that change from frame to frame, which warping error counts (docs/motion.md,
experiment 16). For clean clips x and noise n (unit Gaussian), the estimate's error is regressed on the noise,

    e = D(x + sigma n) - x = a + beta sigma n + rest,    beta = cov(e, sigma n) / var(sigma n),

separately over the object's pixels (brighter than `threshold` in some channel, as `probe.read_clip` finds the
object) and the background's; the intercept a keeps a colour that is off by the same amount everywhere from being
read as noise. beta = 0: the noise is removed; 1: passed through; `rest_levels` is the RMS of what is left besides
the noise (a wrong colour, edges), in 0..255 levels.

    python -m stillmotion.eval.kept_noise [MODEL]
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch
from torch import Tensor

from stillmotion.data.video_io import to_float
from stillmotion.eval.editing import THRESHOLD, edit_cases

KEPT_SIGMAS = (0.02, 0.05, 0.2)


def kept_noise(denoise: Callable[[Tensor, Tensor], Tensor], clean: Tensor, sigma: float, *,
               generator: torch.Generator, threshold: int = THRESHOLD) -> dict:
    """The share of noise a denoiser keeps at one level.

    Args:
        denoise: D(x, sigma) -> the clean estimate, both (B, 3, F, H, W) in [-1, 1] units.
        clean: (B, 3, F, H, W) clips in [-1, 1].
        sigma: the noise level.
        generator: for the noise.
        threshold: 0..255; a pixel brighter than it in some channel of the clean clip is the object's.

    Returns:
        {"object": beta, "background": beta, "object_rest_levels", "background_rest_levels"}; a region with no
        pixel gets NaN.
    """
    noise = sigma * torch.randn(clean.shape, generator=generator).to(clean)
    error = (denoise(clean + noise, torch.tensor(sigma, device=clean.device)) - clean).float()
    on_object = (clean.amax(1, keepdim=True) > threshold / 127.5 - 1).expand_as(clean)
    out = {}
    for name, region in (("object", on_object), ("background", ~on_object)):
        e, n = error[region].double(), noise[region].double()
        if not n.numel():
            out[name] = out[f"{name}_rest_levels"] = float("nan")
            continue
        centred = n - n.mean()
        out[name] = beta = float((e * centred).sum() / (centred * centred).sum())
        out[f"{name}_rest_levels"] = float((e - beta * n).pow(2).mean().sqrt() * 127.5)
    return out


@torch.inference_mode()
def evaluate_kept_noise(pipe, *, n: int = 32, sigmas=KEPT_SIGMAS, seed: int = 0, batch: int = 16,
                        group: str = "black") -> dict:
    """The probe of a pipeline's denoiser on n held-out world clips, conditioned as sampling conditions them (the
    caption and any planned hint), without guidance, `batch` clips per forward pass; `group` is the clips'
    backgrounds ("black", what the shipped model was trained on, or "other": gray, gradient and noise). JSON-able.

    Returns:
        {"n", "sigmas", "object": {sigma: beta}, "background": {sigma: beta}, "object_rest_levels": {sigma: levels}}.
    """
    cases = edit_cases(n, seed=seed, group=group, frames=pipe.frames, size=pipe.size)    # held-out, one object
    clips = torch.stack([to_float(c.video) for c in cases]).to(pipe.device)              # (n, 3, F, H, W)
    cond = pipe.conditions([c.source for c in cases])[0]                                 # each clip's caption

    def denoise(x: Tensor, sigma: Tensor) -> Tensor:
        return torch.cat([pipe.denoiser(x[i:i + batch], sigma, cond[i:i + batch]) for i in range(0, n, batch)])
    out = {"n": n, "sigmas": list(sigmas), "object": {}, "background": {}, "object_rest_levels": {}}
    for sigma in sigmas:
        kept = kept_noise(denoise, clips, sigma, generator=torch.Generator().manual_seed(seed))
        for key in ("object", "background", "object_rest_levels"):
            out[key][sigma] = kept[key]
    return out


def kept_noise_line(report: dict) -> str:
    """One line for a terminal."""
    return ("low-noise probe (share of the noise the estimate keeps; 0 ideal, 1 passed through): object "
            + " ".join(f"@{s} {v:.2f}" for s, v in report["object"].items()) + "; background "
            + " ".join(f"@{s} {v:.2f}" for s, v in report["background"].items()))


def main(argv: list[str]) -> None:
    from stillmotion.pipelines.text_to_video import load

    try:
        pipe = load(argv[0] if argv else None)
    except (OSError, ValueError) as e:  # a wrong path or a broken checkpoint: one line, as in the CLI
        sys.exit(f"kept_noise: error: {' '.join(str(e).split())}")
    print(kept_noise_line(evaluate_kept_noise(pipe)))


if __name__ == "__main__":
    main(sys.argv[1:])
