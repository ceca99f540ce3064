"""Does a text-to-video model do what the prompt says? A fixed, stated protocol on single-object prompts.

Protocol (written into every report):
  prompts   n single-object prompts, cycling through every (colour, direction) pair of the shapes world
            (8 x 8 = 64) with shapes and speeds drawn from a seeded generator; each prompt is worded by the
            world's caption generator in the chosen split: "heldout" uses only sentence shapes and synonyms that
            never occur in training captions ("please make the scarlet orb go westward"), "train" uses
            training wordings, "canonical" the plain "a red circle moving left".
  sampling  one clip per prompt, with the model's sampling settings or those given (pipelines/sampling.py);
            sampling seed = seed + prompt index.
  judging   the pixel probe (stillmotion.eval.probe): colour = nearest palette colour to the median
            foreground pixel; direction = centroid displacement between the first and last third, 8 bins.
            A clip follows the prompt when both match. Stability figures flag flicker and teleporting:
            the probe's area/colour spread and largest centroid jump, and the optical-flow metrics of
            eval.temporal (warping error and flicker in 0-255 levels, dynamic degree in pixels per frame).
            Optionally also the learned feature network of the shapes world (eval/features.py): its colour,
            shape and motion heads read each clip, and a clip follows the prompt when all three match
            (colour, shape and the asked direction); reported beside the pixel probe, not instead of it.
"""

from __future__ import annotations

import itertools
import math
import re
import time
from pathlib import Path

import numpy as np
import torch

from stillmotion.data.captions import DIRECTIONS, HELDOUT_WORDS, canonical_caption, make_caption
from stillmotion.data.shapes import COLOURS, DEFAULT_SHAPES, MOTIONS, ROTATES_VISIBLY, labels_from_attributes
from stillmotion.data.video_io import to_uint8
from stillmotion.eval.probe import compass, read_clip, read_motion
from stillmotion.eval.temporal import temporal_report

TEMPORAL_KEYS = ("warping_error", "flicker", "dynamic_degree")  # from eval.temporal, averaged over clips
JUMP_FRACTION = 0.2  # a clip "jumps" when its centroid moves more than this fraction of the width in one frame


def single_object_prompts(n: int, *, seed: int = 0, split: str = "heldout", directions=None
                          ) -> list[tuple[str, dict]]:
    """n (prompt, target) pairs covering every colour x direction pair as evenly as n allows. `directions` may
    name any of the world's MOTIONS (static, bouncing, growing, shrinking, rotating as well as the 8 glides)."""
    if split not in ("heldout", "train", "canonical"):
        raise ValueError(f"unknown prompt split '{split}'; choose heldout, train or canonical")
    rng = np.random.default_rng(seed)
    pairs = list(itertools.product(COLOURS, directions or DIRECTIONS))
    out = []
    for i in range(n):
        colour, direction = pairs[i % len(pairs)]  # "direction": any of the world's MOTIONS
        shapes = [s for s in DEFAULT_SHAPES if s in ROTATES_VISIBLY] if direction == "rotating" else DEFAULT_SHAPES
        shape = shapes[int(rng.integers(len(shapes)))]  # (a turning circle shows nothing)
        speed = ("slow", "fast")[int(rng.integers(2))]
        labels = labels_from_attributes(colour, shape, direction, speed)
        if split == "canonical":
            prompt = canonical_caption(labels, speed=False)
        else:
            prompt = make_caption(labels, rng, split=split)
        out.append((prompt, {"colour": colour, "shape": shape, "direction": direction, "speed": speed}))
    return out


def _per_target(rows: list[dict], attribute: str, names) -> dict[str, float]:
    """Accuracy on `attribute` per asked value, for the values some prompt asked (a small n leaves some out)."""
    asked = {name: [r[f"{attribute}_ok"] for r in rows if r[f"target_{attribute}"] == name] for name in names}
    return {name: float(np.mean(ok)) for name, ok in asked.items() if ok}


