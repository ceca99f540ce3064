"""Frame scaling: time, FLOP and memory of one clip as frames grow 8 -> 16 -> 32 -> 64 at 32x32, for stillmotion's
"cpu" U-Net and the peers of bench/peers.py.

Per model and frame count (batch --batch): forward GFLOP (FlopCounterMode, exact and load-free), forward time and
training time (forward + MSE + backward, no optimizer: its cost does not depend on frames), timed round-robin over
the models; peak memory of the forward + backward as the growth of a fresh child process's peak RSS (VmHWM)
over its RSS after building the model and inputs, one child per model and frame count. The growth
exponent k of cost ~ frames^k is the least-squares slope of log cost on log frames over all counts, and per
doubling log2(cost(2F) / cost(F)); k = 1 is linear.

    nice -n 19 env OMP_NUM_THREADS=1 python bench/scaling.py     # table + bench/results/scaling.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from common import (
    RESULTS,
    TIMING_NOTE,
    machine,
    markdown_table,
    peak_rss_mb,
    reset_peak_rss,
    round_robin,
    run_child,
    setup_threads,
    write_json,
)
from peers import MODELS, build, example


def exponent(frames: list[int], cost: list[float]) -> float:
    """Least-squares slope of log(cost) on log(frames) (NaN when a value is missing)."""
    if not all(math.isfinite(c) and c > 0 for c in cost):
        return float("nan")
    return float(np.polyfit(np.log(frames), np.log(cost), 1)[0])


def doublings(frames: list[int], cost: list[float]) -> list[float]:
    ok = [math.isfinite(c) and c > 0 for c in cost]
    return [math.log(cost[i + 1] / cost[i]) / math.log(frames[i + 1] / frames[i]) if ok[i] and ok[i + 1]
            else float("nan") for i in range(len(frames) - 1)]


def train_fn(net, x, nl, cond, target):
    def step():
        net.zero_grad(set_to_none=True)
        (net(x, nl, cond) - target).pow(2).mean().backward()
    return step


def forward_fn(net, x, nl, cond):
    def forward():
        with torch.inference_mode():
            net(x, nl, cond)
    return forward


def memory_child(name: str, frames: int, batch: int, size: int) -> dict:
    """Runs in its own process (one per model and frame count): peak RSS growth of one forward + backward."""
    setup_threads(1)
    net = build(name)
    x, nl, cond, target = example(batch, frames, size)
    base = reset_peak_rss()
    train_fn(net, x, nl, cond, target)()
    return {"model": name, "frames": frames, "baseline_mb": round(base, 1),
            "train_peak_mb": round(peak_rss_mb() - base, 1)}


def measure_memory(name: str, frames: list[int], args) -> list[float]:
    print(f"peak memory of {name} (a child process per frame count)...", flush=True)
    out = []
    for f in frames:
        r = run_child(__file__, ["--memory-child", name, "--batch", str(args.batch), "--size", str(args.size),
                                 "--frames", str(f)])
        out.append(r.get("train_peak_mb", float("nan")))
    return out


def finish(result: dict, out: str):
    """Exponents, the markdown table, the JSON file."""
    rows = []
    labels = {"gflop": "fwd GFLOP", "fwd_s": "fwd cpu s", "train_s": "fwd+bwd cpu s", "train_peak_mb": "peak MiB"}
    for name, r in result["models"].items():
        frames = r["frames"]
        for k, label in labels.items():
            if k in r:
                r[f"{k}_exponent"] = exponent(frames, r[k])
                r[f"{k}_doublings"] = doublings(frames, r[k])
                rows.append([name, label, *[f"{v:.3g}" for v in r[k]], f"{r[f'{k}_exponent']:.2f}",
                             " ".join(f"{d:.2f}" for d in r[f"{k}_doublings"])])
    frames = next(iter(result["models"].values()))["frames"]
    result["table"] = markdown_table(["model", "quantity", *[f"F={f}" for f in frames], "exponent (fit)",
                                      "per doubling"], rows)
    print(f"\nbatch {result['batch']}, {result['size']}x{result['size']}; {TIMING_NOTE}\n\n{result['table']}")
    return write_json(out, result)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--frames", nargs="+", type=int, default=[8, 16, 32, 64])
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--memory-only", action="store_true", help="only (re)measure peak memory, into an existing --out")
    p.add_argument("--out", default="scaling.json")
    p.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    frames = sorted(args.frames)
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, frames[0], args.batch, args.size)))
        return
    setup_threads(1)
    if args.memory_only:
        result = json.loads((RESULTS / args.out).read_text())
        for name in args.models:
            result["models"][name]["train_peak_mb"] = measure_memory(name, result["models"][name]["frames"], args)
        print(f"\nwrote {finish(result, args.out)}")
        return
    print(f"scaling: frames {frames} at {args.size}x{args.size}, batch {args.batch}; {TIMING_NOTE}", flush=True)
    nets = {name: build(name) for name in args.models}
    res = {name: {"frames": frames, "gflop": [], "fwd_s": [], "train_s": [], "fwd_wall_s": [], "train_wall_s": []}
           for name in args.models}
    for f in frames:
        x, nl, cond, target = example(args.batch, f, args.size)
        calls = {}
        for name, net in nets.items():
            with torch.no_grad(), FlopCounterMode(display=False) as fc:
                net(x[:1], nl[:1], cond[:1])
            res[name]["gflop"].append(fc.get_total_flops() / 1e9)
            calls[f"{name}/fwd"] = forward_fn(net, x, nl, cond)
            calls[f"{name}/train"] = train_fn(net, x, nl, cond, target)
        print(f"{f} frames:", flush=True)
        times = round_robin(calls, args.repeats, log=lambda s: print(s, flush=True))
        for name in args.models:
            for k in ("fwd", "train"):
                res[name][f"{k}_s"].append(times[f"{name}/{k}"]["cpu_s"])
                res[name][f"{k}_wall_s"].append(times[f"{name}/{k}"]["wall_s"])
    result = {"benchmark": "scaling", "argv": sys.argv[1:], "size": args.size, "batch": args.batch,
              "machine": machine(), "models": res}
    path = finish(result, args.out)  # the timings are saved before the (slow) memory children run
    if not args.no_memory:
        for name in args.models:
            res[name]["train_peak_mb"] = measure_memory(name, frames, args)
        path = finish(result, args.out)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
