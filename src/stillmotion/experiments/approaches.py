"""`stillmotion experiment approaches`: the ways to adapt image diffusion to video, trained and judged side by side.

Every arm trains on the shapes world from the `shapes-s` preset with the same seed and the same budget (minutes of
wall clock, or optimizer steps for a quick check), and is judged by the same built-in evaluator:

  spacetime          the space-time U-Net trained directly on videos (text-to-video)
  flow-consistency   the same, plus the optical-flow consistency term on the predicted clip (train/flow_consistency.py)
  motion-hint        the same network reading a motion hint measured from each clip's flow (train/motion.py);
                     judged without a hint (text only, comparable with the others) and with the prompt's direction
                     given as the hint
  motion-planner     the motion-hint network plus a planner that learns the hint from the prompt (models/planner.py);
                     judged with the planned hint (text only from the user's side, comparable with the others)
  joint-image-video  every 2nd step trains on the batch's frames as single images (F = 1, spatial layers only)
  keyframes          two models sharing the budget: a 4-frame keyframe model (1/3; a 4-frame clip of the world is
                     frames 0, 5, 10, 15 of the 16-frame clip) and a 16-frame interpolator trained only on the
                     interpolation task (2/3); sampled as keyframes, then in-betweens. Also judged with the
                     in-betweens made by OpenCV flow interpolation instead (no training), and the interpolator's
                     in-betweens of real keyframes scored by PSNR / SSIM against the true frames
  inflated (K)       an image model (F = 1, no temporal layers) for half the budget, inflated with zero-initialised
                     temporal layers and fine-tuned on videos for the other half, on K distinct training clips
  scratch (K)        the video half alone from scratch on the same K clips (the comparison for inflation)

For each arm: prompt following on canonical prompts (pixel probe), FVD-shapes and FJD-shapes against real clips
with their floor, warping error and dynamic degree; quality against training time (the arm is trained in segments
and judged after each), and quality against K for the inflation study. Outputs in --out: report.json, README.md
(tables, the command), time.png, data.png and grid.gif / grid.png (the same prompts from every arm).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from stillmotion.charts import line_chart
from stillmotion.checkpoint import load_config
from stillmotion.data.video_io import save_contact_sheet, to_float, to_uint8, video_grid, write_video
from stillmotion.eval.interpolation import keyframe_mask, score_interpolation
from stillmotion.eval.probe import read_clip
from stillmotion.eval.prompt_following import evaluate_prompt_following, single_object_prompts
from stillmotion.pipelines.flow_interpolation import flow_interpolate
from stillmotion.pipelines.text_to_video import load
from stillmotion.train.config import make_config
from stillmotion.train.segments import train_in_segments

PRESET = "shapes-s"
GRID_PROMPTS = ["a red circle moving left", "a blue square moving up", "a green triangle moving right",
                "a yellow circle moving down"]


@dataclass
class Stage:
    """One training run of an arm: a share of the arm's budget, its config overrides, and what it starts from."""

    name: str
    share: float
    overrides: dict = field(default_factory=dict)
    init_from: str | None = None  # the name of an earlier stage (of this arm or a shared one)


@dataclass
class Arm:
    name: str
    stages: list[Stage]
    sampling: str = "text"  # "text", or "keyframes" (stages "keys" then "interp")


def make_arms(clip_pools: list[int | None], frames: int = 16, every: int = 5) -> list[Arm]:
    """The arms (names as in the module docstring; cli/research.py ARMS lists their first words) for clips of
    `frames` frames with keyframes every `every` frames."""
    keys = int(keyframe_mask(frames, every).sum())  # a K-frame clip of the world is its keyframes
    arms = [
        Arm("spacetime", [Stage("video", 1.0)]),
        Arm("flow-consistency", [Stage("video", 1.0, {"flow_consistency": 0.1})]),
        Arm("motion-hint", [Stage("video", 1.0, {"model.motion_cond": True})]),
        Arm("motion-planner", [Stage("video", 1.0, {"model.motion_cond": True, "model.motion_planner": True})]),
        Arm("joint-image-video", [Stage("video", 1.0, {"image_every": 2})]),
        Arm("keyframes", [Stage("keys", 1 / 3, {"frames": keys}),
                          Stage("interp", 2 / 3, {"tasks": {"interpolate": 1.0}})], sampling="keyframes"),
    ]
    image = Stage("image", 0.5, {"frames": 1, "model.temporal": False})
    for pool in clip_pools:
        tag = "all" if pool is None else str(pool)
        arms.append(Arm(f"inflated ({tag})", [image, Stage("video", 0.5, {"clip_pool": pool}, init_from="image")]))
        arms.append(Arm(f"scratch ({tag})", [Stage("video", 0.5, {"clip_pool": pool})]))
    return arms


