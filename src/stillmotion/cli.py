"""The `stillmotion` command line.

Each command is two small functions: `_add_<name>(subparsers)` declares its arguments and points
`func` at `_run_<name>(args)`, which does the work. To add a command, write both and list the adder in
COMMANDS. Errors print one line on stderr and exit with status 2 (set STILLMOTION_DEBUG=1 for a traceback).
"""

from __future__ import annotations

import argparse
import os
import sys

from stillmotion import __version__


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text}")
    return value


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
    p.add_argument("--n", type=_positive_int, default=16, help="number of clips")
    p.add_argument("--out", default="preview.gif", help="animation path (.gif/.mp4/.webm); the sheet is .png")
    p.add_argument("--seed", type=int, default=0, help="seed of the first clip (clip i uses seed + i)")
    p.add_argument("--frames", type=_positive_int, default=16, help="frames per clip")
    p.add_argument("--size", type=_positive_int, default=32, help="canvas size in pixels")
    p.add_argument("--scale", type=_positive_int, default=4, help="upscale factor of the animation")
    p.add_argument("--fps", type=float, default=8, help="animation frame rate")
    p.add_argument("--captions", default="train", choices=["train", "heldout"], help="caption wordings")
    p.add_argument("--p-two", type=float, default=None, help="probability of a second object")
    p.add_argument("--background", default=None, help="black, gray, gradient, noise or mixed")
    p.set_defaults(func=_run_data_preview)



# ------------------------------------------------------------------------------------------------ features

def _run_features_train(args: argparse.Namespace) -> int:
    import shlex

    from stillmotion.eval.features_train import make_train_config, train_feature_net

    cfg = make_train_config(args.world, out=args.out, steps=args.steps, seed=args.seed, batch_size=args.batch_size,
                            lr=args.lr, eval_clips=args.eval_clips, threads=args.threads, init_from=args.init_from)
    # the command that reproduces this run, every learning-relevant value spelled out
    command = shlex.join(["stillmotion", "features", "train", "--world", cfg.world, "--out", cfg.out, "--steps",
                          str(cfg.steps), "--batch-size", str(cfg.batch_size), "--lr", str(cfg.lr), "--seed",
                          str(cfg.seed), "--eval-clips", str(cfg.eval_clips)]
                         + (["--init-from", cfg.init_from] if cfg.init_from else []))
    out = train_feature_net(cfg, command=command)
    print(f"wrote {out} (model.safetensors, config.json)")
    return 0


def _run_features_eval(args: argparse.Namespace) -> int:

    import torch

    from stillmotion.eval.features import load_feature_net
    from stillmotion.eval.features_train import accuracy, heldout_seeds, preset_worlds
    from stillmotion.eval.fvd import controls

    if args.threads:
        torch.set_num_threads(args.threads)
    net = load_feature_net(args.net or args.world)
    worlds = preset_worlds(net.config.world)
    report = {"net": str(args.net or f"shipped features-{net.config.world}"), "world": net.config.world,
              "heldout_accuracy": {"clips": args.n, "seeds": f"{heldout_seeds(1)[0]} + i",
                                   **accuracy(net, worlds, heldout_seeds(args.n))}}
    if net.config.world == "digits":  # handwriting never seen in training
        unseen = preset_worlds("digits", image_split="heldout")
        report["heldout_handwriting_accuracy"] = accuracy(net, unseen, heldout_seeds(args.n))
    for key in ("heldout_accuracy", "heldout_handwriting_accuracy"):
        if key in report:
            print(f"{key}: " + ", ".join(f"{k} {v:.4f}" for k, v in report[key].items() if k not in ("clips", "seeds")))
    if args.controls_n:
        c = controls(net, args.controls_n, worlds=worlds)
        report["controls"] = c
        print(f"{c['metric']} at n={c['n']}: floor {c['floor']:.3f}; " + ", ".join(
            f"{k} {c[k]:.2f} ({c['ratio_to_floor'][k]:.0f}x)" for k in c["ratio_to_floor"])
            + f"; motion head on reversed clips reads the reversed motion {c['reversal']['motion_accuracy']:.3f}")
        j = c["joint"]
        print(f"{j['metric']}: floor {j['floor']:.3f}; " + ", ".join(
            f"{k} {j[k]:.2f} ({j['ratio_to_floor'][k]:.0f}x)" for k in j["ratio_to_floor"]))
    if args.out:
        from stillmotion.data.atomic import write_json

        write_json(args.out, report)
        print(f"wrote {args.out}")
    return 0


