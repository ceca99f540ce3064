"""`stillmotion interpolate`: in-betweens for a user's video; `stillmotion experiment interpolate`: its measurement."""

from __future__ import annotations

import argparse

from stillmotion.cli.common import (
    HelpFormatter,
    check_writable,
    finite_float,
    positive_float,
    positive_int,
    random_seed,
)


def two_or_more(text: str) -> int:
    """argparse type: a whole number >= 2 (the factor: factor - 1 new frames per gap; frames per window)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 2, got '{text}'") from None
    if value < 2:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 2, got {text}")
    return value


def _check_out(out: str) -> None:
    """A video file (see common.check_writable) or a .npy file of the exact frames."""
    from pathlib import Path

    if Path(out).suffix.lower() == ".npy":
        check_writable(str(Path(out).with_suffix(".mp4")))  # the same folder checks
    elif Path(out).suffix.lower() == ".png":
        raise ValueError(f"cannot write '{out}': use a .mp4, .gif, .webm, or .npy (the exact frames) file name")
    else:
        check_writable(out)


def _canvas(args: argparse.Namespace):
    """(pipe or None, size): the model for diffusion (refused if it never learned in-betweens), else its size."""
    from stillmotion import checkpoint
    from stillmotion.pipelines.known_frames import untrained_task
    from stillmotion.pipelines.text_to_video import load, shipped_model_path

    if args.method != "diffusion":  # flow and blend need no network: only the canvas they share with it
        config = checkpoint.load_config(args.model or shipped_model_path(), required=checkpoint.REQUIRED)
        return None, int(config["data"]["size"])
    pipe = load(args.model)
    problem = untrained_task(pipe.info, "every:2")
    if problem and not args.allow_untrained_task:
        raise ValueError(f"{problem}; use a model trained for in-betweens, --method flow or blend, or pass "
                         "--allow-untrained-task")
    return pipe, pipe.size


def _probe(path: str):
    """The video's VideoInfo (frame count, fps) without decoding it; an image file is refused as read_input_video
    would, but before the frames are counted."""
    from pathlib import Path

    from stillmotion.data.video_io import probe_video
    from stillmotion.pipelines.inputs import IMAGE_SUFFIXES

    if Path(path).suffix.lower() in IMAGE_SUFFIXES:
        raise ValueError(f"'{Path(path).name}' is an image; in-betweens need a video (an .mp4, .gif, .webm, ...)")
    return probe_video(path)


def _run_interpolate(args: argparse.Namespace) -> int:
    import time
    import warnings

    import torch

    from stillmotion.pipelines.inputs import read_input_video
    from stillmotion.pipelines.interpolate import check_request, interpolate, interpolation_sampling

    start = time.time()
    _check_out(args.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    info = _probe(args.video)  # a missing, corrupt or image file stops here, before anything is decoded
    check_request(info.num_frames, args.factor)  # one frame, or too long an output, before decoding it all
    pipe, size = _canvas(args)
    frames, note = read_input_video(args.video, size, min_frames=2)
    print(f"input {note}")
    check_request(len(frames), args.factor)
    options = {}
    if args.method != "diffusion" and args.prompt:
        warnings.warn(f"--prompt is read only by --method diffusion; {args.method} ignores it", stacklevel=1)
    if args.method == "diffusion":
        sampling = interpolation_sampling(pipe).merged(steps=args.steps, sampler=args.sampler, guidance=args.guidance)
        options = dict(prompt=args.prompt, window_keys=args.window, sampling=sampling, seed=args.seed,
                       progress=not args.quiet)
    video = interpolate(frames, args.factor, args.method, pipe, **options)  # (T, size, size, 3) uint8
    fps = args.fps or (info.fps * args.factor if info.fps > 0 else 8.0 * args.factor)
    _write(args.out, video, fps, args.scale)
    print(f"wrote {args.out} ({len(video)} frames of {size}x{size} at {fps:g} fps: the {len(frames)} given frames "
          f"kept, {len(video) - len(frames)} filled by {args.method}; {time.time() - start:.1f}s)")
    return 0


def _write(out: str, video, fps: float, scale: int) -> None:
    """A video file, or with .npy the exact frames (T, H, W, 3) uint8 at the model's size (a video codec is lossy)."""
    from pathlib import Path

    import numpy as np

    from stillmotion.atomic import write_atomic
    from stillmotion.cli.common import output_folder
    from stillmotion.data.video_io import write_video

    with output_folder(Path(out).parent):
        if Path(out).suffix.lower() == ".npy":
            write_atomic(out, lambda f: np.save(f, video, allow_pickle=False))
        else:
            write_video(out, video, fps=fps, scale=scale)


