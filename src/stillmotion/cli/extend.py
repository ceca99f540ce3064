"""`stillmotion extend`: continue a video past the model's length, window by window; and its measurement."""

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


def _run_extend(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    import torch

    from stillmotion.data.video_io import probe_video, to_float, write_video
    from stillmotion.pipelines.extend import check_extend, default_context, extend, seams
    from stillmotion.pipelines.inputs import read_input_video
    from stillmotion.pipelines.text_to_video import load

    check_writable(args.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.time()
    pipe = load(args.model)
    given, note = read_input_video(args.video, pipe.size, frames=args.frames)  # (L, H, W, 3): all, if L <= --frames
    if len(given) >= args.frames:
        raise ValueError(f"--frames {args.frames} is not longer than '{Path(args.video).name}' "
                         f"({probe_video(args.video).num_frames} frames): ask for more frames than the video has "
                         "(its frames are kept as they are), or cut the video shorter")
    print(note)
    context = args.context if args.context is not None else default_context(pipe)
    check_extend(pipe, args.frames, len(given), context, args.method)
    clip = extend(pipe, args.prompt, args.frames, video=to_float(given)[None], context=context, method=args.method,
                  seed=args.seed, negative=args.negative, motion=args.motion, progress=not args.quiet,
                  sampling=pipe.sampling.merged(steps=args.steps, sampler=args.sampler, guidance=args.guidance))[0]
    write_video(args.out, clip, fps=args.fps, scale=args.scale)
    cuts = seams(len(given), args.frames, pipe.frames, context) if args.method == "windows" else [len(given)]
    made = args.frames - len(given)
    how = (f"in {len(cuts)} window(s) of {pipe.frames} frames, each knowing the last {context}"
           if args.method == "windows" else "in one joint pass")
    print(f"wrote {args.out} ({args.frames} frames: {len(given)} given, {made} made {how}; "
          f"{time.time() - start:.1f}s). Seams at frames {','.join(map(str, cuts))}: score them with "
          f"`stillmotion evaluate --drift {args.out} --seams {','.join(map(str, cuts))}`")
    return 0


def _add_window_options(p: argparse.ArgumentParser) -> None:
    """The windows (context, method), the model and the sampler settings."""
    from stillmotion.diffusion.samplers import SAMPLERS
    from stillmotion.pipelines.extend import DEFAULT_CONTEXT, DEFAULT_METHOD, METHODS

    p.add_argument("--context", type=positive_int, default=None, metavar="K",
                   help=f"frames each window knows: the last K made so far, 1 .. half the model's length "
                        f"(default {DEFAULT_CONTEXT}, measured by `stillmotion experiment extend`)")
    p.add_argument("--method", default=DEFAULT_METHOD, choices=METHODS,
                   help="windows: overlapping windows of the model's length, each continuing the last K frames; "
                        "joint: all frames in one pass (the network's windowed attention), the given frames known")
    p.add_argument("--model", default=None, help="checkpoint or run folder (default: the shipped model)")
    p.add_argument("--steps", type=positive_int, default=20, help="sampler steps per window")
    p.add_argument("--sampler", default="dpmpp-2m", choices=sorted(SAMPLERS), help="ODE/SDE solver")
    p.add_argument("--guidance", type=finite_float, default=4.0, help="classifier-free guidance scale")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch")


def _add_extend(subparsers) -> None:
    p = subparsers.add_parser("extend", formatter_class=HelpFormatter,
                              help="continue a video past the model's length, in windows that each continue the "
                                   "frames already made (the video's own frames are kept)")
    p.add_argument("video", help="the video to continue (any size: the centred square, resized; the choice is printed)")
    p.add_argument("prompt", help='what happens next, e.g. "a red circle moving left"')
    p.add_argument("--frames", type=positive_int, default=64, help="length of the result, the video's frames included")
    p.add_argument("--out", default="long.mp4", help="output .mp4, .gif or .webm")
    _add_window_options(p)
    p.add_argument("--negative", default="", help="what to steer away from")
    p.add_argument("--seed", type=random_seed, default=0, help="random seed, 0 .. 2**63 - 1")
    p.add_argument("--motion", default=None, metavar="DIRECTION|DX,DY",
                   help="motion hint for models trained with one (see `stillmotion generate --help`)")
    p.add_argument("--scale", type=positive_int, default=8, help="nearest-neighbour upscale of the file")
    p.add_argument("--fps", type=positive_float, default=8, help="frame rate of the file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_extend)


def add(subparsers) -> None:
    """Declare this module's commands."""
    _add_extend(subparsers)


# ------------------------------------------------------------------------------------------------ experiment
# The measurement: long clips from held-out world clips (continued) and from plain prompts (text-to-video past the
# model's length), each scored per window by eval/drift.py and FVD-shapes per 16-frame window.

SETS = {"black": "continue held-out world clips on black (the only background the shipped model saw)",
        "backgrounds": "continue held-out world clips on gray, gradient and noise backgrounds (never trained on)",
        "text": "text-to-video from plainly worded prompts (eval/prompt_following.py, split 'canonical')"}
BATCH = 16  # clips per sampler call
GALLERY = 3  # clips of each set in gallery.gif (one row a set), spread over the set


def _spread(n: int, k: int) -> list[int]:
    """k indices spread evenly over range(n) (every one when n <= k)."""
    k = min(k, n)
    return [round(i * (n - 1) / max(k - 1, 1)) for i in range(k)]


def _sources(kind: str, n: int, seed: int, size: int, frames: int):
    """(videos (n, 3, F, H, W) in [-1, 1] or None, prompts, asked colours, asked directions) of one set.

    World clips are single gliding objects (the 8 directions), held-out seeds HELDOUT_SEED + seed + i; their
    caption is the prompt. The text set's prompts are `single_object_prompts(n, seed, "canonical")`."""
    import torch

    from stillmotion.data.video_io import to_float
    from stillmotion.eval.interpolation import HELDOUT_SEED

    if kind == "text":
        from stillmotion.eval.prompt_following import single_object_prompts

        pairs = single_object_prompts(n, seed=seed, split="canonical")
        return None, [p for p, _ in pairs], [t["colour"] for _, t in pairs], [t["direction"] for _, t in pairs]
    clips = [_world(kind, i, size, frames).sample(HELDOUT_SEED + seed + i) for i in range(n)]
    objects = [c.labels.objects[0] for c in clips]
    return (torch.stack([to_float(c.video) for c in clips]), [c.caption for c in clips],
            [o.colour for o in objects], [o.motion for o in objects])


def _world(kind: str, i: int, size: int, frames: int):
    """The world clip i of a set comes from: black, or gray / gradient / noise in turn for "backgrounds"."""
    from stillmotion.data.captions import DIRECTIONS
    from stillmotion.data.worlds import get_world

    background = "black" if kind != "backgrounds" else ("gray", "gradient", "noise")[i % 3]
    return get_world("shapes", size=size, frames=frames, p_two=0.0, background=background,
                     motions=tuple(DIRECTIONS))


def _reference(kind: str, n: int, size: int, frames: int, offset: int = 0):
    """n real clips like a set's (never its own; FVD reference seeds REAL_SEED + offset + i)."""
    import torch

    from stillmotion.data.video_io import to_float
    from stillmotion.eval.fvd import REAL_SEED

    return torch.stack([to_float(_world(kind, i, size, frames).sample(REAL_SEED + offset + i).video)
                        for i in range(n)])


def _long_clips(pipe, videos, prompts, frames: int, arm: dict, seed: int, steps: int, guidance: float):
    """(n, 3, frames, H, W): every prompt's long clip, BATCH at a time (batch i samples with seed + i)."""
    import torch
    from tqdm import tqdm

    from stillmotion.pipelines.extend import extend

    out = []
    for i in tqdm(range(0, len(prompts), BATCH), desc=arm["name"], leave=False):
        given = None if videos is None else videos[i:i + BATCH]
        out.append(extend(pipe, prompts[i:i + BATCH], frames, video=given, context=arm["context"],
                          method=arm["method"], seed=seed + i, progress=False,
                          sampling=pipe.sampling.merged(steps=steps, guidance=guidance)).cpu())
    return torch.cat(out)


def _score(long, cuts, colours, directions, net, reference, window: int) -> dict:
    """eval/drift.py's summary of the long clips, and FVD-shapes of each `window`-frame window against
    `reference` = (set A, set B) of real clips (floor: FD(B, A))."""
    from stillmotion.data.video_io import to_uint8
    from stillmotion.eval.drift import drift_report, summarize
    from stillmotion.eval.fvd import frechet_video_distance

    reports = [drift_report(clip, seams=cuts, window=window) for clip in to_uint8(long)]
    result = summarize(reports, colours, directions)
    a, b = reference
    result["fvd_per_window"] = [frechet_video_distance(long[:, :, j:j + window], a, net)
                                for j in range(0, long.shape[2] - window + 1, window)]
    result["fvd_floor"] = frechet_video_distance(b, a, net)
    return result


def _arms(methods, contexts, default: int) -> list[dict]:
    arms = []
    for method in methods:
        for k in (contexts or [default]) if method == "windows" else [None]:
            arms.append({"name": f"windows K={k}" if k else "joint", "method": method, "context": k or default})
    return arms


def run_experiment(out, *, n: int, frames: int, seed: int, steps: int, contexts, methods, model, guidance: float,
                   sets, command: str) -> dict:
    """Every (set, arm): long clips, scored; README.md, report.json and gallery.gif in `out`. Returns the report
    with "lines", a printable summary."""
    import time
    from pathlib import Path

    from stillmotion.eval.features import load_feature_net
    from stillmotion.pipelines.extend import check_extend, default_context, seams
    from stillmotion.pipelines.text_to_video import load

    pipe, net = load(model), load_feature_net("shapes")
    arms = _arms(methods, contexts, default_context(pipe))
    window = pipe.frames
    for arm in arms:  # refuse impossible settings before any sampling
        check_extend(pipe, frames, window, arm["context"], arm["method"])
    report = {"command": command, "model": str(model or "shipped"), "protocol": _protocol(n, frames, seed, steps,
                                                                                          guidance, window), "sets": {}}
    gallery = []
    for kind in sets:
        videos, prompts, colours, directions = _sources(kind, n, seed, pipe.size, window)
        reference = (_reference(kind, n, pipe.size, window), _reference(kind, n, pipe.size, window, offset=10**9))
        report["sets"][kind] = {"what": SETS[kind], "arms": {}}
        for arm in arms:
            start = time.time()
            long = _long_clips(pipe, videos, prompts, frames, arm, seed, steps, guidance)
            cuts = (seams(window, frames, window, arm["context"]) if arm["method"] == "windows"
                    else list(range(window, frames - 1, window)))
            result = _score(long, cuts, colours, directions, net, reference, window)
            result["seconds"] = round(time.time() - start, 1)
            report["sets"][kind]["arms"][arm["name"]] = result
            if arm is arms[0]:
                gallery += [long[i] for i in _spread(len(long), GALLERY)]
    Path(out).mkdir(parents=True, exist_ok=True)
    _write(out, report, gallery)
    report["lines"] = _lines(report)
    return report


def _protocol(n, frames, seed, steps, guidance, window) -> dict:
    from stillmotion.eval.drift import SEAM_RATIO_LIMIT
    from stillmotion.eval.fvd import REAL_SEED
    from stillmotion.eval.interpolation import HELDOUT_SEED

    return {"n": n, "frames": frames, "window": window, "seed": seed, "steps": steps, "guidance": guidance,
            "world_clips": f"single gliding objects (8 directions), seeds {HELDOUT_SEED} + {seed} + i, "
                           f"{window} frames given, the caption as the prompt",
            "text_prompts": f"single_object_prompts(n, seed={seed}, split='canonical')",
            "sampling_seed": "seed + batch start (batches of 16); window w: pipelines/extend.window_seed",
            "drift": "eval/drift.py: segments = the frames each window made; colour/direction by the pixel probe",
            "seam_bar": SEAM_RATIO_LIMIT,
            "fvd": f"FVD-shapes of each {window}-frame window against {n} real clips of the set's kind "
                   f"(seeds {REAL_SEED} + i); floor: a second real set ({REAL_SEED + 10**9} + i)"}


def _write(out, report: dict, gallery: list) -> None:
    from pathlib import Path

    from stillmotion.atomic import write_json
    from stillmotion.data.video_io import video_grid, write_video

    out = Path(out)
    write_json(out / "report.json", report)
    (out / "README.md").write_text(_readme(report))
    if gallery:
        write_video(out / "gallery.gif", video_grid(gallery, ncols=GALLERY), fps=10, scale=2)  # 100 ms: exact in GIF


def _lines(report: dict) -> list[str]:
    lines = []
    for kind, s in report["sets"].items():
        for name, r in s["arms"].items():
            lines.append(f"{kind:11s} {name:12s} colour kept {r['colour_kept_every_window']:.3f}  direction kept "
                         f"{r['direction_kept']:.3f} (every window {r['direction_kept_every_window']:.3f}, with room "
                         f"{r['direction_kept_with_room']:.3f})  seam/inside {r['seam_ratio']:.2f}  FVD per window "
                         + " ".join(f"{v:.1f}" for v in r["fvd_per_window"]) + f" (floor {r['fvd_floor']:.1f})")
    return lines


def _readme(report: dict) -> str:
    p = report["protocol"]
    out = ["# Long clips: continuation and text-to-video past the model's length", "",
           f"`{report['command']}`", "", "Protocol: " + "; ".join(f"{k}: {v}" for k, v in p.items()), "",
           "| set | arm | colour kept, every window | direction kept (later windows) | every window | with room "
           "(share of later windows) | in view (share) | seam / inside warping error | clips with seams <= 1.5x "
           "| FVD-shapes per window (floor) | s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for kind, s in report["sets"].items():
        for name, r in s["arms"].items():
            out.append(f"| {kind} | {name} | {r['colour_kept_every_window']:.3f} | {r['direction_kept']:.3f} | "
                       f"{r['direction_kept_every_window']:.3f} | {r['direction_kept_with_room']:.3f} "
                       f"({r['later_windows_with_room']:.2f}) | {r['direction_kept_in_view']:.3f} "
                       f"({r['later_windows_in_view']:.2f}) | {r['seam_warping_error']:.2f} / "
                       f"{r['inside_warping_error']:.2f} = {r['seam_ratio']:.2f} | {r['seam_ok']:.2f} | "
                       + " ".join(f"{v:.1f}" for v in r["fvd_per_window"]) + f" ({r['fvd_floor']:.1f}) | "
                       f"{r['seconds']:.0f} |")
    out += ["", "## Drift per window", "", "Medians over clips; shares of clips. Colour distance: RGB (0..441) from "
            "the first window's median object colour; size change: area / first window's - 1; speed px/frame.", ""]
    for kind, s in report["sets"].items():
        for name, r in s["arms"].items():
            out += [f"**{kind}, {name}**", "", "| frames | colour ok | direction ok | in view | room | colour "
                    "distance | size change | speed | speed change |", "|---|---|---|---|---|---|---|---|---|"]
            out += [f"| {w['frames'][0]}-{w['frames'][1] - 1} | {w['colour_ok']:.2f} | {w['direction_ok']:.2f} | "
                    f"{w['in_view']:.2f} | {w['room']:.2f} | {w['colour_distance']:.1f} | {w['size_change']:+.2f} | "
                    f"{w['speed']:.2f} | {w['speed_change']:+.2f} |" for w in r["per_window"]]
            out.append("")
    return "\n".join(out) + "\n"


def _run_experiment(args: argparse.Namespace) -> int:
    import shlex

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    report = run_experiment(args.out, n=args.n, frames=args.frames, seed=args.seed, steps=args.steps,
                                   contexts=args.contexts, methods=args.methods, model=args.model,
                                   guidance=args.guidance, sets=args.sets,
                                   command=shlex.join(["stillmotion", *args.argv]))
    for line in report["lines"]:
        print(line)
    print(f"wrote {args.out}/README.md, report.json, gallery.gif")
    return 0


def add_experiment(subparsers) -> None:
    """Declare this module's `stillmotion experiment` subcommand (its measurement)."""
    from stillmotion.pipelines.extend import METHODS

    p = subparsers.add_parser("extend", formatter_class=HelpFormatter,
                              help="long clips: continuation of held-out world clips (black and other backgrounds) "
                                   "and text-to-video past the model's length; drift per window and seams")
    p.add_argument("--n", type=positive_int, default=128, help="clips per set")
    p.add_argument("--frames", type=positive_int, default=64, help="length of every long clip")
    p.add_argument("--seed", type=random_seed, default=0, help="clip and sampling seed (tune on 1, report on 0)")
    p.add_argument("--out", default="runs/app-extend/experiment", help="folder for README.md, report.json, gallery")
    p.add_argument("--contexts", type=positive_int, nargs="+", default=None, metavar="K",
                   help="window contexts to compare for the windows method (default: the pipeline's default)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS, help="methods to compare")
    p.add_argument("--sets", nargs="+", default=["black", "backgrounds", "text"],
                   choices=["black", "backgrounds", "text"],
                   help="black / backgrounds: continue held-out world clips on black / on gray, gradient and noise "
                        "backgrounds; text: text-to-video from plainly worded prompts")
    p.add_argument("--model", default=None, help="checkpoint or run folder (default: the shipped model)")
    p.add_argument("--steps", type=positive_int, default=20, help="sampler steps per window")
    p.add_argument("--guidance", type=finite_float, default=4.0, help="classifier-free guidance scale")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch")
    p.set_defaults(func=_run_experiment)