def _add_features(subparsers) -> None:
    from stillmotion.eval.features_train import FEATURE_PRESETS

    features = subparsers.add_parser("features", help="train or measure the feature networks behind FVD-<world>")
    sub = features.add_subparsers(dest="features_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("train", help="train a world's feature network (attribute classifier) and save it",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--world", required=True, choices=sorted(FEATURE_PRESETS), help="synthetic world")
    p.add_argument("--out", required=True, help="folder for model.safetensors and config.json")
    p.add_argument("--steps", type=_positive_int, default=None, help="optimizer steps (default: the preset's)")
    p.add_argument("--batch-size", type=_positive_int, default=None, help="clips per step (default: preset's)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: preset's)")
    p.add_argument("--seed", type=int, default=0, help="seed of init, clips and noise")
    p.add_argument("--eval-clips", type=int, default=None, help="held-out clips measured at the end")
    p.add_argument("--init-from", default=None, metavar="DIR",
                   help="continue training this feature network (a later stage; use another --seed for fresh clips)")
    p.add_argument("--threads", type=_positive_int, default=None, help="CPU threads for torch")
    p.set_defaults(func=_run_features_train)
    p = sub.add_parser("eval", help="held-out accuracy per head, and the FVD floor and controls",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--world", default="shapes", choices=sorted(FEATURE_PRESETS), help="the shipped net of a world")
    p.add_argument("--net", default=None, help="a feature-network folder instead of the shipped one")
    p.add_argument("--n", type=_positive_int, default=1024, help="held-out clips for the accuracies")
    p.add_argument("--controls-n", type=int, default=1024, help="clips per set for floor and controls (0: skip)")
    p.add_argument("--threads", type=_positive_int, default=None, help="CPU threads for torch")
    p.add_argument("--out", default=None, help="write the numbers to this .json file")
    p.set_defaults(func=_run_features_eval)


# ------------------------------------------------------------------------------------------------ experiment

def _run_approaches(args: argparse.Namespace) -> int:
    import torch

    from stillmotion.experiments.approaches import run_approaches

    if args.threads:
        torch.set_num_threads(args.threads)
    pools = [None if p == "all" else int(p) for p in args.pools]
    report = run_approaches(args.out, minutes=None if args.steps else args.minutes, steps=args.steps, n=args.n,
                            n_curve=args.n_curve, points=args.points, clip_pools=pools, arms=args.arms,
                            seed=args.seed, sample_steps=args.sample_steps, preset=args.preset)
    for name, r in report["arms"].items():
        print(f"{name:20s} colour {r['colour_accuracy']:.3f}  direction {r['direction_accuracy']:.3f}  "
              f"both {r['colour_and_direction_accuracy']:.3f}")
    print(f"wrote {args.out}/README.md, report.json, time.png, grid.gif")
    return 0


ARMS = ["spacetime", "flow-consistency", "motion-hint", "joint-image-video", "keyframes", "inflated", "scratch"]


def _add_experiment(subparsers) -> None:
    experiment = subparsers.add_parser("experiment", help="train and compare approaches on one budget")
    sub = experiment.add_subparsers(dest="experiment_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("approaches", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       help="space-time U-Net, flow consistency, motion hints, joint image-video, keyframes + "
                            "interpolation, image-model inflation vs scratch: same budget, same judge")
    p.add_argument("--minutes", type=float, default=10.0, help="training budget per arm (wall clock)")
    p.add_argument("--steps", type=_positive_int, default=None, help="budget per arm in optimizer steps instead")
    p.add_argument("--out", default="docs/approaches", help="folder for README.md, report.json, plots, runs/")
    p.add_argument("--n", type=_positive_int, default=64, help="prompts (and FVD clips) per arm at the end")
    p.add_argument("--n-curve", type=_positive_int, default=32, help="prompts per point of the training curve")
    p.add_argument("--points", type=_positive_int, default=3, help="points of the training curve per arm")
    p.add_argument("--pools", nargs="+", default=["256", "all"],
                   help="distinct training clips of the inflation study ('all': a fresh clip every example)")
    p.add_argument("--arms", nargs="+", default=None, choices=ARMS, help="run only these arms (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample-steps", type=_positive_int, default=20, help="sampler steps when judging")
    p.add_argument("--preset", default="shapes-s", help="training preset every arm starts from")
    p.add_argument("--threads", type=_positive_int, default=None, help="CPU threads for torch")
    p.set_defaults(func=_run_approaches)


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
    p.add_argument("--workers", type=_positive_int, default=1, help="files measured in parallel")
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
    p.add_argument("--frames", type=_positive_int, default=16, help="frames per clip")
    p.add_argument("--size", type=_positive_int, default=32, help="frame size in pixels")
    p.add_argument("--stride", type=_positive_int, default=1, help="keep every N-th frame")
    p.add_argument("--fps", type=float, default=None, help="resample to this frame rate first")
    p.add_argument("--clips-per-video", type=_positive_int, default=1, help="clips decoded from each video")
    p.add_argument("--clips-per-shard", type=_positive_int, default=256, help="clips per shard file")
    p.add_argument("--layout", default="auto", help="auto, captions, ucf101 or kinetics")
    p.add_argument("--split", default=None, help="UCF-101 / Kinetics split to use (e.g. train)")
    p.add_argument("--seed", type=int, default=0, help="seed of the clip choice")
    p.add_argument("--workers", type=_positive_int, default=1, help="videos decoded in parallel")
    p.set_defaults(func=_run_preprocess)


# ------------------------------------------------------------------------------------------------ train

def _run_train(args: argparse.Namespace) -> int:
    from stillmotion.train.config import TrainConfig, make_config
    from stillmotion.train.loop import train

    overrides = {}
    for item in args.set or []:
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE, got '{item}'")
        key, value = item.split("=", 1)
        overrides[key.strip().replace("-", "_")] = value
    for key in ("world", "data", "out", "steps", "minutes", "batch_size", "lr", "seed", "model", "frames",
                "size", "threads", "workers"):
        value = getattr(args, key)
        if value is not None:
            overrides[key] = value
    if args.bf16:
        overrides["bf16"] = True
    if args.resume:
        from stillmotion.train import checkpoint

        out = overrides.get("out") or TrainConfig.out
        saved = checkpoint.load_config(out)["train"]
        free = ("steps", "minutes", "threads", "workers")  # budget and machine, not what is learned
        changed = {k: v for k, v in overrides.items() if k not in (*free, "out") and saved.get(k) != v}
        if changed or args.preset:
            raise ValueError(f"--resume continues the saved run '{out}' with its own config; only --steps, "
                             f"--minutes, --threads and --workers may change (got {sorted(changed) or ['--preset']})")
        saved.update({k: v for k, v in overrides.items() if k in free})
        saved["out"] = str(out)  # a run folder copied or moved elsewhere continues where it is now
        cfg = make_config(None, saved)
    else:
        cfg = make_config(args.preset or "shapes-s", overrides)
    train(cfg, resume=args.resume)
    return 0


def _add_train(subparsers) -> None:
    from stillmotion.train.config import TRAIN_PRESETS

    p = subparsers.add_parser(
        "train", help="train a text-to-video model (one process, or many under torchrun)",
        description="Train a text-to-video model. Any field of TrainConfig can be set with --set KEY=VALUE. "
                    "Under `torchrun --nproc_per_node N` the same command trains with DDP.")
    p.add_argument("--preset", choices=sorted(TRAIN_PRESETS), help="named configuration (default shapes-s)")
    p.add_argument("--world", help="synthetic world: shapes or digits")
    p.add_argument("--data", help="a folder of videos with captions (instead of a world)")
    p.add_argument("--out", help="run folder (checkpoint, log.csv, samples/)")
    p.add_argument("--steps", type=_positive_int, help="stop after N optimizer steps")
    p.add_argument("--minutes", type=float, help="stop after M minutes of training")
    p.add_argument("--batch-size", type=_positive_int, help="global batch size")
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--seed", type=int, help="seed (data, noise and init are functions of it)")
    p.add_argument("--model", help="U-Net preset (tiny, cpu, cpu-m, gpu-b, gpu-l)")
    p.add_argument("--frames", type=int, help="frames per training clip")
    p.add_argument("--size", type=int, help="frame size in pixels")
    p.add_argument("--threads", type=_positive_int, help="CPU threads for torch")
    p.add_argument("--workers", type=int, help="processes decoding clips ahead of each step (real videos: 2-8)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast (opt-in)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override any TrainConfig field")
    p.set_defaults(func=_run_train)


# ------------------------------------------------------------------------------------------------ generate

def _check_writable(path: str) -> None:
    """Fail before spending minutes on sampling if the result could not be written."""
    from pathlib import Path

    out = Path(path)
    if out.suffix.lower() not in (".mp4", ".gif", ".webm", ".png"):
        raise ValueError(f"cannot write '{path}': use a .mp4, .gif, .webm or .png (contact sheet) file name")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"cannot write '{path}': cannot create folder '{out.parent}' ({e.strerror})") from e
    if not os.access(out.parent, os.W_OK):
        raise ValueError(f"cannot write '{path}': folder '{out.parent}' is not writable")


def _run_generate(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    import torch

    from stillmotion.data.video_io import save_contact_sheet, write_video
    from stillmotion.pipelines.text_to_video import load

    _check_writable(args.out)
    if args.frames is not None and args.frames < 1:
        raise ValueError(f"--frames must be >= 1 (got {args.frames})")
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.time()
    pipe = load(args.model)
    loaded = time.time()
    prompts = [args.prompt] * args.n
    known = {}
    if args.frames_from is not None:  # image-to-video, continuing a video, or filling in between keyframes
        from stillmotion.pipelines.known_frames import load_known_frames

        frames, mask = load_known_frames(args.frames_from, args.keep, args.frames or pipe.frames, pipe.size)
        known = dict(known_frames=frames, frame_mask=mask)
    videos = torch.cat([pipe(prompts[i:i + 1], negative=args.negative, frames=args.frames, steps=args.steps,
                             sampler=args.sampler, guidance=args.guidance, seed=args.seed + i,
                             strategy=args.strategy, motion=args.motion, progress=not args.quiet, **known)
                        for i in range(args.n)])
    sampled = time.time()
    out = Path(args.out)
    clips = list(videos.cpu())
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
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("prompt", help='what to show, e.g. "a red circle moving left"')
    p.add_argument("--negative", default="", help="what to steer away from")
    p.add_argument("--frames", type=int, default=None, help="frames (default: what the model was trained on)")
    p.add_argument("--steps", type=_positive_int, default=20, help="sampler steps")
    p.add_argument("--sampler", default="dpmpp-2m", choices=sorted(SAMPLERS), help="ODE/SDE solver")
    p.add_argument("--guidance", type=float, default=4.0, help="classifier-free guidance scale")
    p.add_argument("--strategy", default=None, choices=STRATEGIES,
                   help="joint: all frames at once; first-frame: then again from its first frame as image-to-video "
                        "(default: the model's own, from its config.json)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--motion", default=None, metavar="DIRECTION|DX,DY",
                   help="motion hint for models trained with one (motion_cond): left, up-right, static, ... or "
                        "DX,DY in canvas fractions over the clip (x right, y down)")
    p.add_argument("--frames-from", default=None, metavar="FILE",
                   help="known frames from an image or a video: image-to-video, continuing a video, or keyframes "
                        "to fill in between (see --keep; needs a model trained with those frame tasks)")
    p.add_argument("--keep", default="first",
                   help="which frames of --frames-from are known: first | first:K | every:N (and the last)")
    p.add_argument("--n", type=_positive_int, default=1, help="number of clips (seeds seed..seed+n-1)")
    p.add_argument("--out", default="clip.mp4", help="output .mp4, .gif, .webm, or .png contact sheet")
    p.add_argument("--model", default=None, help="checkpoint or run folder (default: the shipped model)")
    p.add_argument("--scale", type=_positive_int, default=8, help="nearest-neighbour upscale of the file")
    p.add_argument("--fps", type=float, default=8, help="frame rate of the file")
    p.add_argument("--threads", type=_positive_int, default=None, help="CPU threads for torch")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_generate)


# ------------------------------------------------------------------------------------------------ info

def _run_info(args: argparse.Namespace) -> int:
    import json

    from stillmotion.pipelines.text_to_video import shipped_model_path
    from stillmotion.train import checkpoint

    path = args.path or shipped_model_path()
    folder = checkpoint.resolve(path)
    config = checkpoint.load_config(folder)
    if args.json:
        print(json.dumps(config, indent=2))
        return 0
    weights = checkpoint.load_weights(folder)
    n_params = sum(v.numel() for v in weights.values())
    record, train, model = config.get("record", {}), config.get("train", {}), config.get("model", {})
    print(f"checkpoint   {folder}")
    print(f"format       {config.get('format')} (stillmotion {config.get('version')})")
    print(f"model        {model.get('arch')} {n_params / 1e6:.2f}M parameters; channels {model.get('channels')}")
    print(f"diffusion    {config['diffusion']}")
    print(f"text         {config['text_encoder']}")
    print(f"data         {config.get('data')}")
    print(f"training     preset-equivalent config: {json.dumps({k: train[k] for k in sorted(train)})}")
    print(f"record       {json.dumps(record)}")
    if (folder / "training_state.pt").is_file():
        print("resumable    yes (training_state.pt present)")
    return 0


def _add_info(subparsers) -> None:
    p = subparsers.add_parser("info", help="describe a checkpoint: config, parameters, training record")
    p.add_argument("path", nargs="?", default=None, help="checkpoint or run folder (default: the shipped model)")
    p.add_argument("--json", action="store_true", help="print the whole config.json")
    p.set_defaults(func=_run_info)



# ------------------------------------------------------------------------------------------------ evaluate

def _run_evaluate(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import torch

    from stillmotion.eval.prompt_following import evaluate_prompt_following, write_summary
    from stillmotion.pipelines.text_to_video import load

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.videos:
        return _evaluate_videos(args, out)
    if args.threads:
        torch.set_num_threads(args.threads)
    i3d = None
    if args.i3d:
        from stillmotion.eval.i3d import load_i3d

        i3d = load_i3d(args.i3d)  # fail before sampling
    pipe = load(args.model)
    judge, fvd_net = _evaluate_feature_nets(args.features, pipe.info)
    report = {"model": str(args.model or "shipped"), "record": pipe.info.get("record", {}), "results": []}
    for split in args.split:
        result = evaluate_prompt_following(pipe, n=args.n, seed=args.seed, split=split, steps=args.steps,
                                           sampler=args.sampler, guidance=args.guidance, feature_net=judge,
                                           sheet=out / f"samples-{split}.png")
        report["results"].append(result)
        print(f"{split:9s} colour {result['colour_accuracy']:.3f}  direction {result['direction_accuracy']:.3f}  "
              f"both {result['colour_and_direction_accuracy']:.3f}  ({result['seconds_per_clip']:.2f} s/clip)")
        if "feature_net" in result:
            f = result["feature_net"]
            print(f"{'':9s} feature net: colour {f['colour_accuracy']:.3f}  shape {f['shape_accuracy']:.3f}  "
                  f"motion {f['motion_accuracy']:.3f}  all three {f['all_accuracy']:.3f}")
    fvd_n = args.n if args.fvd_n is None else args.fvd_n
    if fvd_net is not None and fvd_n >= 2:
        from stillmotion.eval.fvd import evaluate_fvd

        fvd, _ = evaluate_fvd(pipe, fvd_net, n=fvd_n, seed=args.seed, steps=args.steps, sampler=args.sampler,
                              guidance=args.guidance, i3d=i3d)
        report["fvd"] = fvd
        if "skipped" in fvd:
            print(f"{fvd['metric']}: skipped ({fvd['skipped']})")
        else:
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

    from stillmotion.eval.temporal import evaluate_videos

    report = evaluate_videos(args.videos)
    (out / "videos.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    for name, m in report["videos"].items():
        print(f"{name:30s} warping error {m['warping_error']:6.2f}  flicker {m['flicker']:6.2f}  "
              f"dynamic degree {m['dynamic_degree']:5.2f} px/frame")
    for name, reason in report["skipped"].items():
        print(f"skipped {name}: {reason}")
    print(f"wrote {out / 'videos.json'} ({len(report['videos'])} scored, {len(report['skipped'])} skipped)")
    return 0 if report["videos"] else 2


def _add_evaluate(subparsers) -> None:
    from stillmotion.diffusion.samplers import SAMPLERS

    p = subparsers.add_parser("evaluate", help="score a model's prompt following with a fixed protocol",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default=None, help="checkpoint or run folder (default: the shipped model)")
    p.add_argument("--n", type=_positive_int, default=256, help="prompts per split")
    p.add_argument("--seed", type=int, default=0, help="prompt and sampling seed")
    p.add_argument("--split", nargs="+", default=["heldout", "train"], choices=["heldout", "train", "canonical"],
                   help="prompt wordings: held-out (never in training captions), train, canonical")
    p.add_argument("--steps", type=_positive_int, default=20, help="sampler steps")
    p.add_argument("--sampler", default="dpmpp-2m", choices=sorted(SAMPLERS), help="sampler")
    p.add_argument("--guidance", type=float, default=4.0, help="classifier-free guidance scale")
    p.add_argument("--threads", type=_positive_int, default=None, help="CPU threads for torch")
    p.add_argument("--out", default="eval", help="folder for report.json, summary.md and samples-<split>.png")
    p.add_argument("--features", default=None, metavar="WORLD|DIR|none",
                   help="feature network that also judges prompt following and gives FVD-<world> (default: the "
                        "shipped ones; 'none' to skip both)")
    p.add_argument("--fvd-n", type=int, default=None,
                   help="clips per set for FVD-<world> of generated vs real clips (default: --n; 0 skips)")
    p.add_argument("--i3d", default=None, metavar="PATH",
                   help="also compute standard FVD with a local I3D TorchScript file: the i3d_torchscript.pt of "
                        "the StyleGAN-V / DIGAN FVD code (its detector_url in github.com/universome/stylegan-v "
                        "src/metrics/frechet_video_distance.py); nothing is downloaded")
    p.add_argument("--videos", default=None, metavar="DIR",
                   help="instead: score every video in DIR on temporal consistency (warping error, flicker, "
                        "dynamic degree) and write videos.json")
    p.set_defaults(func=_run_evaluate)



# ------------------------------------------------------------------------------------------------ export

def _run_export(args: argparse.Namespace) -> int:
    import torch

    from stillmotion.train import checkpoint
    from stillmotion.train.model_card import write_model_card

    for path in (args.report, args.notes):
        if path and not os.path.isfile(path):
            raise FileNotFoundError(f"no such file: '{path}'")
    dest = checkpoint.export(args.run, args.dest, dtype=None if args.float32 else torch.float16)
    card = write_model_card(dest, args.report, args.notes)
    size = (dest / "model.safetensors").stat().st_size / 1e6
    print(f"wrote {dest} (model.safetensors {size:.1f} MB, config.json, {card.name})")
    return 0


def _add_export(subparsers) -> None:
    p = subparsers.add_parser("export", help="write an inference-only copy of a checkpoint (float16 by default)")
    p.add_argument("run", help="checkpoint or run folder")
    p.add_argument("dest", help="folder to write model.safetensors and config.json into")
    p.add_argument("--float32", action="store_true", help="keep float32 weights (twice the size)")
    p.add_argument("--report", default=None, help="report.json from `stillmotion evaluate`, for the model card")
    p.add_argument("--notes", default=None, help="a markdown file of limitations and notes for the model card")
    p.set_defaults(func=_run_export)


# ------------------------------------------------------------------------------------------------ main

COMMANDS = [_add_generate, _add_train, _add_evaluate, _add_info, _add_export, _add_data, _add_features,
            _add_experiment, _add_curate, _add_preprocess]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stillmotion", description="Video diffusion you can read, train and run on a laptop.")
    parser.add_argument("--version", action="version", version=f"stillmotion {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `stillmotion` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("stillmotion: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - a CLI user gets one line, not a traceback
        if os.environ.get("STILLMOTION_DEBUG"):
            raise
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"stillmotion: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
