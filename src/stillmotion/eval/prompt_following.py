"""Does a text-to-video model do what the prompt says? A fixed, stated protocol on single-object prompts.

Protocol (written into every report):
  prompts   n single-object prompts, cycling through every (colour, direction) pair of the shapes world
            (8 x 8 = 64) with shapes and speeds drawn from a seeded generator; each prompt is worded by the
            world's caption generator in the chosen split: "heldout" uses only sentence shapes and synonyms that
            never occur in training captions ("please make the scarlet orb go westward"), "train" uses
            training wordings, "canonical" the plain "a red circle moving left".
  sampling  one clip per prompt, sampler/steps/guidance as given, sampling seed = seed + prompt index.
  judging   the pixel probe (stillmotion.eval.probe): colour = nearest palette colour to the median
            foreground pixel; direction = centroid displacement between the first and last third, 8 bins.
            A clip follows the prompt when both match. Stability figures flag flicker and teleporting:
            the probe's area/colour spread and largest centroid jump, and the optical-flow metrics of
            eval.temporal (warping error and flicker in 0-255 levels, dynamic degree in pixels per frame).
"""

from __future__ import annotations

import itertools
import math
import time
from pathlib import Path

import numpy as np
import torch

from stillmotion.data.captions import DIRECTIONS, canonical_caption, make_caption
from stillmotion.data.shapes import COLOURS, DEFAULT_SHAPES, labels_from_attributes
from stillmotion.data.video_io import to_uint8
from stillmotion.eval.probe import read_clip
from stillmotion.eval.temporal import temporal_report

TEMPORAL_KEYS = ("warping_error", "flicker", "dynamic_degree")  # from eval.temporal, averaged over clips


def single_object_prompts(n: int, *, seed: int = 0, split: str = "heldout") -> list[tuple[str, dict]]:
    """n (prompt, target) pairs covering every colour x direction pair as evenly as n allows."""
    if split not in ("heldout", "train", "canonical"):
        raise ValueError(f"unknown prompt split '{split}'; choose heldout, train or canonical")
    rng = np.random.default_rng(seed)
    pairs = list(itertools.product(COLOURS, DIRECTIONS))
    out = []
    for i in range(n):
        colour, direction = pairs[i % len(pairs)]
        shape = DEFAULT_SHAPES[int(rng.integers(len(DEFAULT_SHAPES)))]
        speed = ("slow", "fast")[int(rng.integers(2))]
        labels = labels_from_attributes(colour, shape, direction, speed)
        if split == "canonical":
            prompt = canonical_caption(labels, speed=False)
        else:
            prompt = make_caption(labels, rng, split=split)
        out.append((prompt, {"colour": colour, "shape": shape, "direction": direction, "speed": speed}))
    return out