def add(subparsers) -> None:
    """Declare `stillmotion interpolate`."""
    from stillmotion.diffusion.samplers import SAMPLERS
    from stillmotion.pipelines.interpolate import METHODS, SAMPLER, WINDOW_KEYS

    p = subparsers.add_parser("interpolate", formatter_class=HelpFormatter,
                              help="make a video smoother: keep every frame, fill new ones in between")
    p.add_argument("video", help="any video FFmpeg reads (cut to the model's square canvas: the centred square, "
                                 "resized); every frame is kept")
    p.add_argument("--factor", type=two_or_more, default=4,
                   help="N frames become (N - 1) * factor + 1: factor - 1 new frames between each pair")
    p.add_argument("--out", default="smooth.mp4",
                   help="output .mp4, .gif, .webm, or .npy (the exact frames at the model's size, uint8)")
    p.add_argument("--method", default="diffusion", choices=METHODS,
                   help="diffusion: the model fills the frames (known keyframes); flow: OpenCV optical flow, warped "
                        "both ways and blended; blend: a crossfade")
    p.add_argument("--prompt", default="", help="what the video shows (diffusion; default: none, the frames alone)")
    p.add_argument("--guidance", type=finite_float, default=1.0,
                   help="classifier-free guidance scale with --prompt (diffusion; 1: the prompt conditions, no "
                        "guidance, which measured best)")
    p.add_argument("--window", type=two_or_more, default=WINDOW_KEYS, metavar="K",
                   help="given frames per diffusion window ((K - 1) * factor + 1 frames); windows share end frames")
    p.add_argument("--steps", type=positive_int, default=20, help="sampler steps (diffusion)")
    p.add_argument("--sampler", default=SAMPLER, choices=sorted(SAMPLERS), help="sampler (diffusion)")
    p.add_argument("--seed", type=random_seed, default=0, help="random seed, 0 .. 2**63 - 1 (diffusion)")
    p.add_argument("--model", default=None,
                   help="checkpoint or run folder (default: the shipped model; flow and blend use only its size)")
    p.add_argument("--allow-untrained-task", action="store_true",
                   help="use a model not trained for in-betweens: the frames are kept, the rest drawn without them")
    p.add_argument("--scale", type=positive_int, default=8, help="nearest-neighbour upscale of a video file")
    p.add_argument("--fps", type=positive_float, default=None,
                   help="frame rate of the file (default: the input's times the factor, so it lasts as long)")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_interpolate)


def _table(rows: dict, names=("diffusion", "diffusion + caption", "flow", "blend")) -> list[str]:
    """Markdown rows: one per (set, method), PSNR pooled / per-clip mean, SSIM, seconds."""
    lines = ["| clips | method | PSNR (dB, pooled) | PSNR (dB, mean per clip) | SSIM | seconds |", "|---" * 6 + "|"]
    for label, result in rows.items():
        for name in names:
            if name in result:
                r = result[name]
                seconds = "" if r["seconds"] is None else f"{r['seconds']:.0f}"
                lines.append(f"| {label} | {name} | {r['psnr']:.2f} | {r['psnr_clip']:.2f} | {r['ssim']:.4f} | "
                             f"{seconds} |")
    return lines


