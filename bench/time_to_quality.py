"""Time to quality: every backbone trained by stillmotion's own loop for the same wall-clock budget, then judged
by the same evaluator.

Each model (stillmotion's "cpu" U-Net and the peers of bench/peers.py, all `net(x, noise_level, cond)`) is trained
with `stillmotion.train.loop.train` on the shapes world (preset shapes-s: 16 x 32 x 32 clips, batch 16, the same
data order, noise levels, optimizer, EMA and budget), one after the other, so each gets the machine to itself.
The loop builds its network with `build_unet(cfg.model, ...)`; here that name is pointed at `peers.build` while a
peer trains (nothing under src/ changes). The EMA weights are judged by
`stillmotion.eval.prompt_following.evaluate_prompt_following` (held-out wordings by default, dpmpp-2m, guidance 4)
and FVD-shapes (`stillmotion.eval.fvd.evaluate_fvd`, with its floor).

The --curve-models (stillmotion by default) are trained in --points equal segments of their budget and judged
after each, prompt accuracy and FVD-shapes (stillmotion.train.segments; resuming is exact, so the finished run is
the same), which gives the time at which stillmotion first reached each peer's final quality (accuracy at least
the peer's, FVD at most): the goal is at most half the peer's time.

Everything runs on the device the training loop picks (`stillmotion.train.dist.init`: CUDA when there is one), the
judging too. A backbone that fails (a missing package, an op its library runs only on the CPU) is reported under
"failed" and the others go on.

    # the real run; results in bench/results/time_to_quality.json
    python bench/time_to_quality.py --minutes 8 --n 32 --fvd-n 32 --eval-steps 10 --threads 2 --split canonical
    # a smoke test of the plumbing
    python bench/time_to_quality.py --steps 4 --n 2 --fvd-n 4 --eval-steps 2 --points 2 --threads 1 \\
        --set batch_size=2 frames=8
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import traceback
from pathlib import Path

import torch

from common import machine, markdown_table, setup_threads, write_json
from peers import MODELS, build
from stillmotion import checkpoint
from stillmotion.diffusion.denoiser import Denoiser
from stillmotion.eval.prompt_following import evaluate_prompt_following
from stillmotion.models.text import TextEncoder
from stillmotion.pipelines.text_to_video import TextToVideo, load
from stillmotion.train import dist
from stillmotion.train import loop as train_loop
from stillmotion.train.config import make_config
from stillmotion.train.segments import train_in_segments


@contextlib.contextmanager
def loop_builds(name: str):
    """Make the training loop's `build_unet(cfg.model, text_dim=...)` build `name` (the run's model config, the
    "cpu" preset, is then only a record: a peer is built by bench/peers.py)."""
    original = train_loop.build_unet
    if name != "stillmotion":
        def build_for_loop(model, **kwargs):
            if kwargs.keys() - {"text_dim"}:
                raise ValueError(f"peer '{name}' takes no model fields (got {sorted(kwargs)})")
            return build(name, kwargs.get("text_dim", 384))
        train_loop.build_unet = build_for_loop
    try:
        yield
    finally:
        train_loop.build_unet = original


def load_trained(name: str, run: Path, cfg, device: torch.device) -> TextToVideo:
    """The EMA weights of a finished run as a text-to-video pipeline on `device` (a peer cannot go through
    `load`, which rebuilds a SpaceTimeUNet from config.json)."""
    if name == "stillmotion":
        return load(run, device=device)
    net = build(name).to(device)
    net.load_state_dict(checkpoint.load_weights(run), strict=True)
    net.eval().requires_grad_(False)
    denoiser = Denoiser(net, cfg.parameterization, cfg.sigma_data, cfg.data_mean)
    return TextToVideo(denoiser, TextEncoder(cfg.text_encoder, device=device), frames=cfg.frames, size=cfg.size,
                       info=checkpoint.load_config(run))


QUALITY = ("colour_accuracy", "colour_and_direction_accuracy", "fvd")
WALL_CLOCK_NOTE = ("budgets and 'minutes' are wall-clock seconds of training (judging not counted); meaningful "
                   "only on an otherwise idle machine")


def judge(pipe, *, n: int, steps: int, split: str) -> dict:
    report = evaluate_prompt_following(pipe, n=n, sampling=pipe.sampling.merged(steps=steps), split=split,
                                       progress=False)
    return {k: report[k] for k in ("colour_accuracy", "direction_accuracy", "colour_and_direction_accuracy")}


def time_to_reach(curve: list[dict], target: dict, key: str) -> float | None:
    """Training minutes of the first curve point whose `key` is at least as good as the target's: at least its
    accuracy, at most its FVD (None: never reached)."""
    better = (lambda a, b: a <= b) if key == "fvd" else (lambda a, b: a >= b)
    return next((p["minutes"] for p in curve if p.get(key) is not None and target.get(key) is not None
                 and better(p[key], target[key])), None)


def reach_rows(results: dict, ours: str = "stillmotion") -> list[list]:
    """For each peer and quality measure: the peer's final value and minutes, and when our curve reached it."""
    rows = []
    for name, r in results.items():
        if name == ours or ours not in results:
            continue
        for key in QUALITY:
            t = time_to_reach(results[ours]["curve"], r["final"], key)
            if r["final"].get(key) is None:
                continue
            rows.append([name, key.replace("_accuracy", ""), f"{r['final'][key]:.3f}", f"{r['train_minutes']:.1f}",
                         "not reached" if t is None else f"{t:.1f}",
                         "-" if t is None else f"{t / r['train_minutes']:.2f}"])
    return rows


