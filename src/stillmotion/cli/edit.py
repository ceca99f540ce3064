"""`stillmotion edit`: text-guided editing of a user's video; `stillmotion experiment edit`: its measurement."""

from __future__ import annotations

import argparse

from stillmotion.cli.common import (
    HelpFormatter,
    check_writable,
    finite_float,
    nonnegative_int,
    positive_float,
    positive_int,
    random_seed,
)

# Chosen on seed 1 (32 black-background clips; runs/app-edit/explore/, docs/applications-edit.md), reported on seed 0:
# SDEdit at 0.55 with guidance 3 changed the colour of 0.94 of the clips with the path 0.82 px off; inversion's best
# (8 fixed-point corrections, guidance 3-4, 0.525-0.55) 0.88-0.91 with 0.6-1.0 px.
DEFAULT_MODE = "sdedit"
DEFAULT_STRENGTH = 0.55
DEFAULT_GUIDANCE = 3.0
DEFAULT_ITERATIONS = 8
SWEEP = [0.3, 0.5, 0.55, 0.6, 0.7, 0.85]


def strength(text: str) -> float:
    """argparse type: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got '{text}'") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1] (0.3 keeps the clip nearly as it is, 1 starts "
                                         f"from the top of the noise schedule), got {text}")
    return value


def _run_edit(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    import torch

    from stillmotion.cli.common import output_folder
    from stillmotion.data.video_io import save_contact_sheet, to_float, video_grid, write_video
    from stillmotion.pipelines.edit import edit_sampling, edit_video
    from stillmotion.pipelines.inputs import read_input_video
    from stillmotion.pipelines.text_to_video import load

    if not args.prompt.strip():
        raise ValueError("the edit prompt is empty; say what the edited video should show, e.g. "
                         "\"a blue square moving left\"")
    if args.source_prompt.strip() and args.mode != "inversion":
        raise ValueError(f"--source-prompt is used only by --mode inversion (the mode is {args.mode}); add "
                         "--mode inversion or leave --source-prompt out")
    check_writable(args.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.time()
    pipe = load(args.model)
    frames, note = read_input_video(args.video, pipe.size, frames=pipe.frames)
    shorter = f"; edited at its {len(frames)} frames (the model was trained on {pipe.frames})" \
        if len(frames) < pipe.frames else ""
    print(f"input {note}{shorter}")
    if args.mode == "inversion" and not args.source_prompt.strip():
        print("note: inverting with the empty source prompt; --source-prompt \"what the video shows\" keeps the "
              "edit's colour better (0.89 against 0.82 on world clips; docs/applications.md)")
    source = to_float(frames)[None]                                         # (1, 3, F, H, W)
    sampling = edit_sampling(pipe, args.mode).merged(steps=args.steps, guidance=args.guidance)
    edited = edit_video(pipe, source, args.prompt, strength=args.strength, mode=args.mode, sampling=sampling,
                        source_prompt=args.source_prompt, iterations=args.iterations, seed=args.seed)[0].cpu()
    out = Path(args.out)
    with output_folder(out.parent):
        if out.suffix.lower() == ".png":  # a contact sheet: the frames of the source (with --side-by-side) and edit
            clips, captions = ([source[0], edited], ["source", args.prompt]) if args.side_by_side else \
                ([edited], [args.prompt])
            save_contact_sheet(out, clips, captions=captions, scale=args.scale)
        else:
            write_video(out, video_grid([source[0], edited], ncols=2) if args.side_by_side else edited, fps=args.fps,
                        scale=args.scale)
    print(f"wrote {out} ({args.mode}, strength {args.strength:g}: {len(frames)} frames of {pipe.size}x{pipe.size}"
          f"{', source | edited' if args.side_by_side else ''}; {time.time() - start:.1f}s)")
    return 0


def add(subparsers) -> None:
    """Declare `stillmotion edit`."""
    from stillmotion.pipelines.edit import MODES

    p = subparsers.add_parser("edit", help="change a video by a prompt, keeping its layout and motion "
                                           "(SDEdit or DDIM inversion)", formatter_class=HelpFormatter)
    p.add_argument("video", help="any video file FFmpeg reads (cut to the model's square canvas; frames taken evenly "
                                 "to the model's length; a shorter video is edited at its own length)")
    p.add_argument("prompt", help='what the edited video shows, e.g. "a blue square moving left"')
    p.add_argument("--strength", type=strength, default=DEFAULT_STRENGTH,
                   help="how far down the noise schedule the edit starts, in (0, 1]: the last strength x steps of "
                        "the schedule run. Low keeps more of the video, high follows the prompt more")
    p.add_argument("--mode", default=DEFAULT_MODE, choices=MODES,
                   help="sdedit: noise the video and denoise with the prompt; inversion: run the sampler's ODE "
                        "backwards from the video with --source-prompt, then forward with the prompt")
    p.add_argument("--source-prompt", default="",
                   help="what the video shows, for --mode inversion (default: the empty prompt, which edits "
                        "colour less reliably: docs/applications.md)")
    p.add_argument("--guidance", type=finite_float, default=DEFAULT_GUIDANCE,
                   help="classifier-free guidance scale while sampling with the prompt")
    p.add_argument("--steps", type=positive_int, default=20, help="steps of the full schedule")
    p.add_argument("--iterations", type=nonnegative_int, default=DEFAULT_ITERATIONS,
                   help="fixed-point corrections per inversion step (--mode inversion): each makes the inversion more "
                        "exact and costs one network pass per step; 0 is plain DDIM inversion")
    p.add_argument("--seed", type=random_seed, default=0, help="the noise of --mode sdedit, 0 .. 2**63 - 1")
    p.add_argument("--out", default="edited.mp4", help="output .mp4, .gif, .webm, or .png contact sheet")
    p.add_argument("--side-by-side", action="store_true", help="write source | edited side by side")
    p.add_argument("--model", default=None, help="checkpoint or run folder (default: the shipped model)")
    p.add_argument("--scale", type=positive_int, default=8, help="nearest-neighbour upscale of the file")
    p.add_argument("--fps", type=positive_float, default=8, help="frame rate of the file")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch")
    p.set_defaults(func=_run_edit)


# ------------------------------------------------------------------------------------------------ experiment

def _run_experiment(args: argparse.Namespace) -> int:
    import shlex

    import torch

    from stillmotion.eval.editing import run_edit_experiment
    from stillmotion.pipelines.text_to_video import load

    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = load(args.model)
    report = run_edit_experiment(pipe, args.out, n=args.n, seed=args.seed, strengths=args.strengths,
                                 modes=args.modes, steps=args.steps, guidance=args.guidance,
                                 iterations=args.iterations, source=args.source, default=(args.mode, args.strength),
                                 command=shlex.join(["stillmotion", *args.argv]), progress=not args.quiet)
    for group, r in report["groups"].items():
        for mode in args.modes:
            s = r[mode][str(args.strength)]
            print(f"{group:5s} {mode:9s} strength {args.strength:g}: colour {s['colour']:.3f}  "
                  f"path {s['path_px']:.2f} px  both {s['success']:.3f}")
    print(f"wrote {args.out}/README.md, report.json, editing.png, edit.gif")
    return 0


def add_experiment(subparsers) -> None:
    """Declare `stillmotion experiment edit`."""
    from stillmotion.pipelines.edit import MODES

    p = subparsers.add_parser("edit", formatter_class=HelpFormatter,
                              help="colour edits of held-out world clips: new colour shown, path kept, per strength")
    p.add_argument("--model", default=None, help="checkpoint or run folder (default: the shipped model)")
    p.add_argument("--n", type=positive_int, default=128, help="clips per background group")
    p.add_argument("--seed", type=random_seed, default=0, help="clips, colours and noise (tune on 1, report 0)")
    p.add_argument("--strengths", type=strength, nargs="+", default=SWEEP, help="the sweep")
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES, help="edit modes to sweep")
    p.add_argument("--mode", default=DEFAULT_MODE, choices=MODES, help="the operating point the README names")
    p.add_argument("--strength", type=strength, default=DEFAULT_STRENGTH, help="its strength (added to the sweep)")
    p.add_argument("--guidance", type=finite_float, default=DEFAULT_GUIDANCE, help="guidance while sampling")
    p.add_argument("--steps", type=positive_int, default=20, help="steps of the full schedule")
    p.add_argument("--iterations", type=nonnegative_int, default=DEFAULT_ITERATIONS,
                   help="fixed-point corrections per inversion step")
    p.add_argument("--source", default="caption", choices=["caption", "empty"],
                   help="the inversion's source prompt: the clip's caption (what a user editing their own clip "
                        "knows) or the empty prompt")
    p.add_argument("--out", default="runs/app-edit/seed0", help="folder for README.md, report.json, plots, gif")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_experiment)