def _readme(report: dict, command: str) -> str:
    """The experiment's README.md: the command, the tables, the protocol."""
    world = report["world"]
    beats = " ".join(f"{g} {world[g]['diffusion beats flow (share of clips)']:.2f}," for g in world).rstrip(",")
    text = [f"# In-betweens, measured (factor {report['factor']})", "", f"`{command}`", "",
            f"Diffusion options: `{report['diffusion']}`; with the caption, guidance {report['caption_guidance']}.",
            "", f"## Held-out world clips (n = {report['n']} per group)", "",
            *_table({g: world[g] for g in world}), "", f"Share of clips where diffusion's PSNR beats flow's: {beats}."]
    if "footage" in report:
        footage = report["footage"]
        names = [k for k in footage if k not in ("clips", "pooled")]
        text += ["", "## Procedural footage (written with PyAV as H.264, read back as a user's file)", "",
                 *_table({k: footage[k] for k in [*names, "pooled"]}), "",
                 *[f"- {k}: {footage['clips'][k]}" for k in names]]
    text += ["", "## Protocol", "", report["protocol"], "",
             "gallery.gif: two black-background clips, then two on other backgrounds; each row: the clip at 1/factor "
             "of its frame rate | diffusion's in-betweens | flow's.", ""]
    return "\n".join(text)


def _run_experiment(args: argparse.Namespace) -> int:
    import shlex
    from pathlib import Path

    import torch

    from stillmotion.atomic import write_atomic, write_json
    from stillmotion.cli.common import output_folder
    from stillmotion.data.video_io import video_grid, write_video
    from stillmotion.eval.interpolation import measure_interpolation
    from stillmotion.pipelines.interpolate import interpolation_sampling
    from stillmotion.pipelines.text_to_video import load

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    pipe = load(args.model)
    diffusion = dict(window_keys=args.window, sampling=interpolation_sampling(pipe).merged(steps=args.steps,
                                                                                          sampler=args.sampler))
    with output_folder(out):
        report, gallery = measure_interpolation(pipe, n=args.n, factor=args.factor, seed=args.seed,
                                                diffusion=diffusion, caption_guidance=args.caption_guidance,
                                                footage_dir=out / "footage")
        command = shlex.join(["stillmotion", *args.argv])
        write_json(out / "report.json", {"command": command, "model": args.model or "shipped", **report})
        write_atomic(out / "README.md", _readme(report, command))
        write_video(out / "gallery.gif", video_grid(gallery, ncols=3), fps=8, scale=4)
    print("\n".join(_table(report["world"])))
    print(f"wrote {out}/README.md, report.json, gallery.gif, footage/")
    return 0


def add_experiment(subparsers) -> None:
    """Declare `stillmotion experiment interpolate`."""
    from stillmotion.diffusion.samplers import SAMPLERS
    from stillmotion.pipelines.interpolate import SAMPLER, WINDOW_KEYS

    p = subparsers.add_parser("interpolate", formatter_class=HelpFormatter,
                              help="in-betweens on held-out world clips and procedural footage: diffusion vs flow vs "
                                   "crossfade, PSNR and SSIM")
    p.add_argument("--model", default=None, help="checkpoint or run folder (default: the shipped model)")
    p.add_argument("--n", type=positive_int, default=128, help="world clips per background group")
    p.add_argument("--factor", type=two_or_more, default=4, help="keyframes every factor-th frame")
    p.add_argument("--seed", type=random_seed, default=0, help="clips and sampling seed (tune on 1, report 0)")
    p.add_argument("--steps", type=positive_int, default=20, help="sampler steps")
    p.add_argument("--sampler", default=SAMPLER, choices=sorted(SAMPLERS), help="sampler for diffusion")
    p.add_argument("--window", type=two_or_more, default=WINDOW_KEYS, metavar="K", help="given frames per window")
    p.add_argument("--caption-guidance", type=finite_float, default=1.0,
                   help="guidance scale of the 'diffusion + caption' row")
    p.add_argument("--out", default="docs/applications/interpolate", help="folder for README.md, report.json, "
                                                                          "gallery.gif and the footage")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch")
    p.set_defaults(func=_run_experiment)