def evaluate_prompt_following(pipe, *, n: int = 256, seed: int = 0, split: str = "heldout",
                              sampling=None, batch: int = 16,
                              progress: bool = True, feature_net=None, sheet=None, sheet_clips: int = 8,
                              directions=None) -> dict:
    """Generate one clip per prompt and score colour, direction and stability. Returns a JSON-able report.

    Args:
        sampling: a SamplingConfig (pipelines/sampling.py); None: the model's own (`pipe.sampling`).
        feature_net: a shapes-world FeatureNet (eval/features.py) to judge colour, shape and motion as well.
        sheet: if given, a .png path for a contact sheet of `sheet_clips` clips spread over the prompts, each
            captioned with its prompt and what the pixel probe and the feature network read.
        directions: ask only these directions (None: all 8), e.g. for a model trained on a world restricted to them.
    """
    from tqdm import tqdm

    sampling = sampling or pipe.sampling
    prompts = single_object_prompts(n, seed=seed, split=split, directions=directions)
    rows, start, shown = [], time.time(), []
    on_sheet = set(np.linspace(0, n - 1, min(n, sheet_clips)).round().astype(int).tolist())  # spread over colours
    for i in tqdm(range(0, n, batch), desc=f"prompt following ({split})", disable=not progress):
        chunk = prompts[i:i + batch]
        # one generator per batch, seeded by its first index: results do not depend on other batches
        videos = pipe([p for p, _ in chunk], sampling=sampling, seed=seed + i, progress=False)
        net = _feature_readings(feature_net, videos, chunk)
        for j, ((prompt, target), video, judged) in enumerate(zip(chunk, to_uint8(videos.cpu()), net)):
            r = read_clip(video)
            if target["direction"] not in DIRECTIONS:  # static, bouncing, growing, ...: read by read_motion
                r.direction = read_motion(video).motion
            t = temporal_report(video) if video.shape[0] > 1 else {}
            rows.append({"prompt": prompt, **{f"target_{k}": v for k, v in target.items()}, **r.to_dict(),
                         **{k: t[k] for k in TEMPORAL_KEYS if k in t}, **judged,
                         "colour_ok": r.colour == target["colour"], "direction_ok": r.direction == target["direction"]})
            if i + j in on_sheet:
                shown.append((video, f"{prompt} | probe: {r.colour} {r.direction}"
                              + (f" | net: {judged['net_colour']} {judged['net_shape']} {judged['net_motion']}"
                                 if judged else "")))
    seconds = time.time() - start
    if sheet is not None and shown:
        from stillmotion.data.video_io import save_contact_sheet

        save_contact_sheet(sheet, [v for v, _ in shown], captions=[c for _, c in shown], scale=3)

    def frac(key):
        return float(np.mean([row[key] for row in rows]))

    both = float(np.mean([row["colour_ok"] and row["direction_ok"] for row in rows]))
    finite = [row for row in rows if math.isfinite(row["max_jump"])]
    return {
        "metric": "prompt following (pixel probe, single-object shapes prompts)",
        "protocol": {"n": n, "seed": seed, "split": split, **sampling.to_dict(),
                     "judge": "stillmotion.eval.probe.read_clip (glides), read_motion (other motions)",
                     "frames": int(videos.shape[2]), "size": int(videos.shape[-1])},
        "colour_accuracy": frac("colour_ok"),
        "direction_accuracy": frac("direction_ok"),
        "colour_and_direction_accuracy": both,
        "stability": {
            "vanished_clips": sum(1 for row in rows if row["visible_frames"] < 1),
            # teleporting: the centroid jumps further between two frames than 6x the world's fastest step
            "jumping_clips": sum(1 for row in finite if row["max_jump"] > JUMP_FRACTION * int(videos.shape[-1])),
            "median_area_cv": float(np.median([row["area_cv"] for row in finite])) if finite else None,
            "median_colour_drift": float(np.median([row["colour_drift"] for row in finite])) if finite else None,
            "median_max_jump_px": float(np.median([row["max_jump"] for row in finite])) if finite else None,
            **{f"mean_{k}": float(np.nanmean([row[k] for row in rows])) for k in TEMPORAL_KEYS if k in rows[0]},
        },
        "seconds": round(seconds, 1),
        "seconds_per_clip": round(seconds / n, 3),
        "per_direction": _per_target(rows, "direction", MOTIONS),
        "per_colour": _per_target(rows, "colour", COLOURS),
        "failures": [r for r in rows if not (r["colour_ok"] and r["direction_ok"])][:20],
        **_wording_split(rows),
        **({"planner": _planner_summary(pipe, prompts)} if getattr(pipe, "plan", None) is not None
           and getattr(pipe.denoiser.net, "planner", None) is not None
           and any(t["direction"] in DIRECTIONS for _, t in prompts) else {}),
        **({"feature_net": _feature_summary(rows, feature_net)} if feature_net is not None else {}),
        **({"sample_sheet": Path(sheet).name} if sheet is not None and shown else {}),
    }


