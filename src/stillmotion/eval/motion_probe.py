"""The high-noise direction probe as an evaluation: the model's separation of opposite directions against the ideal.

`diffusion/direction_probe.py` measures how far apart the clean estimates for "moving left" and "moving right"
(and up / down) travel at sigma 20-80; this puts the ideal beside it, computed the same way from the world's own
clips (the mean clip of each direction is E[x0 | direction]), and their ratio: 1 is the ideal denoiser, 0 a
network whose estimate does not depend on the asked direction.

    python -m stillmotion.eval.motion_probe [MODEL]
"""

from __future__ import annotations

import functools
import sys

import numpy as np
import torch

from stillmotion.data.shapes import ShapesWorld, direction_clips, labels_from_attributes
from stillmotion.data.video_io import to_float
from stillmotion.diffusion.direction_probe import AXES, PROBE_SIGMAS, direction_probe, ideal_separation

SUBJECTS = ["a red circle", "a blue square", "a green triangle", "a yellow circle", "a white square",
            "a magenta triangle", "an orange circle", "a cyan square"]


def evaluate_direction_probe(pipe, *, sigmas=PROBE_SIGMAS, n: int = 4, ideal_clips: int = 512, seed: int = 0,
                             first_frame: bool = False) -> dict:
    """The probe of a pipeline's denoiser (no guidance; conditioned as sampling conditions it) beside the world's
    ideal. JSON-able. `first_frame`: as image-to-video, each subject's still image (centred) given as frame 0.

    Returns:
        {"sigmas", "separation": {axis: {sigma: px}}, "ideal": {axis: px}, "ratio": {axis: {sigma: separation /
        ideal}}, "mean_ratio": the mean ratio over axes and levels}.
    """
    ideal = world_ideal(pipe.frames, pipe.size, ideal_clips, seed)

    def condition(prompts: list[str]):  # as sampling conditions: the tokens, and any hint the model plans
        return pipe.conditions(prompts)[0]

    first = subject_images(pipe.size) if first_frame else None
    separation = direction_probe(pipe.denoiser, condition, subjects=SUBJECTS, frames=pipe.frames, size=pipe.size,
                                 sigmas=sigmas, n=n, data_mean=float(pipe.denoiser.data_mean), seed=seed,
                                 first_frames=first)
    ratio = {a: {s: v / ideal[a] for s, v in separation[a].items()} for a in AXES}
    return {"task": "i2v" if first_frame else "t2v", "sigmas": list(sigmas), "separation": separation,
            "ideal": ideal, "ratio": ratio, "mean_ratio": float(np.mean([v for a in AXES for v in ratio[a].values()]))}


@functools.lru_cache(maxsize=8)
def world_ideal(frames: int, size: int, clips: int, seed: int) -> dict:
    """`ideal_separation` of the world's own clips (rendered once per shape: the t2v and i2v probes share it)."""
    def moving(direction: str) -> torch.Tensor:  # (N, 3, F, H, W) in [-1, 1]
        return torch.stack([to_float(v) for v in direction_clips(direction, clips, frames, size, seed=seed)])

    return ideal_separation(moving)


def subject_images(size: int) -> torch.Tensor:
    """Each subject drawn still in the middle of the canvas: (S, 3, H, W) in [-1, 1]."""
    world = ShapesWorld(size, 1, p_two=0.0)
    labels = [labels_from_attributes(s.split()[-2], s.split()[-1], "static") for s in SUBJECTS]
    return torch.stack([to_float(world.render(lab))[:, 0] for lab in labels])


def probe_lines(report: dict) -> list[str]:
    """Markdown lines for a summary."""
    levels = [f"{s:g}" for s in report["sigmas"]]
    task = "image-to-video, frame 0 given" if report.get("task") == "i2v" else "text-to-video"
    lines = [f"## High-noise direction probe ({task})", "",
             "Travel of the clean estimate (no guidance) for 'moving right' minus 'moving left' (x) and 'down' "
             "minus 'up' (y), first third of the frames to the last, in pixels; ideal = the world's mean clip of "
             "each direction (diffusion/direction_probe.py).", "",
             "| axis | " + " | ".join(f"sigma {s}" for s in levels) + " | ideal |",
             "|---" * (len(levels) + 2) + "|"]
    for a in AXES:
        lines.append(f"| {a} | " + " | ".join(f"{report['separation'][a][s]:.2f} ({report['ratio'][a][s]:.2f})"
                                              for s in levels) + f" | {report['ideal'][a]:.2f} |")
    return lines + ["", f"Mean ratio to the ideal: {report['mean_ratio']:.2f}.", ""]


if __name__ == "__main__":
    from stillmotion.pipelines.text_to_video import load

    print("\n".join(probe_lines(evaluate_direction_probe(load(sys.argv[1] if len(sys.argv) > 1 else None)))))
