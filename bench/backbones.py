"""Backbone benchmark: stillmotion's "cpu" U-Net against peer video U-Nets of about the same size.

For each model, on the same 3 x 16 x 32 x 32 clips with 384-d text tokens:
  - parameters; forward GFLOP per clip and training (forward + backward) GFLOP per clip, counted by
    torch.utils.flop_counter.FlopCounterMode (matmuls, convolutions, attention; a multiply-add is 2 FLOP);
  - forward time and training-step time (forward + MSE + backward + fused AdamW step) at batch --batch, timed
    round-robin with a large fp32 torch.mm, whose FLOP rate is this machine's achievable peak at the same thread
    count; achieved training GFLOP/s and its fraction of that peak; clips/s;
  - peak memory: each model runs in a fresh child process, and the growth of its peak resident set size
    (getrusage ru_maxrss) over the RSS after building the model and inputs is reported, first for an inference
    forward, then for two training steps (so AdamW's state is included). This counts everything torch allocates
    on the CPU, which tracemalloc does not see.

Variants (--variants, for --variant-models, stillmotion by default), each its own row against the peak of its
own dtype: bf16 autocast, torch.compile (inductor), and both. On a GPU (--device cuda) every call is repeated
--inner times and synchronized, times are wall seconds, the peaks are an 8192^3 fp32 (TF32 off, torch's default
for matmuls) and bf16 matmul, and peak memory is the CUDA allocator's, measured in-process.

    nice -n 19 env OMP_NUM_THREADS=1 python bench/backbones.py            # table + bench/results/backbones.json
    nice -n 19 env OMP_NUM_THREADS=1 python bench/backbones.py --profile  # where stillmotion's step spends time
    env OMP_NUM_THREADS=1 python bench/backbones.py --models stillmotion --variants fp32 bf16 compile --no-memory
    python bench/backbones.py --device cuda --batch 64 --variants fp32 bf16 compile compile-bf16 \\
        --out backbones_cuda.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections import defaultdict

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, flop_registry

from common import (
    RESULTS,
    TIMING_NOTE,
    machine,
    markdown_table,
    matmul_call,
    on_device,
    peak_rss_mb,
    reset_peak_rss,
    round_robin,
    run_child,
    setup_threads,
    write_json,
)
from peers import MODELS, build, example
from stillmotion.models.registry import count_params


def adamw(net) -> torch.optim.AdamW:
    """The optimizer of every model's training step: AdamW, fused as stillmotion's training loop runs it (one kernel
    over all tensors; torch's CPU default is a Python loop of ~8 ops per tensor, ~3 % of stillmotion's step)."""
    return torch.optim.AdamW(net.parameters(), lr=1e-4, fused=True)


def train_step_fn(net, opt, x, nl, cond, target):
    """One optimizer step on an MSE loss; the same for every backbone."""
    def step():
        opt.zero_grad(set_to_none=True)
        loss = (net(x, nl, cond) - target).pow(2).mean()
        loss.backward()
        opt.step()
    return step


def count_gflop(net, frames: int = 16, size: int = 32, device: torch.device | str = "cpu") -> tuple[float, float]:
    """(forward, forward + backward) GFLOP per clip, counted on a batch of 1."""
    x, nl, cond, target = (v.to(device) for v in example(1, frames, size))
    with torch.no_grad(), FlopCounterMode(display=False) as fwd:
        net(x, nl, cond)
    with FlopCounterMode(display=False) as both:
        (net(x, nl, cond) - target).pow(2).mean().backward()
    net.zero_grad(set_to_none=True)
    return fwd.get_total_flops() / 1e9, both.get_total_flops() / 1e9


def memory_child(name: str, batch: int, frames: int, size: int) -> dict:
    """Runs in its own process: peak RSS growth of an inference forward, then of two training steps (MiB)."""
    setup_threads(1)
    torch.manual_seed(0)
    net = build(name)
    x, nl, cond, target = example(batch, frames, size)
    opt = adamw(net)
    # One baseline, no reset in between: the allocator keeps memory freed after the forward, so growth over the
    # RSS after it would undercount the training step; training's peak is above inference's, so the high-water
    # mark after training is training's peak.
    base = reset_peak_rss()
    with torch.inference_mode():
        net(x, nl, cond)
    infer = peak_rss_mb()
    step = train_step_fn(net, opt, x, nl, cond, target)
    step()
    step()
    return {"model": name, "batch": batch, "frames": frames, "size": size, "baseline_mb": round(base, 1),
            "infer_peak_mb": round(infer - base, 1), "train_peak_mb": round(peak_rss_mb() - base, 1)}


class CpuTimePerOp(TorchDispatchMode):
    """Thread CPU time and counted FLOP of every aten op (forward and backward), by op name. torch.profiler
    reports wall time, which on a loaded machine mostly measures when the scheduler preempted us; CPU time does
    not. FLOP use FlopCounterMode's formulas, so the ops it counts are the ones the "% of matmul peak" counts."""

    def __init__(self):
        super().__init__()
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.flop: dict[str, int] = defaultdict(int)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        t0 = time.thread_time()
        out = func(*args, **kwargs)
        name = str(func.overloadpacket.__name__)
        self.seconds[name] += time.thread_time() - t0
        self.calls[name] += 1
        if func.overloadpacket in flop_registry:
            self.flop[name] += flop_registry[func.overloadpacket](*args, **kwargs, out_val=out)
        return out

    def table(self, total: float, rows: int) -> str:
        top = sorted(self.seconds.items(), key=lambda kv: -kv[1])[:rows]
        return markdown_table(["aten op", "cpu s", "% of step", "calls", "GFLOP/s"],
                              [[k, v, f"{100 * v / total:.1f}", self.calls[k],
                                f"{self.flop[k] / v / 1e9:.1f}" if self.flop[k] and v else "-"] for k, v in top])

    def summary(self, peak: float) -> str:
        """The share of time in ops that do counted FLOP and their rate: the step's ceiling if the rest were free."""
        busy = sum(v for k, v in self.seconds.items() if self.flop[k])
        rate = sum(self.flop.values()) / busy / 1e9
        return (f"ops with counted FLOP: {100 * busy / sum(self.seconds.values()):.1f} % of the time, at {rate:.1f} "
                f"GFLOP/s = {100 * rate / peak:.1f} % of the fp32 matmul peak ({peak:.1f} GFLOP/s, measured now)")