class KeyframePipe:
    """Keyframes from a few-frame model, then the frames between them from an interpolator (or from OpenCV flow)."""

    def __init__(self, keys, interp, every: int = 5, fill: str = "diffusion"):
        self.keys, self.interp, self.every, self.fill = keys, interp, every, fill
        self.frames, self.size, self.info = interp.frames, interp.size, interp.info
        self.sampling = interp.sampling

    def __call__(self, prompts, *, sampling=None, seed=0, progress=False, **_):
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        known = keyframe_mask(self.frames, self.every)
        keys = self.keys(prompts, frames=int(known.sum()), sampling=sampling, seed=seed,
                         progress=False)  # (B, 3, K, H, W)
        frames = torch.zeros(len(prompts), 3, self.frames, self.size, self.size)
        frames[:, :, torch.from_numpy(known)] = keys.cpu()
        if self.fill == "flow":
            return torch.stack([to_float(flow_interpolate(v, known)) for v in to_uint8(frames)])  # (B, 3, F, H, W)
        mask = torch.from_numpy(known).float().expand(len(prompts), -1)
        return self.interp(prompts, known_frames=frames, frame_mask=mask, sampling=sampling, seed=seed + 1,
                           progress=False)


def hint_following(pipe, *, n: int, seed: int = 0, steps: int = 20) -> dict:
    """Direction accuracy when each canonical prompt's direction is also given as the motion hint."""
    prompts = single_object_prompts(n, seed=seed, split="canonical")
    hits = []
    for i, (prompt, target) in enumerate(prompts):
        video = pipe(prompt, motion=target["direction"], sampling=pipe.sampling.merged(steps=steps), seed=seed + i,
                     progress=False)
        r = read_clip(to_uint8(video[0].cpu()))
        hits.append((r.colour == target["colour"], r.direction == target["direction"]))
    c, d = np.mean(hits, axis=0)
    return {"colour_accuracy": float(c), "direction_accuracy": float(d),
            "colour_and_direction_accuracy": float(np.mean([a and b for a, b in hits])), "n": n}


def _train_stage(stage: Stage, out: Path, budget: dict, points: int, judge, offset: float, done: dict,
                 preset: str) -> tuple[list, float]:
    """Train one stage in `points` segments, judging after each. Returns ([(arm's training minutes so far,
    scores)], the stage's training minutes)."""
    overrides = {**stage.overrides, "out": str(out)}
    if stage.init_from:
        overrides["init_from"] = str(done[stage.init_from])
    config_for = lambda part: make_config(preset, {**overrides, "minutes": None, "steps": None, **part,
                                                   "ckpt_minutes": 1e9})
    _, curve, trained = train_in_segments(config_for, budget, points, judge=judge, share=stage.share,
                                          overwrite=True)  # an arm run again (--merge) replaces its old run
    done[stage.name] = out
    return [(offset + m, scores) for m, scores in curve], trained


def _run_name(arm: Arm, stage: Stage) -> str:
    return stage.name if stage.name == "image" else f"{arm.name.replace(' ', '_')}-{stage.name}"


def _arm_pipe(arm: Arm, out: Path):
    """The sampler of a trained arm, from its run folders under out/runs."""
    runs = {stage.name: out / "runs" / _run_name(arm, stage) for stage in arm.stages}
    if arm.sampling == "keyframes":
        return KeyframePipe(load(runs["keys"]), load(runs["interp"]))
    return load(runs[arm.stages[-1].name])


