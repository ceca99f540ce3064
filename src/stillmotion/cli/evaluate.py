"""`stillmotion evaluate`: prompt following, temporal consistency and FVD with a fixed protocol."""

from __future__ import annotations

import argparse

from stillmotion.cli.common import (
    MAX_SEED,
    HelpFormatter,
    add_motion_sampling_options,
    finite_float,
    nonnegative_int,
    output_folder,
    positive_int,
    random_seed,
)


def _run_evaluate(args: argparse.Namespace) -> int:
    out = _out_folder(args.out)
    if args.videos:
        out.mkdir(parents=True, exist_ok=True)
        return _evaluate_videos(args, out)
    if args.drift:
        return _evaluate_drift(args, out)
    fvd_n = args.n if args.fvd_n is None else args.fvd_n
    if args.seed + max(args.n, fvd_n) - 1 > MAX_SEED:
        raise ValueError(f"--seed {args.seed}: clip i uses seed + i (i < --n, --fvd-n), which must stay <= 2**63 - 1")
    with output_folder(out):  # removed again if the evaluation fails before writing anything
        return _evaluate_model(args, out, fvd_n)


def _out_folder(path: str):
    """--out as a folder, refused when it names a file (an existing one, or a name like report.json)."""
    from pathlib import Path

    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out '{path}' is a file; evaluate writes report.json, summary.md and samples into a "
                         "folder: give a folder, e.g. --out eval")
    if out.suffix.lower() in (".json", ".md", ".png", ".txt", ".csv"):
        raise ValueError(f"--out '{path}' looks like a file name; evaluate writes report.json, summary.md and "
                         f"samples into the folder --out names: give a folder, e.g. --out {out.with_suffix('')}")
    return out


def _evaluate_model(args: argparse.Namespace, out, fvd_n: int) -> int:
    import json

    import torch

    from stillmotion.eval.prompt_following import evaluate_prompt_following, write_summary
    from stillmotion.pipelines.text_to_video import load

    if args.threads:
        torch.set_num_threads(args.threads)
    i3d = None
    if args.i3d:
        from stillmotion.eval.i3d import load_i3d

        i3d = load_i3d(args.i3d)  # fail before sampling
    pipe = load(args.model)
    sampling = pipe.sampling.merged(steps=args.steps, sampler=args.sampler, guidance=args.guidance,
                                    strategy=args.strategy, noise_warp=args.noise_warp)  # in each result's protocol
    judge, fvd_net = _evaluate_feature_nets(args.features, pipe.info)
    report = {"model": str(args.model or "shipped"), "record": pipe.info.get("record", {}), "results": []}
    if pipe.frames > 1 and (pipe.info.get("data") or {}).get("world", "shapes") == "shapes":
        _probe_denoiser(pipe, args.seed, report)
    for split in args.split:
        result = evaluate_prompt_following(pipe, n=args.n, seed=args.seed, split=split, sampling=sampling,
                                           feature_net=judge,
                                           sheet=out / f"samples-{split}.png", directions=args.directions)
        report["results"].append(result)
        print(f"{split:9s} colour {result['colour_accuracy']:.3f}  direction {result['direction_accuracy']:.3f}  "
              f"both {result['colour_and_direction_accuracy']:.3f}  ({result['seconds_per_clip']:.2f} s/clip)")
        if "feature_net" in result:
            f = result["feature_net"]
            print(f"{'':9s} feature net: colour {f['colour_accuracy']:.3f}  shape {f['shape_accuracy']:.3f}  "
                  f"motion {f['motion_accuracy']:.3f}  all three {f['all_accuracy']:.3f}")
    if "heldout" in args.split:  # how far the text encoder alone relates the held-out words to trained ones
        from stillmotion.eval.vocabulary import encoder_vocabulary, vocabulary_lines

        report["text_encoder_vocabulary"] = encoder_vocabulary(pipe.text)
        print("\n".join(vocabulary_lines(report["text_encoder_vocabulary"])))
    if fvd_net is not None and fvd_n >= 2:
        from stillmotion.eval.fvd import evaluate_fvd

        fvd, _ = evaluate_fvd(pipe, fvd_net, n=fvd_n, seed=args.seed, sampling=sampling, i3d=i3d)
        report["fvd"] = fvd
        if "skipped" in fvd:
            print(f"{fvd['metric']}: skipped ({fvd['skipped']})")
        else:
            if "caveat" in fvd:
                print(f"note: {fvd['caveat']}")
            print(f"{fvd['metric']} (n={fvd['n']}): generated {fvd['generated']:.2f}, real-vs-real floor "
                  f"{fvd['floor']:.2f}; controls: shuffled {fvd['time_shuffled']:.2f}, frame 0 repeated "
                  f"{fvd['static_frame0']:.2f}, reversed {fvd['time_reversed']:.2f}; {fvd['joint']['metric']}: "
                  f"generated {fvd['joint']['generated']:.2f}, floor {fvd['joint']['floor']:.2f}"
                  + (f"; I3D FVD generated {fvd['i3d']['generated']:.2f}, floor {fvd['i3d']['floor']:.2f}"
                     if "i3d" in fvd else ""))
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    write_summary(report, out / "summary.md")
    print(f"wrote {out / 'report.json'} and {out / 'summary.md'}")
    return 0


