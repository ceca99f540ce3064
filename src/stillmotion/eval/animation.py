"""Scoring image-to-video: does the clip start from the given image and move as the prompt asks?

Protocol (written into every report):
  scenes    n single-object scenes of the shapes world per background group, cycling through every
            (colour, direction) pair (8 x 8 = 64); shape, speed, size and start drawn from a seeded generator
            (start: anywhere the path stays on the canvas, as the world places objects). Groups: "black" (what
            the shipped model was trained on) and "other" (gray, gradient and noise backgrounds in turn, never
            seen in training). Seeds 10^9 + seed + ...: never training examples.
  input     frame 0 of the world's own clip of the scene is the image; the prompt names the scene's colour,
            shape and direction ("canonical": "a red circle moving left"; "heldout": wordings no training
            caption uses).
  sampling  `pipelines.animate` (frame 0 known, every other pixel from the network), sampling seed = seed + i.
  judging   first-frame PSNR against the image (the pipeline promises it back exactly: inf dB); the pixel probe
            (eval/probe.read_clip) on the clip: colour, direction (8 compass bins), vanished, jumping. The probe
            read on the world's own clips of the same scenes is reported as its ceiling.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time

import numpy as np

from stillmotion.data.captions import canonical_caption, make_caption
from stillmotion.data.shapes import COLOURS, DEFAULT_SHAPES, SIZE_RANGE, ShapesWorld, labels_from_attributes, place
from stillmotion.data.video_io import to_uint8
from stillmotion.eval.interpolation import HELDOUT_SEED
from stillmotion.eval.probe import DIRECTIONS, read_clip
from stillmotion.eval.prompt_following import JUMP_FRACTION
from stillmotion.eval.reconstruction import psnr
from stillmotion.pipelines.animate import animate

GROUPS = {"black": ("black",), "other": ("gray", "gradient", "noise")}


def animation_scenes(n: int, *, seed: int = 0, group: str = "black", split: str = "canonical") -> list[tuple]:
    """n (labels, prompt) pairs of single-object gliding scenes (see the module docstring)."""
    if group not in GROUPS:
        raise ValueError(f"unknown background group '{group}'; choose one of {', '.join(GROUPS)}")
    if split not in ("canonical", "heldout"):
        raise ValueError(f"unknown prompt split '{split}'; choose canonical or heldout")
    rng = np.random.default_rng([HELDOUT_SEED + seed, list(GROUPS).index(group)])
    pairs = list(itertools.product(COLOURS, DIRECTIONS))
    scenes = []
    for i in range(n):
        colour, direction = pairs[i % len(pairs)]
        shape = DEFAULT_SHAPES[int(rng.integers(len(DEFAULT_SHAPES)))]
        speed = ("slow", "fast")[int(rng.integers(2))]
        size = float(rng.uniform(*SIZE_RANGE))
        start = place(rng, shape, direction, speed, size)
        background = GROUPS[group][i % len(GROUPS[group])]
        labels = labels_from_attributes(colour, shape, direction, speed, size=size, start=start,
                                        background=background)
        labels = dataclasses.replace(labels, background_seed=int(rng.integers(2**31)))
        prompt = canonical_caption(labels, speed=False) if split == "canonical" else make_caption(labels, rng,
                                                                                                 split="heldout")
        scenes.append((labels, prompt))
    return scenes


def _reading(video: np.ndarray, direction: str, colour: str) -> dict:
    r = read_clip(video)
    return {"colour_ok": r.colour == colour, "direction_ok": r.direction == direction,
            "vanished": r.direction is None, "jumping": r.max_jump > JUMP_FRACTION * video.shape[2]}


def score_animation(pipe, *, n: int = 128, seed: int = 0, group: str = "black", split: str = "canonical",
                    sampling=None, batch: int = 16, progress: bool = True) -> dict:
    """Animate frame 0 of n held-out scenes with their prompts; a JSON-able report (module docstring)."""
    from tqdm import tqdm

    world = ShapesWorld(size=pipe.size, frames=pipe.frames, p_two=0.0)
    scenes = animation_scenes(n, seed=seed, group=group, split=split)
    rows, start = [], time.time()
    for i in tqdm(range(0, n, batch), desc=f"image-to-video ({group}, {split})", disable=not progress):
        chunk = scenes[i:i + batch]
        truth = np.stack([world.render(labels) for labels, _ in chunk])  # (b, F, H, W, 3)
        made = to_uint8(animate(pipe, truth[:, 0], [p for _, p in chunk], sampling=sampling, seed=seed + i,
                                progress=False).cpu())
        for (labels, prompt), video, real in zip(chunk, made, truth):
            obj = labels.objects[0]
            rows.append({"prompt": prompt, "background": labels.background, "colour": obj.colour,
                         "direction": obj.motion, "first_frame_psnr": psnr(video[:1], real[:1]),
                         **_reading(video, obj.motion, obj.colour),
                         **{f"truth_{k}": v for k, v in _reading(real, obj.motion, obj.colour).items()}})
    return {"protocol": __doc__.split("Protocol (written into every report):\n", 1)[1].strip(),
            "n": n, "seed": seed, "group": group, "split": split, **(sampling or pipe.sampling).to_dict(),
            **summarize(rows), "seconds_per_clip": (time.time() - start) / n, "rows": rows}


def summarize(rows: list[dict]) -> dict:
    """Fractions over the clips; the first-frame PSNR as its lowest value (inf: every first frame exact)."""
    def frac(key):
        return float(np.mean([r[key] for r in rows]))
    return {"first_frame_psnr_min": min(r["first_frame_psnr"] for r in rows),
            "colour": frac("colour_ok"), "direction": frac("direction_ok"),
            "colour_and_direction": float(np.mean([r["colour_ok"] and r["direction_ok"] for r in rows])),
            "vanished": int(sum(r["vanished"] for r in rows)), "jumping": int(sum(r["jumping"] for r in rows)),
            "probe_on_world_clips": {"colour": frac("truth_colour_ok"), "direction": frac("truth_direction_ok")}}


def format_psnr(value: float) -> str:
    return "exact (inf dB)" if math.isinf(value) else f"{value:.1f} dB"
