"""`stillmotion generate`: a video from a prompt (the shipped model by default)."""

from __future__ import annotations

import argparse

from stillmotion.cli.common import (
    MAX_SEED,
    HelpFormatter,
    add_motion_sampling_options,
    check_writable,
    finite_float,
    output_folder,
    positive_float,
    positive_int,
    random_seed,
)


def _run_generate(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    import torch

    from stillmotion.data.video_io import save_contact_sheet, write_video
    from stillmotion.pipelines.text_to_video import load

    check_writable(args.out)
    if args.frames is not None and args.frames < 1:
        raise ValueError(f"--frames must be >= 1 (got {args.frames})")
    if args.seed + args.n - 1 > MAX_SEED:
        raise ValueError(f"--seed {args.seed} with --n {args.n}: clip i uses seed + i, which must stay <= 2**63 - 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.time()
    pipe = load(args.model)
    loaded = time.time()
    prompts = [args.prompt] * args.n
    known = {}
    if args.frames_from is not None:  # image-to-video, continuing a video, or filling in between keyframes
        from stillmotion.pipelines.known_frames import load_known_frames, untrained_task

        problem = untrained_task(pipe.info, args.keep)
        if problem and not args.allow_untrained_task:
            raise ValueError(f"--frames-from: {problem}; use a model trained with that frame task, or pass "
                             "--allow-untrained-task to do it anyway")
        frames, mask = load_known_frames(args.frames_from, args.keep, args.frames or pipe.frames, pipe.size)
        known = dict(known_frames=frames, frame_mask=mask)
    sampling = pipe.sampling.merged(steps=args.steps, sampler=args.sampler, guidance=args.guidance,
                                    strategy=args.strategy, noise_warp=args.noise_warp)
    settings = dict(negative=args.negative, sampling=sampling, motion=args.motion, progress=not args.quiet)
    if not known and args.frames is not None and args.frames > pipe.frames:  # past the model's length: windows
        import warnings

        from stillmotion.pipelines.extend import check_extend, continues, default_context, extend

        method, context = ("windows" if continues(pipe) else "joint"), args.context or default_context(pipe)
        check_extend(pipe, args.frames, 0, context, method)
        if method == "joint":
            warnings.warn(f"this model was not trained to continue a video (no 'predict' task), so the {args.frames} "
                          f"frames are made in one pass, {args.frames / pipe.frames:.1f}x the length it was trained on",
                          stacklevel=1)
        videos = torch.cat([extend(pipe, prompts[i:i + 1], args.frames, context=context, method=method,
                                   seed=args.seed + i, **settings) for i in range(args.n)])
    else:
        videos = torch.cat([pipe(prompts[i:i + 1], frames=args.frames, seed=args.seed + i, **settings, **known)
                            for i in range(args.n)])
    sampled = time.time()
    out = Path(args.out)
    clips = list(videos.cpu())
    with output_folder(out.parent):
        if out.suffix.lower() == ".png":
            save_contact_sheet(out, clips, captions=[f"{args.prompt} (seed {args.seed + i})" for i in range(args.n)],
                               scale=args.scale)
        else:
            from stillmotion.data.video_io import video_grid

            write_video(out, clips[0] if args.n == 1 else video_grid(clips), fps=args.fps, scale=args.scale)
    print(f"wrote {out} ({args.n} clip(s) of {videos.shape[2]}x{videos.shape[3]}x{videos.shape[4]}; "
          f"load {loaded - start:.1f}s, sample {sampled - loaded:.1f}s, total {time.time() - start:.1f}s)")
    return 0


def _add_generate(subparsers) -> None:
    from stillmotion.diffusion.samplers import SAMPLERS
    from stillmotion.pipelines.text_to_video import STRATEGIES

    p = subparsers.add_parser("generate", help="make a video from a prompt (the shipped model by default)",
                              formatter_class=HelpFormatter)
    p.add_argument("prompt", help='what to show, e.g. "a red circle moving left"')
    p.add_argument("--negative", default="", help="what to steer away from")
    p.add_argument("--frames", type=int, default=None,
                   help="frames (default: what the model was trained on); more than that are made in windows, each "
                        "continuing the last --context frames (`stillmotion extend`)")
    p.add_argument("--context", type=positive_int, default=None, metavar="K",
                   help="for --frames past the model's length: frames each window knows (default: extend's)")
    p.add_argument("--steps", type=positive_int, default=None, help="sampler steps (default: the model's own, 20)")
    p.add_argument("--sampler", default=None, choices=sorted(SAMPLERS),
                   help="ODE/SDE solver (default: the model's own, dpmpp-2m)")
    p.add_argument("--guidance", type=finite_float, default=None,
                   help="classifier-free guidance scale (default: the model's own, 4)")
    p.add_argument("--strategy", default=None, choices=STRATEGIES,
                   help="joint: all frames at once; keyframe: the first frame as an image, then the clip from it "
                        "as image-to-video; first-frame: a joint pass, then again from its first frame (default: the "
                        "model's own, from its config.json)")
    p.add_argument("--seed", type=random_seed, default=0, help="random seed, 0 .. 2**63 - 1")
    p.add_argument("--motion", default=None, metavar="DIRECTION|DX,DY",
                   help="motion hint for models trained with one (motion_cond): left, up-right, static, ... or "
                        "DX,DY in canvas fractions over the clip (x right, y down); 'none' for no hint (default: "
                        "the hint the model's motion planner reads from the prompt, if it has one)")
    add_motion_sampling_options(p)
    p.add_argument("--frames-from", default=None, metavar="FILE",
                   help="known frames from an image (any mode or bit depth; transparency is composited on black) or "
                        "a video: image-to-video, continuing a video, or keyframes to fill in between (see --keep). "
                        "The model must have been trained with that frame task (its config.json's train.tasks: i2v, "
                        "predict, interpolate); others are refused")
    p.add_argument("--keep", default="first",
                   help="which frames of --frames-from are known: first | first:K | every:N (and the last)")
    p.add_argument("--allow-untrained-task", action="store_true",
                   help="use --frames-from with a model not trained for that frame task: the given frames are kept, "
                        "the others are drawn as if they were not there")
    p.add_argument("--n", type=positive_int, default=1, help="number of clips (seeds seed..seed+n-1)")
    p.add_argument("--out", default="clip.mp4", help="output .mp4, .gif, .webm, or .png contact sheet")
    p.add_argument("--model", default=None, help="checkpoint or run folder (default: the shipped model)")
    p.add_argument("--scale", type=positive_int, default=8, help="nearest-neighbour upscale of the file")
    p.add_argument("--fps", type=positive_float, default=8, help="frame rate of the file")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_generate)


def add(subparsers) -> None:
    """Declare this module's commands."""
    _add_generate(subparsers)