def _probe_denoiser(pipe, seed: int, report: dict) -> None:
    """The denoiser's probes on the shapes world, into `report` and printed: the high-noise direction probe
    (text-to-video, and image-to-video where trained) and the low-noise probe (noise kept on the object)."""
    from stillmotion.eval.kept_noise import evaluate_kept_noise, kept_noise_line
    from stillmotion.eval.motion_probe import evaluate_direction_probe

    report["direction_probe"] = [evaluate_direction_probe(pipe, seed=seed)]
    if float((pipe.info.get("train") or {}).get("tasks", {}).get("i2v", 0)) > 0:
        report["direction_probe"].append(evaluate_direction_probe(pipe, seed=seed, first_frame=True))
    for probe in report["direction_probe"]:
        print(f"direction probe, {probe['task']} (right-left / down-up travel of the estimate, px; ideal "
              + ", ".join(f"{a} {v:.1f}" for a, v in probe["ideal"].items()) + "): "
              + "; ".join(f"{a} " + " ".join(f"@{s} {v:.2f}" for s, v in probe["separation"][a].items())
                          for a in probe["separation"]) + f"; mean ratio {probe['mean_ratio']:.2f}")
    report["kept_noise"] = evaluate_kept_noise(pipe, seed=seed)
    print(kept_noise_line(report["kept_noise"]))


def _evaluate_feature_nets(choice: str | None, info: dict):
    """(prompt-following judge, FVD network) for `--features`: None -> the shipped networks (shapes for the
    judge, the model's world for FVD); "none" -> neither; a folder -> that network for both where it fits."""
    from stillmotion.eval.features import load_feature_net

    if choice == "none":
        return None, None
    if choice is None:
        world = (info.get("data") or {}).get("world") or "shapes"
        judge = load_feature_net("shapes")
        return judge, (judge if world == "shapes" else load_feature_net(world) if world == "digits" else None)
    net = load_feature_net(choice)
    return (net if net.config.world == "shapes" else None), net


def _evaluate_videos(args: argparse.Namespace, out) -> int:
    import json
    import sys
    from pathlib import Path

    from stillmotion.data.skips import SKIP_LIST, write_skip_list
    from stillmotion.eval.temporal import evaluate_videos

    report = evaluate_videos(args.videos, num_frames=args.max_frames or None, progress=True)
    (out / "videos.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    skipped = report["skipped"]
    write_skip_list(out / SKIP_LIST, [(Path(args.videos) / name, reason) for name, reason in skipped.items()])
    for name, m in report["videos"].items():
        print(f"{name:30s} warping error {m['warping_error']:6.2f}  flicker {m['flicker']:6.2f}  "
              f"dynamic degree {m['dynamic_degree']:5.2f} px/frame")
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason}")
    if skipped:
        print(f"skipped {len(skipped)} of {len(skipped) + len(report['videos'])} video(s); full list in "
              f"{out / SKIP_LIST}", file=sys.stderr)
    print(f"wrote {out / 'videos.json'} ({len(report['videos'])} scored, {len(skipped)} skipped)")
    return 0 if report["videos"] else 2


def _evaluate_drift(args: argparse.Namespace, out) -> int:
    from stillmotion.atomic import write_json
    from stillmotion.data.video_io import read_video
    from stillmotion.eval.drift import drift_lines, drift_report, segment_bounds

    video = read_video(args.drift)  # a VideoReadError (one line) names a missing or corrupt file
    seams = None if args.seams is None else _seam_list(args.seams)
    segment_bounds(len(video), seams, args.window)  # bad seams stop here, before the flow is computed
    report = {"video": str(args.drift), "window": args.window, **drift_report(video, seams=seams, window=args.window)}
    print("\n".join(drift_lines(report)))
    write_json(out / "drift.json", report)
    print(f"wrote {out / 'drift.json'}")
    return 0