HELDOUT_DIRECTION_WORDS = sorted({w for words in HELDOUT_WORDS["direction"].values() for w in words})
HELDOUT_COLOUR_WORDS = sorted({w for words in HELDOUT_WORDS["colour"].values() for w in words})
HELDOUT_ATTRIBUTE_WORDS = {"direction": HELDOUT_DIRECTION_WORDS, "colour": HELDOUT_COLOUR_WORDS}


def _has_word(prompt: str, words: list[str]) -> bool:
    return any(re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", prompt) for w in words)


def _wording_split(rows: list[dict]) -> dict:
    """Direction (colour) accuracy of the prompts with and without a held-out direction (colour) word ("westward",
    "scarlet", ...): words that no training caption uses, which the model can only follow if its text encoder
    relates them to trained ones."""
    has = {what: [_has_word(r["prompt"], words) for r in rows] for what, words in HELDOUT_ATTRIBUTE_WORDS.items()}
    out = {}
    for what, flags in has.items():
        if not any(flags):
            continue
        split = {}
        for name, keep in ((f"with_heldout_{what}_word", True), ("without", False)):
            chosen = [r[f"{what}_ok"] for r, h in zip(rows, flags) if h == keep]
            split[name] = {"n": len(chosen), f"{what}_accuracy": float(np.mean(chosen)) if chosen else None}
        out[f"by_{what}_word"] = split
    if out:  # the prompts with neither: the held-out sentence shapes and other words, every attribute word trained
        known = [r for r, *flags in zip(rows, *has.values()) if not any(flags)]
        mean = lambda key: float(np.mean(key)) if known else None  # noqa: E731
        out["known_attribute_words"] = {
            "n": len(known), "colour_accuracy": mean([r["colour_ok"] for r in known]),
            "direction_accuracy": mean([r["direction_ok"] for r in known]),
            "colour_and_direction_accuracy": mean([r["colour_ok"] and r["direction_ok"] for r in known])}
    return out


def _planner_summary(pipe, prompts: list[tuple[str, dict]]) -> dict:
    """How often the model's motion planner read the prompt's direction (a hint given, pointing the right way),
    over the prompts that ask for a direction."""
    prompts = [(p, t) for p, t in prompts if t["direction"] in DIRECTIONS]
    plans = torch.cat([pipe.plan([p for p, _ in prompts[i:i + 64]]) for i in range(0, len(prompts), 64)]).cpu()
    ok = [bool(g > 0) and compass(float(dx), float(dy)) == t["direction"]
          for (dx, dy, g, _), (_, t) in zip(plans.tolist(), prompts)]
    out = {"direction_accuracy": float(np.mean(ok)), "hint_given": float((plans[:, 2] > 0).float().mean()),
           "median_std": float(plans[:, 3].median())}
    return out


@torch.no_grad()
def _feature_readings(net, videos, chunk) -> list[dict]:
    """The feature network's colour / shape / motion per clip, and whether each matches the prompt's target."""
    if net is None:
        return [{} for _ in chunk]
    predicted = net.predict(videos.float().cpu().clamp(-1, 1))
    return [{"net_colour": predicted["colour"][i], "net_shape": predicted["shape"][i],
             "net_motion": predicted["motion"][i],
             "net_colour_ok": predicted["colour"][i] == target["colour"],
             "net_shape_ok": predicted["shape"][i] == target["shape"],
             "net_motion_ok": predicted["motion"][i] == target["direction"]} for i, (_, target) in enumerate(chunk)]


def _feature_summary(rows: list[dict], net) -> dict:
    mean = lambda f: float(np.mean([f(r) for r in rows]))
    record = getattr(net, "info", {}).get("record", {})
    return {
        "judge": "stillmotion.eval.features (learned classifier of the shapes world; colour, shape and motion heads)",
        "net_heldout_accuracy": record.get("heldout", {}).get("accuracy"),
        "colour_accuracy": mean(lambda r: r["net_colour_ok"]),
        "shape_accuracy": mean(lambda r: r["net_shape_ok"]),
        "motion_accuracy": mean(lambda r: r["net_motion_ok"]),
        "colour_and_motion_accuracy": mean(lambda r: r["net_colour_ok"] and r["net_motion_ok"]),
        "all_accuracy": mean(lambda r: r["net_colour_ok"] and r["net_shape_ok"] and r["net_motion_ok"]),
        "predicted_motions": {m: sum(r["net_motion"] == m for r in rows)
                              for m in sorted({r["net_motion"] for r in rows})},
    }


def _record_line(record: dict) -> str:
    from stillmotion.train.model_card import training_stages

    stages = training_stages(record)
    minutes: dict[str, float] = {}  # hardware -> minutes (stages may have run on different machines)
    for s in stages:
        hw = s.get("hardware", "?")
        minutes[hw] = minutes.get(hw, 0.0) + s.get("wall_clock_s", 0) / 60
    where = " + ".join(f"{m:.1f} min on {hw}" for hw, m in minutes.items())
    return (f"{sum(s.get('step', 0) for s in stages)} steps in {len(stages)} stage(s), {where}; "
            f"last command: `{(record.get('commands') or ['?'])[-1]}`")


def write_summary(report: dict, path) -> None:
    """A short markdown table of a report from `stillmotion evaluate`."""
    lines = [f"# Prompt following: {report['model']}", "",
             f"Training: {_record_line(report.get('record') or {})}", "",
             "| wording | n | colour | direction | colour and direction | vanished | jumping | warping error | "
             "flicker | dynamic degree | s/clip |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        p = r["protocol"]
        lines.append(f"| {p['split']} | {p['n']} | {r['colour_accuracy']:.3f} | {r['direction_accuracy']:.3f} | "
                     f"{r['colour_and_direction_accuracy']:.3f} | {r['stability']['vanished_clips']} | "
                     f"{r['stability'].get('jumping_clips', '?')} | "
                     + "".join(f"{r['stability'].get('mean_' + k, float('nan')):.2f} | " for k in TEMPORAL_KEYS)
                     + f"{r['seconds_per_clip']:.2f} |")
    p = report["results"][0]["protocol"] if report["results"] else {}
    lines += ["", f"Protocol: {p.get('sampler')} sampler, {p.get('steps')} steps, guidance {p.get('guidance')}, "
              f"{p.get('frames')} frames of {p.get('size')}x{p.get('size')}, seed {p.get('seed')}, noise warp "
              f"{p.get('noise_warp', 0.0)} (0: independent noise per frame; nothing is overwritten between sampler "
              "steps); judged by the "
              "pixel probe (stillmotion.eval.probe): nearest palette colour of the median foreground pixel, and "
              "the centroid's displacement between the first and last third of the clip in 8 compass bins. "
              "Prompts cycle through all 64 colour x direction pairs; held-out wordings never occur in training.",
              ""]
    if "direction_probe" in report:
        from stillmotion.eval.motion_probe import probe_lines

        for probe in report["direction_probe"]:
            lines += probe_lines(probe)
    if "kept_noise" in report:
        from stillmotion.eval.kept_noise import kept_noise_line

        lines += [f"{kept_noise_line(report['kept_noise'])} (n = {report['kept_noise']['n']} held-out world clips)", ""]
    lines += _direction_lines(report) + _feature_lines(report) + _fvd_lines(report.get("fvd")) + _sample_lines(report)
    Path(path).write_text("\n".join(lines))


def _direction_lines(report: dict) -> list[str]:
    """Direction and colour accuracy by held-out word, and what the motion planner read, where the report has them."""
    lines = []
    for r in report["results"]:
        plan = r.get("planner")
        for what, words in HELDOUT_ATTRIBUTE_WORDS.items():
            split = r.get(f"by_{what}_word")
            if not split:
                continue
            w, wo = split[f"with_heldout_{what}_word"], split["without"]
            fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
            lines.append(f"- {r['protocol']['split']}: {what} {fmt(w[f'{what}_accuracy'])} on the {w['n']} prompts "
                         f"with a held-out {what} word ({', '.join(words)}), {fmt(wo[f'{what}_accuracy'])} on "
                         f"the other {wo['n']}")
        known = r.get("known_attribute_words")
        if known and known["n"]:
            lines.append(f"- {r['protocol']['split']}: on the {known['n']} prompts with neither (every colour and "
                         f"direction word a trained one, the sentence shape and other words still unseen): colour "
                         f"{known['colour_accuracy']:.3f}, direction {known['direction_accuracy']:.3f}, both "
                         f"{known['colour_and_direction_accuracy']:.3f}")
        if plan:
            lines.append(f"- {r['protocol']['split']}: the motion planner read the prompt's direction in "
                         f"{plan['direction_accuracy']:.3f} of prompts (hint given in {plan['hint_given']:.3f}, "
                         f"median spread {plan['median_std']:.3f} of the canvas)")
    if report.get("text_encoder_vocabulary"):
        from stillmotion.eval.vocabulary import vocabulary_lines

        lines += vocabulary_lines(report["text_encoder_vocabulary"])
    return ["## Direction", "", *lines, ""] if lines else []


def _feature_lines(report: dict) -> list[str]:
    judged = [r for r in report["results"] if "feature_net" in r]
    if not judged:
        return []
    lines = ["## Judged by the feature network", "",
             "| wording | n | colour | shape | motion | colour and motion | colour, shape and motion |",
             "|---|---|---|---|---|---|---|"]
    for r in judged:
        f = r["feature_net"]
        lines.append(f"| {r['protocol']['split']} | {r['protocol']['n']} | {f['colour_accuracy']:.3f} | "
                     f"{f['shape_accuracy']:.3f} | {f['motion_accuracy']:.3f} | "
                     f"{f['colour_and_motion_accuracy']:.3f} | {f['all_accuracy']:.3f} |")
    acc = judged[0]["feature_net"].get("net_heldout_accuracy") or {}
    lines += ["", "Judge: the shapes world's feature network (stillmotion.eval.features): its colour, shape and "
              "motion heads read each clip; motion must be the asked direction. Its own accuracy on held-out real "
              "clips: " + (", ".join(f"{k} {v:.3f}" for k, v in acc.items()) or "not recorded") + ".", ""]
    return lines


def _fvd_lines(fvd: dict | None) -> list[str]:
    if not fvd:
        return []
    name = fvd.get("metric", "FVD")
    if "skipped" in fvd:
        return [f"## {name}", "", f"Skipped: {fvd['skipped']}.", ""]
    floor, joint = fvd["floor"], fvd.get("joint")
    jname = joint["metric"] if joint else ""
    lines = [f"## {name}: generated vs real clips", "",
             f"| clip set (n = {fvd['n']} each) | {name} vs real set A | / floor |"
             + (f" {jname} | / floor |" if joint else ""), "|---|---|---|" + ("---|---|" if joint else "")]
    for key, label in (("generated", "generated, one per caption of A"), ("floor", "real set B (the floor)"),
                       ("time_shuffled", "real B, frames shuffled"), ("static_frame0", "real B, frame 0 repeated"),
                       ("time_reversed", "real B, time reversed")):
        row = f"| {label} | {fvd[key]:.2f} | {fvd[key] / floor:.1f} |"
        if joint:
            row += f" {joint[key]:.2f} | {joint[key] / joint['floor']:.1f} |"
        lines.append(row)
    if "i3d" in fvd:
        i = fvd["i3d"]
        lines.append(f"| I3D features: generated / floor | {i['generated']:.2f} / {i['floor']:.2f} | "
                     f"{i['generated'] / max(i['floor'], 1e-12):.1f} |" + (" | |" if joint else ""))
    if "caveat" in fvd:
        lines += ["", f"**Caveat:** {fvd['caveat']}."]
    lines += ["", f"{name} is the Fréchet distance of the feature network's embeddings (stillmotion.eval.fvd); "
              "it is not comparable with FVD values in the literature. Time reversal maps the world (almost) onto "
              "itself (a reversed left-mover is a right-mover), so its row stays near the floor by design; the joint "
              "distance (FJD, features joined with the caption's motion) asks whether each clip shows what its "
              "caption asked for, and separates it. See docs/evaluation.md.", ""]
    return lines


def _sample_lines(report: dict) -> list[str]:
    sheets = [(r["protocol"]["split"], r["sample_sheet"]) for r in report["results"] if r.get("sample_sheet")]
    if not sheets:
        return []
    return ["## Samples", ""] + [f"![{split} prompts]({name})" for split, name in sheets] + [""]


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
