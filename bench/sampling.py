"""Sampling benchmark of the shipped model (`stillmotion.load()`): seconds per 16-frame 32x32 clip for every
sampler and step count, and how much prompt-following quality each keeps against a 250-step reference.

Three parts, each its own run (the reference is slow, so it is computed once and saved):

    nice -n 19 env OMP_NUM_THREADS=1 python bench/sampling.py timing      # s/clip at batch 1, all samplers
    nice -n 19 env OMP_NUM_THREADS=1 python bench/sampling.py reference   # dpmpp-2m, 250 steps, n prompts
    nice -n 19 env OMP_NUM_THREADS=1 python bench/sampling.py quality     # each sampler x steps vs the reference

Quality is `stillmotion.eval.prompt_following.evaluate_prompt_following` (`--split`: plainly worded prompts by
default, or held-out wordings; guidance 4, seed 0): colour and direction accuracy of n clips, read by the pixel
probe, with the model's default sampling (its config.json's strategy; plain diffusion). n is small (16 by
default) because the reference costs 250 x 2 network evaluations per clip: at n = 16 one clip is 1/16 = 6.25
points, at n = 64 1.56, so the "within 2 points" test is read with that resolution. Two finer measures compare
each clip with the reference clip of the same prompt and seed (the same initial noise): `agree`, the fraction
whose probe reading (colour and direction) equals the reference's, and `rmse`, the pixel RMSE in [-1, 1] units;
both are only meaningful for the deterministic samplers (euler, heun, ddim with eta 0, dpmpp-2m), whose reference
is the same ODE solution.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from common import RESULTS, TIMING_NOTE, machine, markdown_table, round_robin, setup_threads, timed, write_json
from stillmotion import load
from stillmotion.data.video_io import to_uint8
from stillmotion.diffusion.samplers import SAMPLERS
from stillmotion.eval.probe import read_clip
from stillmotion.eval.prompt_following import evaluate_prompt_following

PROMPT = "a red circle moving left"
DETERMINISTIC = ("euler", "heun", "ddim", "dpmpp-2m")


def evaluations(sampler: str, steps: int) -> int:
    """Network evaluations (each one batch of 2B: conditional + unconditional) for one sampling run."""
    return 2 * steps - 1 if sampler == "heun" else steps


class Recorder:
    """Calls the pipeline like evaluate_prompt_following does, keeping every clip and the CPU/wall time spent
    generating (the judge's time is left out)."""

    def __init__(self, pipe):
        self.pipe, self.videos, self.cpu_s, self.wall_s = pipe, [], 0.0, 0.0
        self.sampling = pipe.sampling

    def __call__(self, prompts, **kwargs):
        out = {}
        c, w = timed(lambda: out.setdefault("v", self.pipe(prompts, **kwargs)))
        self.cpu_s, self.wall_s = self.cpu_s + c, self.wall_s + w
        self.videos.append(out["v"].cpu())
        return out["v"]


def run_quality(pipe, sampler: str, steps: int, n: int, batch: int, split: str) -> tuple[dict, torch.Tensor]:
    rec = Recorder(pipe)
    report = evaluate_prompt_following(rec, n=n, sampling=pipe.sampling.merged(steps=steps, sampler=sampler),
                                       batch=batch, split=split, progress=False)
    report.pop("failures")
    report.update(generate_cpu_s_per_clip=rec.cpu_s / n, generate_wall_s_per_clip=rec.wall_s / n)
    return report, torch.cat(rec.videos)  # (n, 3, F, H, W)


def readings(videos: torch.Tensor) -> list[tuple[str, str]]:
    return [(r.colour, r.direction) for r in (read_clip(v) for v in to_uint8(videos))]


def _suffix(args) -> str:
    """Result-file suffix of a quality part: the held-out split keeps the older name (`_n16`)."""
    return ("" if args.split == "heldout" else f"_{args.split}") + f"_n{args.n}"


def part_timing(pipe, args) -> dict:
    """Latency of one clip (batch 1: one network call of batch 2 per evaluation, guidance 4), CPU and wall,
    round-robin over sampler x steps. The cost per clip when 16 are generated together is in the quality part."""
    pipe(PROMPT, sampling=pipe.sampling.merged(steps=2), progress=False)  # warm-up: every later call's shapes
    calls = {}
    for name in args.samplers:
        for steps in args.steps:
            calls[f"{name}/{steps}"] = (lambda name=name, steps=steps:
                                        pipe(PROMPT, sampling=pipe.sampling.merged(steps=steps, sampler=name),
                                             seed=0, progress=False))
    times = round_robin(calls, args.repeats, warmup=0, log=lambda s: print(s, flush=True))
    rows, out = [], []
    for name in args.samplers:
        for steps in args.steps:
            t = times[f"{name}/{steps}"]
            nfe = evaluations(name, steps)
            out.append({"sampler": name, "steps": steps, "evaluations": nfe, "cpu_s": t["cpu_s"],
                        "wall_s": t["wall_s"], "cpu_s_per_evaluation": t["cpu_s"] / nfe, "samples": t})
            rows.append([name, steps, nfe, t["cpu_s"], t["wall_s"], t["cpu_s"] / nfe,
                         "yes" if t["cpu_s"] < 2 else "no"])
    table = markdown_table(["sampler", "steps", "network evals (batch 2)", "cpu s/clip", "wall s/clip",
                            "cpu s/eval", "cpu s < 2"], rows)
    return {"results": out, "table": table}


def part_reference(pipe, args) -> dict:
    report, videos = run_quality(pipe, args.ref_sampler, args.ref_steps, args.n, min(args.n, 16), args.split)
    torch.save(videos, RESULTS / f"sampling_reference{_suffix(args)}.pt")
    print(f"reference {args.ref_sampler} {args.ref_steps} steps, n={args.n}: colour {report['colour_accuracy']:.3f}, "
          f"direction {report['direction_accuracy']:.3f}, both {report['colour_and_direction_accuracy']:.3f}; "
          f"{report['generate_cpu_s_per_clip']:.2f} cpu s/clip")
    return {"reference": report}


def part_quality(pipe, args) -> dict:
    ref_path = RESULTS / f"sampling_reference{_suffix(args)}.json"
    if not ref_path.exists():
        raise FileNotFoundError(f"{ref_path} is missing: run `python bench/sampling.py reference --n {args.n} "
                                f"--split {args.split}` first")
    import json

    ref = json.loads(ref_path.read_text())["reference"]
    ref_videos = torch.load(RESULTS / f"sampling_reference{_suffix(args)}.pt")
    ref_read = readings(ref_videos)
    rows, out = [], []
    for name in args.samplers:
        for steps in args.steps:
            report, videos = run_quality(pipe, name, steps, args.n, min(args.n, 16), args.split)
            read = readings(videos)
            agree = float(np.mean([a == b for a, b in zip(read, ref_read)]))
            rmse = float((videos - ref_videos).pow(2).mean().sqrt())
            d_colour = 100 * (report["colour_accuracy"] - ref["colour_accuracy"])
            d_dir = 100 * (report["direction_accuracy"] - ref["direction_accuracy"])
            d_both = 100 * (report["colour_and_direction_accuracy"] - ref["colour_and_direction_accuracy"])
            det = name in DETERMINISTIC
            out.append({"sampler": name, "steps": steps, "report": report, "agree_with_reference": agree,
                        "rmse_vs_reference": rmse, "delta_points": {"colour": d_colour, "direction": d_dir,
                                                                    "both": d_both}})
            rows.append([name, steps, report["colour_accuracy"], report["direction_accuracy"],
                         report["colour_and_direction_accuracy"], f"{d_colour:+.1f}", f"{d_dir:+.1f}",
                         f"{agree:.2f}" if det else f"({agree:.2f})", f"{rmse:.3f}" if det else f"({rmse:.3f})",
                         f"{report['generate_cpu_s_per_clip']:.2f}"])
            print(f"  {name} {steps}: " + " ".join(str(v) for v in rows[-1][2:]), flush=True)
    rows.append([f"reference: {ref['protocol']['sampler']}", ref["protocol"]["steps"], ref["colour_accuracy"],
                 ref["direction_accuracy"], ref["colour_and_direction_accuracy"], "0", "0", "1", "0",
                 f"{ref['generate_cpu_s_per_clip']:.2f}"])
    table = markdown_table(["sampler", "steps", "colour acc", "direction acc", "both", "colour pts vs ref",
                            "direction pts vs ref", "agree with ref", "RMSE vs ref", "cpu s/clip (batch 16)"], rows)
    return {"reference": ref, "results": out, "table": table}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("part", choices=["timing", "reference", "quality"])
    p.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=list(SAMPLERS))
    p.add_argument("--steps", nargs="+", type=int, default=[10, 20, 50])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--n", type=int, default=16, help="prompts for the quality parts")
    p.add_argument("--ref-steps", type=int, default=250)
    p.add_argument("--ref-sampler", default="dpmpp-2m", choices=list(SAMPLERS))
    p.add_argument("--split", default="canonical", choices=["canonical", "heldout"],
                   help="prompt wording for the quality parts (held-out wordings: the words no caption uses)")
    args = p.parse_args(argv)
    setup_threads(1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    pipe = load()
    print(f"sampling ({args.part}): shipped model, 16x32x32 clips, guidance 4; {TIMING_NOTE}", flush=True)
    result = {"timing": part_timing, "reference": part_reference, "quality": part_quality}[args.part](pipe, args)
    name = f"sampling_{args.part}" + ("" if args.part == "timing" else _suffix(args)) + ".json"
    path = write_json(name, {"benchmark": f"sampling/{args.part}", "argv": sys.argv[1:], "machine": machine(),
                             "n": args.n, **result})
    if "table" in result:
        print(f"\n{TIMING_NOTE}\n\n{result['table']}")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