def _seam_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--seams '{text}': expected frame numbers separated by commas, e.g. 16,28,40,52") from None


def _add_evaluate(subparsers) -> None:
    from stillmotion.data.shapes import MOTIONS
    from stillmotion.diffusion.samplers import SAMPLERS
    from stillmotion.pipelines.text_to_video import STRATEGIES

    p = subparsers.add_parser(
        "evaluate", formatter_class=HelpFormatter,
        help="score a model with a fixed protocol: prompt following (colour, direction), the direction probe and "
             "FVD against real clips; or, with --videos, the temporal consistency of a folder of videos")
    p.add_argument("--model", default=None, help="checkpoint or run folder (default: the shipped model)")
    p.add_argument("--n", type=positive_int, default=256, help="prompts per split")
    p.add_argument("--seed", type=random_seed, default=0, help="prompt and sampling seed, 0 .. 2**63 - 1")
    p.add_argument("--split", nargs="+", default=["heldout", "train"], choices=["heldout", "train", "canonical"],
                   help="prompt wordings: held-out (never in training captions), train, canonical")
    p.add_argument("--motions", "--directions", dest="directions", nargs="+", default=None, choices=list(MOTIONS),
                   metavar="MOTION",
                   help="ask only these motions (default: the 8 directions): any of the directions, e.g. for a model "
                        "trained on a world restricted to them, and static, bouncing, growing, shrinking, rotating "
                        "(read by the pixel probe's read_motion)")
    p.add_argument("--strategy", default=None, choices=STRATEGIES,
                   help="sampling strategy (default: the model's own, from its config.json)")
    p.add_argument("--steps", type=positive_int, default=None, help="sampler steps (default: the model's own, 20)")
    p.add_argument("--sampler", default=None, choices=sorted(SAMPLERS),
                   help="sampler (default: the model's own, dpmpp-2m)")
    p.add_argument("--guidance", type=finite_float, default=None,
                   help="classifier-free guidance scale (default: the model's own, 4)")
    add_motion_sampling_options(p)
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch")
    p.add_argument("--out", default="eval", metavar="DIR",
                   help="folder for report.json, summary.md and samples-<split>.png (made when the evaluation "
                        "starts, removed again if it fails before writing anything)")
    p.add_argument("--features", default=None, metavar="WORLD|DIR|none",
                   help="feature network that also judges prompt following and gives FVD-<world> (default: the "
                        "shipped ones; 'none' to skip both)")
    p.add_argument("--fvd-n", type=nonnegative_int, default=None,
                   help="clips per set for FVD-<world> of generated vs real clips (default: --n; 0 skips; under "
                        "64 the result is noisy and says so; use >= 256 to compare models)")
    p.add_argument("--i3d", default=None, metavar="PATH",
                   help="also compute standard FVD with a local I3D TorchScript file: the i3d_torchscript.pt of "
                        "the StyleGAN-V / DIGAN FVD code (its detector_url in github.com/universome/stylegan-v "
                        "src/metrics/frechet_video_distance.py); nothing is downloaded")
    p.add_argument("--videos", default=None, metavar="DIR",
                   help="instead: score every video in DIR on temporal consistency (warping error, flicker, "
                        "dynamic degree) and write videos.json and skipped.tsv (what could not be scored, and why)")
    p.add_argument("--max-frames", type=nonnegative_int, default=64, metavar="N",
                   help="--videos: score the first N frames of each video (0: every frame; long clips at full "
                        "resolution take minutes each)")
    p.add_argument("--drift", default=None, metavar="VIDEO",
                   help="instead: the drift of a long single-object clip (`stillmotion extend`), window by window "
                        "(colour, size, speed, direction against the first window) and its seams (warping error "
                        "across window boundaries against inside windows); writes drift.json")
    p.add_argument("--seams", default=None, metavar="F1,F2,...",
                   help="--drift: the first frame of each window after the first, as `extend` prints them "
                        "(default: a boundary every --window frames)")
    p.add_argument("--window", type=positive_int, default=16, help="--drift without --seams: frames per window")
    p.set_defaults(func=_run_evaluate)


def add(subparsers) -> None:
    """Declare this module's commands."""
    _add_evaluate(subparsers)
