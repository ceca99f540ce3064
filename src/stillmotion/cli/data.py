"""Commands for data: preview the synthetic worlds, curate a video folder, preprocess it for training."""

from __future__ import annotations

import argparse

from stillmotion.cli.common import positive_int

# ------------------------------------------------------------------------------------------------ data

def _run_data_preview(args: argparse.Namespace) -> int:
    from stillmotion.data.preview import preview

    kwargs = {}
    if args.p_two is not None:
        kwargs["p_two"] = args.p_two
    if args.background is not None:
        kwargs["background"] = args.background
    anim, sheet = preview(args.world, n=args.n, out=args.out, seed=args.seed, frames=args.frames,
                          size=args.size, scale=args.scale, fps=args.fps, caption_split=args.captions,
                          **kwargs)
    print(f"wrote {anim} and {sheet}")
    return 0


def _add_data(subparsers) -> None:
    from stillmotion.data.worlds import WORLDS

    data = subparsers.add_parser("data", help="look at the synthetic worlds")
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("preview", help="write an animated GIF grid and a captioned contact sheet of a world",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--world", default="shapes", choices=sorted(WORLDS), help="which synthetic world")
    p.add_argument("--n", type=positive_int, default=16, help="number of clips")
    p.add_argument("--out", default="preview.gif", help="animation path (.gif/.mp4/.webm); the sheet is .png")
    p.add_argument("--seed", type=int, default=0, help="seed of the first clip (clip i uses seed + i)")
    p.add_argument("--frames", type=positive_int, default=16, help="frames per clip")
    p.add_argument("--size", type=positive_int, default=32, help="canvas size in pixels")
    p.add_argument("--scale", type=positive_int, default=4, help="upscale factor of the animation")
    p.add_argument("--fps", type=float, default=8, help="animation frame rate")
    p.add_argument("--captions", default="train", choices=["train", "heldout"], help="caption wordings")
    p.add_argument("--p-two", type=float, default=None, help="probability of a second object")
    p.add_argument("--background", default=None, help="black, gray, gradient, noise or mixed")
    p.set_defaults(func=_run_data_preview)


# ------------------------------------------------------------------------------------------------ curate

def _run_curate(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from stillmotion.data.curate import Thresholds, curate

    overrides = {}
    known = {f.name: f.type for f in fields(Thresholds)}
    for item in args.set or []:
        key, _, value = item.partition("=")
        if key not in known:
            raise ValueError(f"unknown threshold '{key}'; known: {', '.join(known)}")
        overrides[key] = (int if known[key] in (int, "int") else float)(value)
    result = curate(args.source, args.out, thresholds=Thresholds(**overrides), layout=args.layout,
                    split=args.split, workers=args.workers, progress=True)
    print(result.summary())
    return 0


def _add_curate(subparsers) -> None:
    p = subparsers.add_parser(
        "curate", help="score a video collection and write kept / rejected manifests (never touches the videos)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("source", help="a folder of videos with captions (.txt sidecars or a manifest), UCF-101 or "
                                  "Kinetics layout, or a caption manifest (.csv / .jsonl)")
    p.add_argument("--out", default=None, help="output folder (default: <source>-curated)")
    p.add_argument("--layout", default="auto", help="auto, captions, ucf101 or kinetics")
    p.add_argument("--split", default=None, help="UCF-101 / Kinetics split to use (e.g. train)")
    p.add_argument("--workers", type=positive_int, default=1, help="files measured in parallel")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a threshold, e.g. min_side=128 or max_cuts=1 (see data/curate.py Thresholds)")
    p.set_defaults(func=_run_curate)


# ------------------------------------------------------------------------------------------------ preprocess

def _run_preprocess(args: argparse.Namespace) -> int:
    from stillmotion.data.preprocess import preprocess

    out = preprocess(args.source, args.out, frames=args.frames, size=args.size, stride=args.stride, fps=args.fps,
                     clips_per_video=args.clips_per_video, clips_per_shard=args.clips_per_shard,
                     layout=args.layout, split=args.split, seed=args.seed, workers=args.workers, progress=True)
    print(f"wrote {out}; train on it with: stillmotion train --data {out}")
    return 0


def _add_preprocess(subparsers) -> None:
    p = subparsers.add_parser(
        "preprocess", help="decode clips once into uint8 shards for fast training (resumable)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("source", help="a video folder, UCF-101 / Kinetics layout, or curate's kept.jsonl")
    p.add_argument("out", help="cache folder; running the same command again resumes an interrupted run")
    p.add_argument("--frames", type=positive_int, default=16, help="frames per clip")
    p.add_argument("--size", type=positive_int, default=32, help="frame size in pixels")
    p.add_argument("--stride", type=positive_int, default=1, help="keep every N-th frame")
    p.add_argument("--fps", type=float, default=None, help="resample to this frame rate first")
    p.add_argument("--clips-per-video", type=positive_int, default=1, help="clips decoded from each video")
    p.add_argument("--clips-per-shard", type=positive_int, default=256, help="clips per shard file")
    p.add_argument("--layout", default="auto", help="auto, captions, ucf101 or kinetics")
    p.add_argument("--split", default=None, help="UCF-101 / Kinetics split to use (e.g. train)")
    p.add_argument("--seed", type=int, default=0, help="seed of the clip choice")
    p.add_argument("--workers", type=positive_int, default=1, help="videos decoded in parallel")
    p.set_defaults(func=_run_preprocess)


def add(subparsers) -> None:
    """Declare this module's commands."""
    _add_data(subparsers)
    _add_curate(subparsers)
    _add_preprocess(subparsers)