def evaluate_prompt_following(pipe, *, n: int = 256, seed: int = 0, split: str = "heldout", steps: int = 20,
                              sampler: str = "dpmpp-2m", guidance: float = 4.0, batch: int = 16,
                              progress: bool = True) -> dict:
    """Generate one clip per prompt and score colour, direction and stability. Returns a JSON-able report."""
    from tqdm import tqdm

    prompts = single_object_prompts(n, seed=seed, split=split)
    rows, start = [], time.time()
    for i in tqdm(range(0, n, batch), desc=f"prompt following ({split})", disable=not progress):
        chunk = prompts[i:i + batch]
        # one generator per batch, seeded by its first index: results do not depend on other batches
        videos = pipe([p for p, _ in chunk], steps=steps, sampler=sampler, guidance=guidance, seed=seed + i,
                      progress=False)
        for (prompt, target), video in zip(chunk, to_uint8(videos.cpu())):
            r = read_clip(video)
            t = temporal_report(video) if video.shape[0] > 1 else {}
            rows.append({"prompt": prompt, **{f"target_{k}": v for k, v in target.items()}, **r.to_dict(),
                         **{k: t[k] for k in TEMPORAL_KEYS if k in t},
                         "colour_ok": r.colour == target["colour"], "direction_ok": r.direction == target["direction"]})
    seconds = time.time() - start

    def frac(key):
        return float(np.mean([row[key] for row in rows]))

    both = float(np.mean([row["colour_ok"] and row["direction_ok"] for row in rows]))
    finite = [row for row in rows if math.isfinite(row["max_jump"])]
    return {
        "metric": "prompt following (pixel probe, single-object shapes prompts)",
        "protocol": {"n": n, "seed": seed, "split": split, "steps": steps, "sampler": sampler, "guidance": guidance,
                     "judge": "stillmotion.eval.probe.read_clip", "frames": int(videos.shape[2]),
                     "size": int(videos.shape[-1])},
        "colour_accuracy": frac("colour_ok"),
        "direction_accuracy": frac("direction_ok"),
        "colour_and_direction_accuracy": both,
        "stability": {
            "vanished_clips": sum(1 for row in rows if row["visible_frames"] < 1),
            "median_area_cv": float(np.median([row["area_cv"] for row in finite])) if finite else None,
            "median_colour_drift": float(np.median([row["colour_drift"] for row in finite])) if finite else None,
            "median_max_jump_px": float(np.median([row["max_jump"] for row in finite])) if finite else None,
            **{f"mean_{k}": float(np.nanmean([row[k] for row in rows])) for k in TEMPORAL_KEYS if k in rows[0]},
        },
        "seconds": round(seconds, 1),
        "seconds_per_clip": round(seconds / n, 3),
        "per_direction": {d: float(np.mean([r["direction_ok"] for r in rows if r["target_direction"] == d]))
                          for d in DIRECTIONS},
        "per_colour": {c: float(np.mean([r["colour_ok"] for r in rows if r["target_colour"] == c])) for c in COLOURS},
        "failures": [r for r in rows if not (r["colour_ok"] and r["direction_ok"])][:20],
    }


def _record_line(record: dict) -> str:
    from stillmotion.train.model_card import training_stages

    stages = training_stages(record)
    return (f"{sum(s.get('step', 0) for s in stages)} steps in {len(stages)} stage(s), "
            f"{sum(s.get('wall_clock_s', 0) for s in stages) / 60:.1f} min on {record.get('hardware', '?')}; "
            f"last command: `{(record.get('commands') or ['?'])[-1]}`")


def write_summary(report: dict, path) -> None:
    """A short markdown table of a report from `stillmotion evaluate`."""
    lines = [f"# Prompt following: {report['model']}", "",
             f"Training: {_record_line(report.get('record') or {})}", "",
             "| wording | n | colour | direction | colour and direction | vanished | warping error | flicker | "
             "dynamic degree | s/clip |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        p = r["protocol"]
        lines.append(f"| {p['split']} | {p['n']} | {r['colour_accuracy']:.3f} | {r['direction_accuracy']:.3f} | "
                     f"{r['colour_and_direction_accuracy']:.3f} | {r['stability']['vanished_clips']} | "
                     + "".join(f"{r['stability'].get('mean_' + k, float('nan')):.2f} | " for k in TEMPORAL_KEYS)
                     + f"{r['seconds_per_clip']:.2f} |")
    p = report["results"][0]["protocol"] if report["results"] else {}
    lines += ["", f"Protocol: {p.get('sampler')} sampler, {p.get('steps')} steps, guidance {p.get('guidance')}, "
              f"{p.get('frames')} frames of {p.get('size')}x{p.get('size')}, seed {p.get('seed')}; judged by the "
              "pixel probe (stillmotion.eval.probe): nearest palette colour of the median foreground pixel, and "
              "the centroid's displacement between the first and last third of the clip in 8 compass bins. "
              "Prompts cycle through all 64 colour x direction pairs; held-out wordings never occur in training.",
              ""]
    Path(path).write_text("\n".join(lines))


@torch.inference_mode()
def _main() -> None:  # python -m stillmotion.eval.prompt_following MODEL [n] [split]
    import json
    import sys

    from stillmotion.pipelines.text_to_video import load

    path = sys.argv[1] if len(sys.argv) > 1 else None
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    split = sys.argv[3] if len(sys.argv) > 3 else "heldout"
    report = evaluate_prompt_following(load(path), n=n, split=split)
    report.pop("failures")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    _main()
