"""docs/applications.md, editing: is it the motion hint or the words that make the empty source prompt invert worse?

    python docs/experiments/empty_source.py 128 0 "empty + edit prompt's hint" "empty" "caption"

Inversion edits at strength 0.55 of held-out clips on black (as `stillmotion experiment edit`: 20 Euler steps,
guidance 3, 8 fixed-point corrections), inverted with: the caption; the empty prompt (the unconditional branch: no
tokens and no motion hint); or the empty prompt's tokens with the motion hint the planner reads from the edit prompt.
"""

import sys
import time

import torch

from stillmotion.data.video_io import to_float, to_uint8
from stillmotion.diffusion.guidance import cfg_denoiser
from stillmotion.diffusion.samplers import sample
from stillmotion.diffusion.schedules import get_sigmas
from stillmotion.eval.editing import edit_cases, score_edits
from stillmotion.pipelines.edit import _inverted, edit_sampling, edit_sigmas
from stillmotion.pipelines.text_to_video import load

STRENGTH = 0.55


class EmptyWithHint:
    """A stand-in pipe for the inversion: the empty prompt's tokens, with the hint planned from other prompts."""

    def __init__(self, pipe, hint_prompts: list[str]):
        self.pipe, self.hint_prompts, self.denoiser = pipe, hint_prompts, pipe.denoiser

    def conditions(self, prompts: list[str]):
        planned, uncond, displacement = self.pipe.conditions(self.hint_prompts)
        empty = self.pipe.conditions([""] * len(prompts))[1]
        empty.motion = planned.motion
        return empty, uncond, displacement


def start(pipe, arm: str, part, sigmas, runs) -> torch.Tensor:
    """The inverted starting point of each clip of `part` at STRENGTH: (B, 3, F, H, W)."""
    video = torch.stack([to_float(c.video) for c in part])
    if arm == "caption":
        return _inverted(pipe, video, [c.source for c in part], sigmas, runs, 1.0, 8)[STRENGTH]
    if arm == "empty":
        return _inverted(pipe, video, [""] * len(part), sigmas, runs, 1.0, 8)[STRENGTH]
    hinted = EmptyWithHint(pipe, [c.target for c in part])
    return _inverted(hinted, video, ["-"] * len(part), sigmas, runs, 1.0, 8)[STRENGTH]  # "-": not the empty branch


def main(n: int, seed: int, arms: list[str]) -> None:
    torch.set_num_threads(2)
    pipe = load(None)
    cases = edit_cases(n, seed=seed, group="black")
    sampling = edit_sampling(pipe, "inversion").merged(steps=20, guidance=3.0)
    sigmas = get_sigmas(sampling.schedule, sampling.steps)
    runs = {STRENGTH: edit_sigmas(sigmas, STRENGTH)}
    for arm in arms:
        began, edits = time.time(), []
        for i in range(0, n, 32):
            part = cases[i:i + 32]
            cond, uncond, _ = pipe.conditions([c.target for c in part])
            denoise = cfg_denoiser(pipe.denoiser, cond, uncond, sampling.guidance)
            with torch.inference_mode():
                out = sample(sampling.sampler, denoise, start(pipe, arm, part, sigmas, runs), runs[STRENGTH],
                             generator=torch.Generator().manual_seed(seed + i + 1))
            edits += list(to_uint8(out.clamp(-1, 1)))
        score = score_edits(cases, edits)
        print(f"{arm}: colour {score['colour']:.3f}, path {score['path_px']:.2f} px, lost {score['lost']:.3f}, "
              f"per clip {score['success']:.3f} ({time.time() - began:.0f} s)", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:])