def profile_stillmotion(batch: int, rows: int = 20) -> str:
    """Where the cpu preset's training step spends time: per-op thread CPU time over two steps (the main table),
    then torch.profiler's table (wall time, by self time) for reference."""
    from torch.profiler import ProfilerActivity, profile

    net = build("stillmotion")
    x, nl, cond, target = example(batch)
    step = train_step_fn(net, adamw(net), x, nl, cond, target)
    step()  # warm-up (oneDNN primitive creation)
    per_op = CpuTimePerOp()
    c0 = time.process_time()
    with per_op:
        step()
        step()
    total = time.process_time() - c0
    mm, flop = matmul_call()
    peak = flop / 1e9 / round_robin({"matmul": mm}, repeats=3, log=None)["matmul"]["cpu_s"]  # as table 1 measures it
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
        step()
    return (f"stillmotion cpu preset, training step at batch {batch}, 16x32x32, 1 thread: {total / 2:.3f} cpu s "
            f"per step (with per-op timing)\n{per_op.summary(peak)}\n\n"
            f"per-op thread CPU time, two steps:\n\n{per_op.table(total, rows)}"
            f"\n\ntorch.profiler (wall clock, so inflated by preemption on a loaded machine), two steps:\n\n"
            + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def measure_memory(name: str, args) -> dict:
    print(f"peak memory of {name} (child process)...", flush=True)
    return run_child(__file__, ["--memory-child", name, "--batch", str(args.batch), "--frames", str(args.frames),
                                "--size", str(args.size)])


def update_memory(args) -> None:
    """--memory-only: measure peak memory again and rewrite the table of an existing result file."""
    path = RESULTS / args.out
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run bench/backbones.py without --memory-only first")
    result = json.loads(path.read_text())
    if (result["batch"], result["frames"], result["size"]) != (args.batch, args.frames, args.size):
        raise ValueError(f"{path} was measured at batch {result['batch']}, {result['frames']}x{result['size']}; "
                         f"pass the same --batch/--frames/--size")
    for name in args.models:
        if name in result["models"]:
            result["models"][name]["memory"] = measure_memory(name, args)
    finish(result, args.out)


VARIANTS = ("fp32", "bf16", "compile", "compile-bf16")
GPU_NOTE = ("timings: CUDA, wall seconds of `inner` back-to-back calls then torch.cuda.synchronize, divided by "
            "inner; medians over round-robin repeats; peak memory is torch.cuda.max_memory_allocated")


def row_name(name: str, variant: str) -> str:
    return name if variant == "fp32" else f"{name} [{variant}]"


def prepare(net, variant: str, device: torch.device):
    """The callable a variant times and its autocast context: `compile` wraps the same module in torch.compile
    (default inductor mode; the optimizer keeps the module's own parameters), `bf16` runs under bfloat16
    autocast (weights, gradients and AdamW state stay fp32)."""
    model = torch.compile(net) if variant.startswith("compile") else net
    if variant.endswith("bf16"):
        return model, lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return model, contextlib.nullcontext


def cuda_memory(call, device: torch.device) -> float:
    """Peak CUDA memory (MiB) that `call` allocates above what is allocated before it."""
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    call()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - base) / 2 ** 20


