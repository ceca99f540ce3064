"""docs/motion.md, experiment 16: where along the noise levels is the wobble of the model's outlines made?

    python docs/experiments/wobble.py [MODEL] [--n 32] [--seed 1]

On n held-out world clips (single objects on black, `eval/editing.edit_cases`), with each clip's caption:
  1. SDEdit from each level of the default 20-step schedule (the model's sampler and guidance): warping error of the
     result against the world's own clips; the lower the start, the fewer steps the model draws.
  2. The one-call clean estimate D(x + sigma n) (no guidance), each clip denoised whole (F = 16) or each frame alone
     (F = 1: the same weights, temporal layers off), with the same noise: the error on the background, the 2-pixel
     band around the outline and the object's inside (0..255 levels), and the estimates' warping error. Where the
     two agree, the network draws each frame's outline from that frame alone.
"""

import argparse

import cv2
import numpy as np
import torch

from stillmotion.data.video_io import to_float, to_uint8
from stillmotion.diffusion.schedules import get_sigmas
from stillmotion.eval.editing import THRESHOLD, edit_cases
from stillmotion.eval.temporal import warping_error
from stillmotion.pipelines.edit import edit_sweep
from stillmotion.pipelines.text_to_video import load

STRENGTHS = (0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 1.0)   # starts at sigma 0.099, 0.38, 1.19, 3.17, 7.47, 16, 80
LEVELS = (0.05, 0.2, 0.4, 1.0, 3.0)
CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def dilate(mask: np.ndarray, iterations: int) -> np.ndarray:
    return cv2.dilate(mask.astype(np.uint8), CROSS, iterations=iterations) > 0


def erode(mask: np.ndarray) -> np.ndarray:
    """One step with the 4-neighbour cross; outside the frame counts as background."""
    return cv2.erode(mask.astype(np.uint8), CROSS, borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0


def region_errors(estimate: np.ndarray, clean: np.ndarray) -> list[float]:
    """Mean absolute error (levels) on the background, the outline band and the inside; (F, H, W, 3) uint8 each."""
    error = np.abs(estimate.astype(float) - clean.astype(float)).mean(-1)
    on = clean.max(-1) > THRESHOLD  # the object, as the pixel probe finds it
    band = np.stack([dilate(m, 2) & ~erode(m) for m in on])
    background = ~np.stack([dilate(m, 2) for m in on])
    return [float(error[r].mean()) for r in (background, band, on & ~band)]


def warping(clips) -> float:
    return float(np.mean([warping_error(c)["warping_error"] for c in clips]))


def sdedit_levels(pipe, clean, captions, seed: int) -> None:
    sigmas = get_sigmas(pipe.sampling.schedule, pipe.sampling.steps)
    edits = {s: [] for s in STRENGTHS}
    for i in range(0, len(clean), 16):
        out = edit_sweep(pipe, clean[i:i + 16], captions[i:i + 16], STRENGTHS, mode="sdedit", sampling=pipe.sampling,
                         seed=seed + i)
        for s in STRENGTHS:
            edits[s] += list(to_uint8(out[s].cpu()))
    print(f"world's own clips: warping error {warping(to_uint8(clean)):.2f}")
    for s in STRENGTHS:
        start = float(sigmas[round((1 - s) * pipe.sampling.steps)])
        print(f"SDEdit from sigma {start:6.3g} ({round(s * pipe.sampling.steps):2d} steps): warping error "
              f"{warping(edits[s]):.2f}")


@torch.inference_mode()
def joint_or_alone(pipe, clean, captions, seed: int) -> None:
    cond, frames, truth = pipe.conditions(captions)[0], clean.shape[2], to_uint8(clean)
    for sigma in LEVELS:
        x = clean + sigma * torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed))
        level = torch.tensor(sigma)
        joint = torch.cat([pipe.denoiser(x[i:i + 16], level, cond[i:i + 16]) for i in range(0, len(x), 16)])
        alone = torch.stack([pipe.denoiser(x[:, :, f:f + 1], level, cond)[:, :, 0] for f in range(frames)], 2)
        for name, estimate in (("whole clip", joint), ("frame alone", alone)):
            est = to_uint8(estimate.clamp(-1, 1))
            bg, band, inside = np.mean([region_errors(e, t) for e, t in zip(est, truth)], 0)
            print(f"sigma {sigma:4}: {name:11s} error background {bg:5.2f}, outline {band:5.2f}, inside "
                  f"{inside:5.2f}; warping error {warping(est):.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", default=None, help="checkpoint or run folder (default: the shipped model)")
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe = load(args.model)
    cases = edit_cases(args.n, seed=args.seed, group="black", frames=pipe.frames, size=pipe.size)
    clean, captions = torch.stack([to_float(c.video) for c in cases]), [c.source for c in cases]
    sdedit_levels(pipe, clean, captions, args.seed)
    joint_or_alone(pipe, clean, captions, args.seed)


if __name__ == "__main__":
    main()