def run_approaches(out: str | Path, *, minutes: float | None = 10.0, steps: int | None = None, n: int = 64,
                   n_curve: int = 32, points: int = 3, clip_pools=(256, None), arms: list[str] | None = None,
                   seed: int = 0, sample_steps: int = 20, preset: str = PRESET, progress: bool = True,
                   merge: bool = False, command: str | None = None) -> dict:
    """Train and judge every arm; write the report into `out`. Give `minutes` (per arm) or `steps` (per arm).

    merge: keep the arms of an earlier report.json in `out` (same protocol) that are not run again, so an arm can
    be added to a finished comparison; their grid rows are sampled again from their saved runs."""
    from stillmotion.eval.features import load_feature_net
    from stillmotion.eval.fvd import evaluate_fvd

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    budget = {"steps": steps} if steps is not None else {"minutes": minutes}
    frames = make_config(preset).frames
    chosen = [a for a in make_arms(list(clip_pools), frames) if arms is None or a.name.split(" ")[0] in arms]
    net = load_feature_net("shapes")
    quick = lambda pipe: {k: v for k, v in evaluate_prompt_following(
        pipe, n=n_curve, seed=seed, split="canonical", sampling=pipe.sampling.merged(steps=sample_steps),
        progress=False).items()
        if k.endswith("accuracy")}
    report = {"protocol": {"world": "shapes", "preset": preset, "budget_per_arm": budget, "seed": seed, "n": n,
                           "n_curve": n_curve, "sample_steps": sample_steps, "judge": "pixel probe, canonical prompts",
                           "fvd_n": n},
              "arms": {}, "commands": [command] if command else []}
    if merge and (out / "report.json").exists():
        old = json.loads((out / "report.json").read_text())
        if old["protocol"] != report["protocol"]:
            raise ValueError(f"--merge: {out / 'report.json'} was made with another protocol ({old['protocol']}); "
                             f"run with the same budget, seed, n and preset, or write to another --out")
        report["arms"] = {k: v for k, v in old["arms"].items() if k not in {a.name for a in chosen}}
        report["commands"] = old.get("commands", []) + report["commands"]
    shared: dict = {}  # stages several arms start from (the image model): folder and minutes
    grid_rows = {}
    for arm in chosen:
        if progress:
            print(f"== {arm.name}", flush=True)
        done, curve, offset = {}, [], 0.0
        for k, stage in enumerate(arm.stages):
            folder = out / "runs" / _run_name(arm, stage)
            if stage.name in shared:
                done[stage.name], minutes_taken = shared[stage.name]
                offset += minutes_taken
                continue
            last = k == len(arm.stages) - 1
            judge = (lambda run: quick(load(run))) if last and arm.sampling == "text" else None
            points_here, minutes_taken = _train_stage(stage, folder, budget, points if judge else 1, judge, offset,
                                                      done, preset)
            curve += points_here
            offset += minutes_taken
            if stage.name == "image":
                shared["image"] = (done["image"], minutes_taken)
        pipe = _arm_pipe(arm, out)
        if arm.sampling == "keyframes":
            extra = {"keyframes + flow in-betweens": KeyframePipe(pipe.keys, pipe.interp, fill="flow"),
                     "interpolator on real keyframes": score_interpolation(pipe.interp, n=n_curve, steps=sample_steps,
                                                                           seed=seed)}
        else:
            extra = {"with the direction as hint": hint_following(pipe, n=n_curve, seed=seed, steps=sample_steps)} \
                if arm.name == "motion-hint" else {}
        result = _judge(pipe, net, n=n, seed=seed, steps=sample_steps, evaluate_fvd=evaluate_fvd)
        result["curve"] = [{"minutes": round(m, 2), **s} for m, s in curve]
        result["train_minutes"] = round(offset, 2)
        last_run = done[arm.stages[-1].name]
        pool = arm.stages[-1].overrides.get("clip_pool")
        result["distinct_clips"] = pool or load_config(last_run)["record"].get("clips_seen")
        for name, value in extra.items():
            result[name] = _judge(value, net, n=n, seed=seed, steps=sample_steps, evaluate_fvd=evaluate_fvd) \
                if isinstance(value, KeyframePipe) else value
        report["arms"][arm.name] = result
        grid_rows[arm.name] = pipe(GRID_PROMPTS, sampling=pipe.sampling.merged(steps=sample_steps), seed=seed,
                                   progress=False)
        (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")  # after every arm: nothing is lost
    every = {a.name: a for a in make_arms(list(clip_pools), frames)}
    report["arms"] = {name: report["arms"][name] for name in every if name in report["arms"]}  # the arms' order
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    for name in report["arms"]:  # arms kept from an earlier report: sample their grid rows again
        if name not in grid_rows:
            arm_pipe = _arm_pipe(every[name], out)
            grid_rows[name] = arm_pipe(GRID_PROMPTS, sampling=arm_pipe.sampling.merged(steps=sample_steps), seed=seed,
                                       progress=False)
    _write_outputs(out, report, [(name, grid_rows[name]) for name in report["arms"]])
    return report


def _judge(pipe, net, *, n: int, seed: int, steps: int, evaluate_fvd) -> dict:
    sampling = pipe.sampling.merged(steps=steps)
    pf = evaluate_prompt_following(pipe, n=n, seed=seed, split="canonical", sampling=sampling, progress=False)
    fvd, _ = evaluate_fvd(pipe, net, n=n, seed=seed, sampling=sampling, progress=False)
    return {"colour_accuracy": pf["colour_accuracy"], "direction_accuracy": pf["direction_accuracy"],
            "colour_and_direction_accuracy": pf["colour_and_direction_accuracy"],
            "warping_error": pf["stability"].get("mean_warping_error"),
            "dynamic_degree": pf["stability"].get("mean_dynamic_degree"),
            "vanished_clips": pf["stability"]["vanished_clips"],
            "fvd": fvd.get("generated"), "fvd_floor": fvd.get("floor"),
            "fjd": fvd.get("joint", {}).get("generated"), "fjd_floor": fvd.get("joint", {}).get("floor")}


def write_charts(out: Path, report: dict) -> None:
    """time.png and data.png from a report (each quality measure that the arms' curves hold: colour accuracy, and
    colour-and-direction accuracy)."""
    arms = report["arms"]
    for key, what in (("colour_accuracy", "colour"), ("colour_and_direction_accuracy", "colour-and-direction")):
        suffix = "" if key == "colour_accuracy" else "-both"
        line_chart(out / f"time{suffix}.png", {name: [(p["minutes"], p[key]) for p in r["curve"]]
                                               for name, r in arms.items() if r["curve"]},
                   title=f"{what} accuracy during training (canonical prompts, n = {report['protocol']['n_curve']})",
                   x_label="training minutes", y_label="accuracy")
        pools = {}
        for name, r in arms.items():
            if name.startswith(("inflated", "scratch")):
                pools.setdefault(name.split(" ")[0], []).append((r["distinct_clips"], r[key]))
        if pools:
            line_chart(out / f"data{suffix}.png", pools, x_label="distinct training clips (K)", y_label="accuracy",
                       title=f"{what} accuracy: inflated image model vs scratch, by distinct training clips")


def _write_outputs(out: Path, report: dict, grid_rows: list) -> None:
    write_charts(out, report)
    videos = torch.cat([v.cpu() for _, v in grid_rows])  # (arms * prompts, 3, F, H, W)
    write_video(out / "grid.gif", video_grid(videos, ncols=len(GRID_PROMPTS)), scale=2)
    save_contact_sheet(out / "grid.png", list(to_uint8(videos)),
                       captions=[f"{name}: {p}" for name, _ in grid_rows for p in GRID_PROMPTS], scale=1)
    write_markdown(out, report)


def _fmt(v, digits=3):
    return "–" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))


