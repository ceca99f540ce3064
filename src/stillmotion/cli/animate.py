"""`stillmotion animate`: image-to-video from a user's image; `stillmotion experiment animate`: its measurement."""

from __future__ import annotations

import argparse

from stillmotion.cli.common import (
    MAX_SEED,
    HelpFormatter,
    check_writable,
    finite_float,
    positive_float,
    positive_int,
    random_seed,
)


def _run_animate(args: argparse.Namespace) -> int:
    import time

    import torch

    from stillmotion.cli.common import write_clips
    from stillmotion.pipelines.animate import animate
    from stillmotion.pipelines.inputs import read_input_image
    from stillmotion.pipelines.known_frames import untrained_task
    from stillmotion.pipelines.text_to_video import load

    check_writable(args.out)
    if args.seed + args.n - 1 > MAX_SEED:
        raise ValueError(f"--seed {args.seed} with --n {args.n}: clip i uses seed + i, which must stay <= 2**63 - 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.time()
    pipe = load(args.model)
    problem = untrained_task(pipe.info, "first")
    if problem and not args.allow_untrained_task:
        raise ValueError(f"{problem}; use a model trained for image-to-video, or pass --allow-untrained-task")
    image, note = read_input_image(args.image, pipe.size)
    print(f"input {note}")
    sampling = pipe.sampling.merged(steps=args.steps, sampler=args.sampler, guidance=args.guidance)
    clips = [animate(pipe, image[0], [args.prompt], frames=args.frames, sampling=sampling, seed=args.seed + i,
                     progress=not args.quiet)[0].cpu() for i in range(args.n)]
    write_clips(args.out, clips, captions=[f"{args.prompt} (seed {args.seed + i})" for i in range(args.n)],
                fps=args.fps, scale=args.scale)
    shape = "x".join(str(s) for s in clips[0].shape[1:])
    print(f"wrote {args.out} ({args.n} clip(s) of {shape}, frame 0 = the image; {time.time() - start:.1f}s)")
    return 0


def add(subparsers) -> None:
    """Declare `stillmotion animate`."""
    from stillmotion.diffusion.samplers import SAMPLERS

    p = subparsers.add_parser("animate", help="make a video that starts from an image (image-to-video)",
                              formatter_class=HelpFormatter)
    p.add_argument("image", help="the first frame: any size, mode or bit depth (cut to the model's square canvas: "
                                 "the centred square, resized; transparency is composited on black)")
    p.add_argument("prompt", help='what happens, e.g. "a red circle moving left"')
    p.add_argument("--out", default="clip.mp4", help="output .mp4, .gif, .webm, or .png contact sheet")
    p.add_argument("--frames", type=positive_int, default=None, help="frames (default: what the model was trained on)")
    p.add_argument("--steps", type=positive_int, default=20, help="sampler steps")
    p.add_argument("--sampler", default="dpmpp-2m", choices=sorted(SAMPLERS), help="ODE/SDE solver")
    p.add_argument("--guidance", type=finite_float, default=4.0, help="classifier-free guidance scale")
    p.add_argument("--seed", type=random_seed, default=0, help="random seed, 0 .. 2**63 - 1")
    p.add_argument("--n", type=positive_int, default=1, help="number of clips (seeds seed..seed+n-1)")
    p.add_argument("--model", default=None, help="checkpoint or run folder (default: the shipped model)")
    p.add_argument("--allow-untrained-task", action="store_true",
                   help="use a model not trained for image-to-video: the image is kept, the rest drawn without it")
    p.add_argument("--scale", type=positive_int, default=8, help="nearest-neighbour upscale of the file")
    p.add_argument("--fps", type=positive_float, default=8, help="frame rate of the file")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_animate)


def _run_experiment(args: argparse.Namespace) -> int:
    import shlex
    from pathlib import Path

    import torch

    from stillmotion.atomic import write_json
    from stillmotion.cli.common import output_folder
    from stillmotion.eval.animation import GROUPS, format_psnr, score_animation
    from stillmotion.pipelines.text_to_video import load

    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = load(args.model)
    reports = [score_animation(pipe, n=args.n, seed=args.seed, group=g, split=s,
                               sampling=pipe.sampling.merged(steps=args.steps))
               for s in args.split for g in GROUPS]
    lines = ["| prompts | backgrounds | n | first frame | colour | direction | both | vanished | jumping | "
             "probe on the world's clips (direction) |", "|---" * 10 + "|"]
    for r in reports:
        lines.append(f"| {r['split']} | {r['group']} | {r['n']} | {format_psnr(r['first_frame_psnr_min'])} | "
                     f"{r['colour']:.3f} | {r['direction']:.3f} | {r['colour_and_direction']:.3f} | "
                     f"{r['vanished']} | {r['jumping']} | {r['probe_on_world_clips']['direction']:.3f} |")
    print("\n".join(lines))
    out = Path(args.out)
    command = shlex.join(["stillmotion", *args.argv])
    with output_folder(out):
        summaries = [{k: v for k, v in r.items() if k != "rows"} for r in reports]  # per-clip rows stay out of docs
        write_json(out / "report.json", {"command": command, "model": args.model or "shipped", "reports": summaries})
        (out / "README.md").write_text(f"# Image-to-video, measured\n\n`{command}`\n\n" + "\n".join(lines)
                                       + "\n\n" + reports[0]["protocol"] + "\n")
    print(f"wrote {out}/README.md, report.json")
    return 0


def add_experiment(subparsers) -> None:
    """Declare `stillmotion experiment animate`."""
    p = subparsers.add_parser("animate", formatter_class=HelpFormatter,
                              help="image-to-video on held-out world scenes: first frame kept, direction followed")
    p.add_argument("--model", default=None, help="checkpoint or run folder (default: the shipped model)")
    p.add_argument("--n", type=positive_int, default=128, help="scenes per background group and prompt split")
    p.add_argument("--seed", type=random_seed, default=0, help="scenes and sampling seed (tune on 1, report 0)")
    p.add_argument("--split", nargs="+", default=["canonical", "heldout"], choices=["canonical", "heldout"],
                   help="prompt wordings")
    p.add_argument("--steps", type=positive_int, default=20, help="sampler steps")
    p.add_argument("--out", default="docs/applications/animate", help="folder for README.md and report.json")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch")
    p.set_defaults(func=_run_experiment)