def finish(result: dict, out: str):
    """Speed-ups against stillmotion (same variant), the markdown table, the JSON file."""
    info, cuda = result["models"], result["device"] == "cuda"
    for r in info.values():
        base = info.get(row_name("stillmotion", r["variant"]))
        if base is not None and r["model"] != "stillmotion":
            r["stillmotion_train_speedup"] = base["train_clips_per_s"] / r["train_clips_per_s"]
            r["stillmotion_fwd_speedup"] = base["fwd_clips_per_s"] / r["fwd_clips_per_s"]
    t = "wall" if cuda else "cpu"
    header = ["model", "params (M)", "GFLOP/clip fwd", "GFLOP/clip train", f"fwd {t} s", f"train step {t} s",
              "train step wall s", "train clips/s", "train GFLOP/s", "% of matmul peak", "peak MiB fwd",
              "peak MiB train", "stillmotion speed-up (train)", "(fwd)"]
    rows = []
    for key, r in info.items():
        m = r.get("memory", {})
        if "error" in m:
            m = {"infer_peak_mb": m["error"], "train_peak_mb": m["error"]}
        rows.append([key, r["params"] / 1e6, r["fwd_gflop_per_clip"], r["train_gflop_per_clip"], r["fwd_s"],
                     r["train_step_s"], r["train_step_wall_s"], r["train_clips_per_s"], r["train_gflops"],
                     f"{100 * r['train_peak_fraction']:.1f}", m.get("infer_peak_mb", "-"), m.get("train_peak_mb", "-"),
                     f"{r['stillmotion_train_speedup']:.2f}x" if "stillmotion_train_speedup" in r else "1",
                     f"{r['stillmotion_fwd_speedup']:.2f}x" if "stillmotion_fwd_speedup" in r else "1"])
    result["table"] = markdown_table(header, rows)
    peaks = ", ".join(f"{k} {v:.1f}" for k, v in result["matmul_peak_gflops"].items())
    where = result["machine"].get("gpu", f"{result['machine']['threads']} thread(s)")
    print(f"\nbatch {result['batch']}, {result['frames']}x{result['size']}x{result['size']}; matmul peak GFLOP/s "
          f"({where}): {peaks}; {result['machine']['note']}\n")
    print(result["table"])
    return write_json(out, result)


