"""Time to quality: every backbone trained by stillmotion's own loop for the same wall-clock budget, then judged
by the same evaluator.

Each model (stillmotion's "cpu" U-Net and the peers of bench/peers.py, all `net(x, noise_level, cond)`) is trained
with `stillmotion.train.loop.train` on the shapes world (preset shapes-s: 16 x 32 x 32 clips, batch 16, v-prediction,
the same data order, noise levels, optimizer, EMA and budget), one after the other, so each gets the machine to
itself. The loop builds its network with `build_unet(cfg.model, ...)`; here that name is pointed at `peers.build`
while a peer trains (nothing under src/ changes). Then the EMA weights are scored by
`stillmotion.eval.prompt_following.evaluate_prompt_following` (held-out wordings, dpmpp-2m, 20 steps,
guidance 4).

    # the real run (about 4 x (minutes + evaluation)); results in bench/results/time_to_quality.json
    nice -n 19 python bench/time_to_quality.py --minutes 15 --n 64
    # a smoke test of the plumbing
    nice -n 19 env OMP_NUM_THREADS=1 python bench/time_to_quality.py --steps 20 --n 4 --eval-steps 2 --threads 1
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from common import machine, markdown_table, setup_threads, write_json
from peers import MODELS, build
from stillmotion.diffusion.denoiser import Denoiser
from stillmotion.eval.prompt_following import evaluate_prompt_following
from stillmotion.models.text import TextEncoder
from stillmotion.pipelines.text_to_video import TextToVideo
from stillmotion.train import checkpoint
from stillmotion.train import loop as train_loop
from stillmotion.train.config import make_config


@contextlib.contextmanager
def loop_builds(name: str):
    """Make the training loop's `build_unet(cfg.model, **overrides, text_dim=...)` build `name`."""
    original = train_loop.build_unet
    if name != "stillmotion":
        def build_for_loop(model, **kwargs):
            if kwargs.keys() - {"text_dim"}:
                raise ValueError(f"peer '{name}' takes no model_overrides (got {sorted(kwargs)})")
            return build(name, kwargs.get("text_dim", 384))
        train_loop.build_unet = build_for_loop
    try:
        yield
    finally:
        train_loop.build_unet = original


def load_trained(name: str, run: Path, cfg) -> TextToVideo:
    """The EMA weights of a finished run as a text-to-video pipeline (peers cannot go through from_pretrained,
    which rebuilds a SpaceTimeUNet from config.json)."""
    net = build(name)
    net.load_state_dict(checkpoint.load_weights(run), strict=True)
    net.eval().requires_grad_(False)
    return TextToVideo(Denoiser(net, cfg.parameterization, cfg.sigma_data), TextEncoder(cfg.text_encoder),
                       frames=cfg.frames, size=cfg.size)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--minutes", type=float, help="wall-clock training budget per model")
    p.add_argument("--steps", type=int, help="optimizer steps per model (a smoke test), instead of --minutes")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice, all cores)")
    p.add_argument("--n", type=int, default=64, help="prompts for the prompt-following evaluation")
    p.add_argument("--eval-steps", type=int, default=20)
    p.add_argument("--preset", default="shapes-s")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more training options (all models)")
    p.add_argument("--out", default="runs/time_to_quality")
    args = p.parse_args(argv)
    if (args.minutes is None) == (args.steps is None):
        p.error("give exactly one budget: --minutes M (the benchmark) or --steps N (a smoke test)")
    if args.threads:
        setup_threads(args.threads)
    results, rows = {}, []
    for name in args.models:
        overrides = dict(kv.split("=", 1) for kv in args.set)
        overrides.update(out=str(Path(args.out) / name), model="cpu" if name == "stillmotion" else name,
                         minutes="none" if args.minutes is None else str(args.minutes),
                         steps="none" if args.steps is None else str(args.steps),
                         threads="none" if args.threads is None else str(args.threads),
                         sample_steps=str(min(20, args.eval_steps)))
        cfg = make_config(args.preset, overrides)
        print(f"== {name}: {args.preset}, budget {args.minutes} min / {args.steps} steps -> {cfg.out}", flush=True)
        with loop_builds(name):
            run = train_loop.train(cfg)
        record = checkpoint.load_config(run)["record"]
        pipe = load_trained(name, run, cfg)
        report = evaluate_prompt_following(pipe, n=args.n, steps=args.eval_steps, progress=False)
        report.pop("failures")
        results[name] = {"run": str(run), "params": record["params"], "steps": record["step"],
                         "clips_seen": record["clips_seen"], "wall_clock_s": record["wall_clock_s"],
                         "final_loss": record["final_loss"], "prompt_following": report}
        rows.append([name, f"{record['params'] / 1e6:.2f}", record["step"], record["clips_seen"],
                     f"{record['wall_clock_s']:.0f}", f"{record['final_loss']:.4f}", report["colour_accuracy"],
                     report["direction_accuracy"], report["colour_and_direction_accuracy"]])
        print(f"   {name}: {record['step']} steps in {record['wall_clock_s']:.0f} s, loss {record['final_loss']:.4f}, "
              f"colour {report['colour_accuracy']:.3f}, direction {report['direction_accuracy']:.3f}", flush=True)
    table = markdown_table(["model", "params (M)", "steps", "clips seen", "train s", "final loss", "colour acc",
                            "direction acc", "both"], rows)
    print(f"\n{table}\n\nevaluation: held-out prompts, n={args.n}, dpmpp-2m {args.eval_steps} steps, guidance 4. The "
          "budget is wall-clock: run this on an otherwise idle machine, or every model's share differs.")
    name = "time_to_quality.json" if args.minutes is not None else "time_to_quality_steps.json"  # smoke tests apart
    path = write_json(name, {"benchmark": "time_to_quality", "argv": sys.argv[1:], "machine": machine(),
                             "models": results, "table": table})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
