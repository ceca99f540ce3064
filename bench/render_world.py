"""World rendering benchmark: clips/s of the numpy renderer, one clip at a time as DataLoader workers draw them
now (`world.render(labels)`), against the batched torch renderer (data/render_torch.py) on a whole batch at once,
on the same labels, measured round-robin in the same run; ratios are torch / numpy clips/s.

Rows (each call draws the same `--batch` clips):
    numpy             world.render(labels) per clip, float64 (what shapes.py / digits.py do)
    numpy+host        world.sample(seed) per clip: labels, caption and pixels (a worker's whole job per clip)
    host labels       labels and caption per clip without pixels: the host work the torch path still needs
    pack              labels_to_tensors (host, per batch)
    torch f32         labels_to_tensors + render -> (B, F, H, W, 3) uint8 on the device, float32 pixel arithmetic
    torch f32 video   labels_to_tensors + render_video -> (B, 3, F, H, W) float32 in [-1, 1] (the training tensor)
    ... out=          the same drawn into one reused buffer (no clip-sized allocation: on the CPU a fresh 50 MB
                      tensor per batch costs about as much in page faults as the drawing itself)
    torch f64         labels_to_tensors + render, float64 pixel arithmetic (numpy's own, level-exact)

On the CPU every row uses one thread and is timed by process CPU time (common.py). With --device cuda the torch
rows are wall seconds with a synchronize (each call repeated --inner times), the numpy rows still one CPU core,
and one render runs under torch.cuda.set_sync_debug_mode("error") to show that it never waits for the device.

    nice -n 19 env OMP_NUM_THREADS=1 python bench/render_world.py                   # CPU, batch 256
    python bench/render_world.py --device cuda --batch 256 4096 --out render_world_cuda.json
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from common import TIMING_NOTE, machine, markdown_table, on_device, round_robin, setup_threads, write_json
from stillmotion.data.captions import make_caption
from stillmotion.data.render_torch import labels_to_tensors, render, render_video
from stillmotion.data.worlds import get_world


def host_labels(world, seeds) -> list:
    """Labels and caption of each seed exactly as `world.sample` draws them, without the pixels."""
    out = []
    for s in seeds:
        rng = np.random.default_rng(s)
        labels = world.sample_labels(rng)
        out.append((labels, make_caption(labels, rng, world.caption_split, p_speed=world.p_speed)))
    return out


def calls_for(world, seeds: list[int], device: torch.device, inner: int) -> dict:
    labels = [world.sample(s).labels for s in seeds]
    f, size = world.frames, world.size
    torch_call = lambda fn, **kw: on_device(lambda: fn(labels_to_tensors(labels), f, size, device, **kw), device,
                                            inner)
    return {"numpy": lambda: [world.render(x) for x in labels],
            "numpy+host": lambda: [world.sample(s) for s in seeds],
            "host labels": lambda: host_labels(world, seeds),
            "pack": lambda: labels_to_tensors(labels),
            "torch f32": torch_call(render),
            "torch f32 video": torch_call(render_video),
            "torch f32 video out=": torch_call(render_video, out=torch.empty(len(seeds), 3, f, size, size,
                                                                            device=device)),
            "torch f64": torch_call(render, dtype=torch.float64)}


def check(world, seeds: list[int], device: torch.device) -> dict:
    """The torch clips against numpy's on these labels, and (CUDA) whether a render waits for the device."""
    labels = [world.sample(s).labels for s in seeds]
    expected = np.stack([world.render(x) for x in labels]).astype(np.int16)
    out = {}
    for name, dtype in (("f32", torch.float32), ("f64", torch.float64)):
        diff = np.abs(render(labels_to_tensors(labels), world.frames, world.size, device, dtype=dtype)
                      .cpu().numpy().astype(np.int16) - expected)
        out[name] = {"max_level_diff": int(diff.max()), "mean_level_diff": float(diff.mean()),
                     "fraction_off": float((diff > 0).mean())}
    if device.type == "cuda":
        scene = labels_to_tensors(labels)
        torch.cuda.synchronize(device)
        torch.cuda.set_sync_debug_mode("error")
        try:
            render(scene, world.frames, world.size, device)
            render_video(scene, world.frames, world.size, device)
            out["host_sync"] = "none"
        except RuntimeError as e:
            out["host_sync"] = str(e).splitlines()[0]
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return out


def run(world_name: str, background: str, batch: int, device: torch.device, args) -> dict:
    world = get_world(world_name, size=args.size, frames=args.frames, background=background,
                      **({"p_two": args.p_two} if world_name == "shapes" else {}))
    seeds = list(range(args.seed, args.seed + batch))
    inner = args.inner if device.type == "cuda" else 1
    print(f"{world_name} / {background} / batch {batch} on {device}:", flush=True)
    times = round_robin(calls_for(world, seeds, device, inner), args.repeats,
                        log=lambda s: print(s, flush=True))
    seconds = {}
    for name, t in times.items():
        on_gpu = device.type == "cuda" and name.startswith("torch")
        seconds[name] = t["wall_s"] / inner if on_gpu else t["cpu_s"]
    return {"world": world_name, "background": background, "batch": batch, "device": str(device),
            "clips_per_s": {k: batch / v for k, v in seconds.items()},
            "ratio_to_numpy": {k: seconds["numpy"] / v for k, v in seconds.items()},
            "equality": check(world, seeds[:64], device), "times": times}


def table(results: list[dict]) -> str:
    rows = []
    for r in results:
        for name, cps in r["clips_per_s"].items():
            rows.append([r["world"], r["background"], r["batch"], r["device"] if name.startswith("torch") else "cpu",
                         name, round(cps), f"{r['ratio_to_numpy'][name]:.2f}x"])
    return markdown_table(["world", "background", "batch", "device", "renderer", "clips/s", "vs numpy"], rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (cuda when available: try 'auto')")
    p.add_argument("--worlds", nargs="+", default=["shapes"], choices=["shapes", "digits"])
    p.add_argument("--backgrounds", nargs="+", default=["black", "mixed"])
    p.add_argument("--batch", nargs="+", type=int, default=[256])
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--p-two", type=float, default=0.3)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--inner", type=int, default=10, help="calls per timing on CUDA")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="render_world.json")
    args = p.parse_args(argv)
    setup_threads(1)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    print(f"render_world: {args.frames}x{args.size}x{args.size} clips on {device}"
          f"{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''}; {TIMING_NOTE}",
          flush=True)
    results = [run(w, bg, b, device, args) for w in args.worlds for bg in args.backgrounds for b in args.batch]
    text = table(results)
    path = write_json(args.out, {"benchmark": "render_world", "argv": sys.argv[1:], "machine": machine(device=device),
                                 "results": results, "table": text})
    print(f"\n{TIMING_NOTE}\n\n{text}\n")
    for r in results:
        print(f"{r['world']}/{r['background']}/batch {r['batch']} equality on {r['device']}: {r['equality']}")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