def main(argv: list[str] | None = None) -> None:  # noqa: C901 - a script's modes; untested
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu", help="cpu (1 thread, CPU seconds) or cuda (wall seconds, synchronized)")
    p.add_argument("--inner", type=int, default=None,
                   help="calls per timed sample (default 1 on the CPU, 10 on CUDA, where one call is milliseconds)")
    p.add_argument("--variants", nargs="+", default=["fp32"], choices=VARIANTS,
                   help="fp32 (eager), bf16 (autocast), compile (torch.compile), compile-bf16; each a table row")
    p.add_argument("--variant-models", nargs="+", default=["stillmotion"], choices=MODELS,
                   help="the models the non-fp32 variants are measured for (compiling a peer takes minutes)")
    p.add_argument("--matmul", type=int, default=None,
                   help="size n of the n x n matmul that measures the peak (default 2048 on the CPU, 8192 on CUDA)")
    p.add_argument("--no-memory", action="store_true", help="skip the per-model child processes for peak memory")
    p.add_argument("--profile", action="store_true", help="only profile stillmotion's training step")
    p.add_argument("--memory-only", action="store_true", help="only (re)measure peak memory, into an existing --out")
    p.add_argument("--out", default="backbones.json")
    p.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device here")
    if cuda:  # fp32 means fp32: cuDNN would otherwise run fp32 convolutions as TF32 against an fp32 matmul peak
        torch.backends.cudnn.allow_tf32 = False
    inner = args.inner or (10 if cuda else 1)
    matmul_n = args.matmul or (8192 if cuda else 2048)

    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.batch, args.frames, args.size)))
        return
    setup_threads(1)
    if args.memory_only:
        update_memory(args)
        return
    if args.profile:
        table = profile_stillmotion(args.batch)
        print(table)
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "profile_stillmotion.txt").write_text(table + "\n")
        return

    note = GPU_NOTE if cuda else TIMING_NOTE
    clock = "wall_s" if cuda else "cpu_s"
    print(f"backbones on {device}: {args.frames}x{args.size}x{args.size} clips, batch {args.batch}; {note}",
          flush=True)
    calls, info = {}, {}
    dtypes = {"fp32": torch.float32, **({"bf16": torch.bfloat16} if any("bf16" in v for v in args.variants) else {})}
    mm_flop = {}
    for dname, dtype in dtypes.items():
        mm, mm_flop[dname] = matmul_call(matmul_n, device, dtype)
        calls[f"matmul/{dname}"] = on_device(mm, device, inner)
        mm()  # warm-up (round_robin's own warm-up is off: each model's first calls below are its warm-up)
    x, nl, cond, target = (v.to(device) for v in example(args.batch, args.frames, args.size))
    for name in args.models:
        for variant in args.variants if name in args.variant_models else ["fp32"]:
            key = row_name(name, variant)
            torch.manual_seed(0)
            net = build(name).to(device)
            fwd_gflop, train_gflop = count_gflop(net, args.frames, args.size, device)
            info[key] = {"model": name, "variant": variant, "params": count_params(net),
                         "fwd_gflop_per_clip": fwd_gflop, "train_gflop_per_clip": train_gflop}
            print(f"{key}: {info[key]['params'] / 1e6:.2f}M params, {fwd_gflop:.2f} GFLOP fwd, "
                  f"{train_gflop:.2f} GFLOP fwd+bwd per clip", flush=True)
            model, autocast = prepare(net, variant, device)
            opt = adamw(net)
            train = train_step_fn(model, opt, x, nl, cond, target)

            def forward(model=model, autocast=autocast):
                with torch.inference_mode(), autocast():
                    model(x, nl, cond)

            def train_step(train=train, autocast=autocast):
                with autocast():
                    train()
            try:  # the warm-up (compiling, too); a peer that cannot run here (a missing package, a CPU-only op)
                forward()  # loses its row, not the run
                train_step()
            except Exception as e:  # noqa: BLE001
                print(f"{key}: skipped, it failed to run: {type(e).__name__}: {e}", flush=True)
                info[key]["error"] = f"{type(e).__name__}: {e}"
                continue
            if cuda and not args.no_memory:  # in-process: the CUDA allocator's own peak is exact
                info[key]["memory"] = {"infer_peak_mb": round(cuda_memory(forward, device), 1),
                                       "train_peak_mb": round(cuda_memory(lambda t=train_step: (t(), t()), device), 1)}
            calls[f"{key}/fwd"] = on_device(forward, device, inner)
            calls[f"{key}/train"] = on_device(train_step, device, inner)
    times = round_robin(calls, args.repeats, warmup=0, log=lambda s: print(s, flush=True))
    for t in times.values():  # per call, not per `inner` calls (the round log above shows the latter)
        for k in ("cpu_s", "wall_s"):
            t[k] /= inner
            t[f"{k}_all"] = [round(v / inner, 6) for v in t[f"{k}_all"]]
    peak = {d: mm_flop[d] / 1e9 / times[f"matmul/{d}"][clock] for d in dtypes}
    peaks = ", ".join(f"{d} {v:.1f}" for d, v in peak.items())
    print(f"matmul peak ({matmul_n}^3): {peaks} GFLOP/s", flush=True)

    failed = {key: info.pop(key) for key in [k for k, r in info.items() if "error" in r]}
    for key, r in info.items():
        fwd, train = times[f"{key}/fwd"], times[f"{key}/train"]
        r.update(fwd_s=fwd[clock], fwd_wall_s=fwd["wall_s"], train_step_s=train[clock],
                 train_step_wall_s=train["wall_s"], fwd_clips_per_s=args.batch / fwd[clock],
                 train_clips_per_s=args.batch / train[clock],
                 fwd_gflops=r["fwd_gflop_per_clip"] * args.batch / fwd[clock],
                 train_gflops=r["train_gflop_per_clip"] * args.batch / train[clock], timing_samples={
                     "fwd": fwd, "train": train})
        reference = peak["bf16" if r["variant"].endswith("bf16") else "fp32"]
        r["fwd_peak_fraction"] = r["fwd_gflops"] / reference
        r["train_peak_fraction"] = r["train_gflops"] / reference

    result = {"benchmark": "backbones", "argv": sys.argv[1:], "device": device.type, "batch": args.batch,
              "frames": args.frames, "size": args.size, "repeats": args.repeats, "inner": inner,
              "matmul_n": matmul_n, "matmul_peak_gflops": peak, "matmul_timing": {d: times[f"matmul/{d}"]
                                                                                   for d in dtypes},
              "machine": machine(note, device), "models": info, "failed": failed}
    path = finish(result, args.out)  # the timings are saved before the (slow) memory children run
    if not args.no_memory and not cuda:
        for r in info.values():
            if r["variant"] == "fp32":
                r["memory"] = measure_memory(r["model"], args)
        path = finish(result, args.out)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