def write_markdown(out: Path, report: dict) -> None:
    p = report["protocol"]
    lines = ["# The approaches, side by side", "",
             f"Budget per arm: {p['budget_per_arm']}, seed {p['seed']}, shapes world, preset `{p['preset']}`. "
             f"Judged on {p['n']} canonical prompts (pixel probe) and FVD-/FJD-shapes at n = {p['fvd_n']} "
             f"({p['sample_steps']} dpmpp-2m steps, guidance 4). Written by `stillmotion experiment approaches`"
             + (":" if report.get("commands") else "."), "",
             *[f"    {c}" for c in report.get("commands", [])], "",
             "| arm | train min | colour | direction | both | FVD-shapes (floor) | FJD-shapes (floor) | warping error "
             "| dynamic degree | vanished |", "|---|---|---|---|---|---|---|---|---|---|"]
    rows = []
    for name, r in report["arms"].items():
        rows.append((name, r))
        rows += [(f"{name}: {k}", v) for k, v in r.items() if isinstance(v, dict) and "colour_accuracy" in v]
    for name, r in rows:
        lines.append(f"| {name} | {_fmt(r.get('train_minutes'), 1)} | {_fmt(r['colour_accuracy'])} | "
                     f"{_fmt(r['direction_accuracy'])} | {_fmt(r['colour_and_direction_accuracy'])} | "
                     f"{_fmt(r.get('fvd'), 1)} ({_fmt(r.get('fvd_floor'), 1)}) | {_fmt(r.get('fjd'), 1)} "
                     f"({_fmt(r.get('fjd_floor'), 1)}) | {_fmt(r.get('warping_error'), 2)} | "
                     f"{_fmt(r.get('dynamic_degree'), 2)} | {_fmt(r.get('vanished_clips'))} |")
    interp = report["arms"].get("keyframes", {}).get("interpolator on real keyframes")
    if interp:
        lines += ["", f"In-betweens of real keyframes {interp['protocol']['keyframes']} ({interp['protocol']['n']} "
                  "held-out clips, scored on the other frames):", "", "| fill | PSNR (dB) | SSIM |", "|---|---|---|"]
        lines += [f"| {k} | {interp[k]['psnr']:.2f} | {interp[k]['ssim']:.3f} |" for k in ("diffusion", "flow",
                                                                                         "crossfade")]
    lines += ["", "Quality during training (each arm judged after each segment of its budget; colour accuracy, then "
              "colour and direction):", "", "![colour accuracy during training](time.png)",
              "![colour-and-direction accuracy during training](time-both.png)", ""]
    if (out / "data.png").exists():
        lines += ["Inflation vs scratch by the number of distinct training clips:", "",
                  "![inflation vs scratch by data](data.png) ![the same, colour and direction](data-both.png)", ""]
    lines += ["The same prompts from every arm (rows in table order; columns: " + "; ".join(GRID_PROMPTS) + "):", "",
              "![grid](grid.gif)", ""]
    if (out / "reading.md").exists():  # the people's reading of the numbers, kept when the report is rewritten
        lines += [(out / "reading.md").read_text().rstrip(), ""]
    (out / "README.md").write_text("\n".join(lines) + "\n")
