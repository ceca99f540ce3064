"""What every benchmark script shares: thread setup, a timer that survives a busy machine, the matmul peak,
peak memory in a child process, and writing results.

Timing on a shared machine. Benchmarks run with one torch thread under `nice -n 19` beside other jobs, so a wall
clock mostly measures how often the scheduler let us run. Each timed call therefore records both the wall time
and the process CPU time (`time.process_time`, all threads of this process). With one thread, CPU time is the
time one core spent on the work, which contention barely changes (caches and memory bandwidth are still shared);
ratios and GFLOP/s use it, and wall times are reported beside it. Models are timed round-robin (one call of each
per round, median over rounds), so every model sees the same contention.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

import stillmotion.models.registry  # noqa: F401  (teaches FlopCounterMode the CPU attention ops)

RESULTS = Path(__file__).resolve().parent / "results"
TIMING_NOTE = ("timings: 1 torch thread, niced, beside other jobs on the machine; 'cpu s' is process CPU time "
               "(what one core spent), 'wall s' the elapsed time; medians over round-robin repeats")


def setup_threads(threads: int = 1) -> None:
    """One intra-op and inter-op thread (OMP_NUM_THREADS should be set before Python starts, too)."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already set once in this process
        pass


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """Run fn once; return (cpu seconds, wall seconds)."""
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c0, time.perf_counter() - w0


def round_robin(calls: dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
                log: Callable[[str], None] | None = print) -> dict[str, dict]:
    """Time every call `repeats` times, one call of each per round; medians of cpu and wall seconds."""
    for _ in range(warmup):
        for fn in calls.values():
            fn()
    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in calls}
    for r in range(repeats):
        for k, fn in calls.items():
            samples[k].append(timed(fn))
        if log:
            log(f"  round {r + 1}/{repeats}: " + ", ".join(f"{k} {samples[k][-1][0]:.2f}s" for k in calls))
    return {k: {"cpu_s": statistics.median(c for c, _ in v), "wall_s": statistics.median(w for _, w in v),
                "cpu_s_all": [round(c, 4) for c, _ in v], "wall_s_all": [round(w, 4) for _, w in v]}
            for k, v in samples.items()}


def matmul_call(n: int = 2048, device: str | torch.device = "cpu",
                dtype: torch.dtype = torch.float32) -> tuple[Callable[[], object], float]:
    """A large torch.mm and its FLOP count (2 n^3): the machine's achievable peak for `dtype` (on the CPU, at this
    thread count). On CUDA, fp32 is true fp32: torch leaves TF32 off for matmuls unless asked."""
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=g).to(device, dtype) for _ in range(2))
    out = torch.empty(n, n, device=device, dtype=dtype)
    return (lambda: torch.mm(a, b, out=out)), 2.0 * n ** 3


def on_device(fn: Callable[[], object], device: torch.device, inner: int = 1) -> Callable[[], None]:
    """`fn` called `inner` times and then waited for: a CUDA call returns before the GPU has done the work, so a
    timer around it alone measures the launch. Divide the time of one call by `inner`."""
    def call():
        for _ in range(inner):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return call


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or platform.machine()


def machine(note: str = TIMING_NOTE, device: torch.device | None = None) -> dict:
    info = {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "load_average": os.getloadavg(), "note": note}
    if device is not None and device.type == "cuda":
        info.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                    cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                    matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32)
    return info


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB -> MiB
    except OSError:
        pass
    return None


def reset_peak_rss() -> float:
    """Reset this process's RSS high-water mark to its current RSS (Linux: /proc/self/clear_refs, value 5) and
    return the current RSS in MiB. getrusage's ru_maxrss cannot be used in a child: it keeps the parent's RSS at
    fork time, so every child would report at least the parent's size."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return _status_mb("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_mb() -> float:
    """Peak resident set size of this process (since the last `reset_peak_rss`), in MiB."""
    return _status_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(script: str, args: list[str], timeout: float | None = None) -> dict:
    """Run `python script args...` (a fresh process, so its peak RSS is its own) and parse its last stdout line
    as JSON; a failure or timeout comes back as {"error": ...} so one child cannot lose a run's other results."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        proc = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, timeout=timeout,
                              env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def write_json(name: str, obj: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(obj, indent=1) + "\n")
    return path


def markdown_table(header: list[str], rows: list[list]) -> str:
    def cell(v):
        return f"{v:.3g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