def run_model(name: str, args, budget: dict, feature_net, evaluate_fvd) -> dict:
    """Train one backbone (in segments if it is a curve model), judge it, and score its final EMA weights."""
    overrides = dict(kv.split("=", 1) for kv in args.set)
    overrides.update({"out": str(Path(args.out) / name), "model": "cpu",
                      "threads": "none" if args.threads is None else str(args.threads),
                      "sampling.steps": str(min(20, args.eval_steps)), "ckpt_minutes": "1e9"})

    def config_for(part: dict):
        return make_config(args.preset, {**overrides, "minutes": "none", "steps": "none",
                                         **{k: str(v) for k, v in part.items()}})

    def score(run: Path) -> dict:
        """Prompt accuracy and FVD-shapes at every point, so the time to reach a peer's FVD is known too."""
        pipe = load_trained(name, run, config_for(budget), args.device)
        fvd, _ = evaluate_fvd(pipe, feature_net, n=args.fvd_n, sampling=pipe.sampling.merged(steps=args.eval_steps),
                              progress=False)
        return {**judge(pipe, n=args.n, steps=args.eval_steps, split=args.split), "fvd": fvd.get("generated"),
                "fvd_report": {k: fvd.get(k) for k in ("metric", "generated", "floor", "generated_ratio_to_floor",
                                                       "skipped")}}

    points = args.points if name in args.curve_models else 1
    print(f"== {name}: {args.preset}, budget {budget} in {points} segment(s) -> {overrides['out']}", flush=True)
    with loop_builds(name):
        run, curve, minutes = train_in_segments(config_for, budget, points, judge=score, overwrite=True)
    record = checkpoint.load_config(run)["record"]
    fvd = curve[-1][1].pop("fvd_report")
    for _, s in curve[:-1]:
        s.pop("fvd_report")
    return {"run": str(run), "params": record["params"], "steps": record["step"], "clips_seen": record["clips_seen"],
            "train_minutes": minutes, "final_loss": record["final_loss"], "final": curve[-1][1],
            "curve": [{"minutes": round(m, 2), **s} for m, s in curve],
            "fvd": {k: fvd.get(k) for k in ("metric", "generated", "floor", "generated_ratio_to_floor", "skipped")}}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--minutes", type=float, help="wall-clock training budget per model")
    p.add_argument("--steps", type=int, help="optimizer steps per model (a smoke test), instead of --minutes")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice, all cores)")
    p.add_argument("--n", type=int, default=64, help="prompts for the prompt-following evaluation")
    p.add_argument("--fvd-n", type=int, default=64, help="clips for FVD-shapes (and its floor)")
    p.add_argument("--split", default="heldout", choices=["heldout", "canonical", "train"], help="prompt wordings")
    p.add_argument("--eval-steps", type=int, default=20)
    p.add_argument("--points", type=int, default=4,
                   help="judge the --curve models after each of this many equal segments of their budget")
    p.add_argument("--curve-models", nargs="*", default=["stillmotion"], choices=MODELS,
                   help="models trained in segments and judged after each (the others: at the end only)")
    p.add_argument("--preset", default="shapes-s")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more training options (all models)")
    p.add_argument("--out", default="runs/time_to_quality")
    args = p.parse_args(argv)
    args.device = dist.init()  # where the training loop runs (CUDA when there is one), and so the judging
    if (args.minutes is None) == (args.steps is None):
        p.error("give exactly one budget: --minutes M (the benchmark) or --steps N (a smoke test)")
    if args.threads:
        setup_threads(args.threads)
    from stillmotion.eval.features import load_feature_net
    from stillmotion.eval.fvd import evaluate_fvd

    feature_net = load_feature_net("shapes", device=args.device)
    budget = {"minutes": args.minutes} if args.minutes is not None else {"steps": args.steps}
    results, rows, failed = {}, [], {}
    for name in args.models:
        try:
            results[name] = r = run_model(name, args, budget, feature_net, evaluate_fvd)
        except Exception as e:  # noqa: BLE001 -- one backbone that cannot run here must not lose the others
            traceback.print_exc()
            failed[name] = f"{type(e).__name__}: {e}"
            continue
        final, fvd = r["final"], r["fvd"]
        rows.append([name, f"{r['params'] / 1e6:.2f}", r["steps"], r["clips_seen"], f"{r['train_minutes']:.1f}",
                     f"{r['final_loss']:.4f}", f"{final['colour_accuracy']:.3f}", f"{final['direction_accuracy']:.3f}",
                     f"{final['colour_and_direction_accuracy']:.3f}", f"{fvd.get('generated') or float('nan'):.1f}",
                     f"{fvd.get('floor') or float('nan'):.1f}"])
        print(f"   {name}: {r['steps']} steps in {r['train_minutes']:.1f} min, loss {r['final_loss']:.4f}, {final}, "
              f"FVD {fvd.get('generated')}", flush=True)
        # nothing lost if a later model fails
        write_json("time_to_quality_partial.json", {"models": results, "failed": failed})
    table = markdown_table(["model", "params (M)", "steps", "clips seen", "train min", "final loss", "colour acc",
                            "direction acc", "both", "FVD-shapes", "floor"], rows)
    curves = markdown_table(["model", "training min", "colour acc", "direction acc", "both", "FVD-shapes"],
                            [[name, f"{c['minutes']:.1f}", f"{c['colour_accuracy']:.3f}",
                              f"{c['direction_accuracy']:.3f}", f"{c['colour_and_direction_accuracy']:.3f}",
                              f"{c.get('fvd') or float('nan'):.1f}"]
                             for name, r in results.items() for c in r["curve"]])
    reach = markdown_table(["peer", "quality", "peer's final", "peer's minutes", "stillmotion reached it at min",
                            "ratio (goal <= 0.5)"], reach_rows(results))
    print(f"\n{table}\n\n{curves}\n\n{reach}\n\nevaluation: {args.split} prompts, n={args.n}, FVD n={args.fvd_n}, "
          f"dpmpp-2m {args.eval_steps} steps, guidance 4. The budget is wall-clock: run this on an otherwise idle "
          "machine, or every model's share differs.")
    name = "time_to_quality.json" if args.minutes is not None else "time_to_quality_steps.json"  # smoke tests apart
    path = write_json(name, {"benchmark": "time_to_quality", "argv": sys.argv[1:],
                             "machine": machine(WALL_CLOCK_NOTE, args.device), "models": results, "failed": failed,
                             "tables": {"final": table, "curves": curves, "reach": reach}})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
