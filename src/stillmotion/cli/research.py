"""Commands for research: the feature networks behind FVD-<world>, and the approaches experiment."""

from __future__ import annotations

import argparse

from stillmotion.cli import animate, edit, extend, interpolate
from stillmotion.cli.common import HelpFormatter, positive_int, random_seed

APPLICATIONS = (animate, extend, interpolate, edit)

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
        from stillmotion.atomic import write_json

        write_json(args.out, report)
        print(f"wrote {args.out}")
    return 0


def _add_features(subparsers) -> None:
    from stillmotion.eval.features_train import FEATURE_PRESETS

    features = subparsers.add_parser("features", help="train or measure the feature networks behind FVD-<world>")
    sub = features.add_subparsers(dest="features_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("train", help="train a world's feature network (attribute classifier) and save it",
                       formatter_class=HelpFormatter)
    p.add_argument("--world", required=True, choices=sorted(FEATURE_PRESETS), help="synthetic world")
    p.add_argument("--out", required=True, help="folder for model.safetensors and config.json")
    p.add_argument("--steps", type=positive_int, default=None, help="optimizer steps (default: the preset's)")
    p.add_argument("--batch-size", type=positive_int, default=None, help="clips per step (default: preset's)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: preset's)")
    p.add_argument("--seed", type=random_seed, default=0, help="seed of init, clips and noise")
    p.add_argument("--eval-clips", type=int, default=None, help="held-out clips measured at the end")
    p.add_argument("--init-from", default=None, metavar="DIR",
                   help="continue training this feature network (a later stage; use another --seed for fresh clips)")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch")
    p.set_defaults(func=_run_features_train)
    p = sub.add_parser("eval", help="held-out accuracy per head, and the FVD floor and controls",
                       formatter_class=HelpFormatter)
    p.add_argument("--world", default="shapes", choices=sorted(FEATURE_PRESETS), help="the shipped net of a world")
    p.add_argument("--net", default=None, help="a feature-network folder instead of the shipped one")
    p.add_argument("--n", type=positive_int, default=1024, help="held-out clips for the accuracies")
    p.add_argument("--controls-n", type=int, default=1024, help="clips per set for floor and controls (0: skip)")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch")
    p.add_argument("--out", default=None, help="write the numbers to this .json file")
    p.set_defaults(func=_run_features_eval)


# ------------------------------------------------------------------------------------------------ experiment

def _run_approaches(args: argparse.Namespace) -> int:
    import shlex

    import torch

    from stillmotion.experiments.approaches import run_approaches

    if args.threads:
        torch.set_num_threads(args.threads)
    pools = [None if p == "all" else int(p) for p in args.pools]
    report = run_approaches(args.out, minutes=None if args.steps else args.minutes, steps=args.steps, n=args.n,
                            n_curve=args.n_curve, points=args.points, clip_pools=pools, arms=args.arms,
                            seed=args.seed, sample_steps=args.sample_steps, preset=args.preset, merge=args.merge,
                            command=shlex.join(["stillmotion", *args.argv]))
    for name, r in report["arms"].items():
        print(f"{name:20s} colour {r['colour_accuracy']:.3f}  direction {r['direction_accuracy']:.3f}  "
              f"both {r['colour_and_direction_accuracy']:.3f}")
    print(f"wrote {args.out}/README.md, report.json, time.png, grid.gif")
    return 0


ARMS = ["spacetime", "flow-consistency", "motion-hint", "motion-planner", "joint-image-video", "keyframes", "inflated",
        "scratch"]


def _add_experiment(subparsers) -> None:
    experiment = subparsers.add_parser("experiment", help="train and compare approaches on one budget")
    sub = experiment.add_subparsers(dest="experiment_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("approaches", formatter_class=HelpFormatter,
                       help="space-time U-Net, flow consistency, motion hints, joint image-video, keyframes + "
                            "interpolation, image-model inflation vs scratch: same budget, same judge")
    p.add_argument("--minutes", type=float, default=10.0, help="training budget per arm (wall clock)")
    p.add_argument("--steps", type=positive_int, default=None, help="budget per arm in optimizer steps instead")
    p.add_argument("--out", default="docs/approaches", help="folder for README.md, report.json, plots, runs/")
    p.add_argument("--n", type=positive_int, default=64, help="prompts (and FVD clips) per arm at the end")
    p.add_argument("--n-curve", type=positive_int, default=32, help="prompts per point of the training curve")
    p.add_argument("--points", type=positive_int, default=3, help="points of the training curve per arm")
    p.add_argument("--pools", nargs="+", default=["256", "all"],
                   help="distinct training clips of the inflation study ('all': a fresh clip every example)")
    p.add_argument("--arms", nargs="+", default=None, choices=ARMS, help="run only these arms (default: all)")
    p.add_argument("--seed", type=random_seed, default=0)
    p.add_argument("--sample-steps", type=positive_int, default=20, help="sampler steps when judging")
    p.add_argument("--preset", default="shapes-s", help="training preset every arm starts from")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch")
    p.add_argument("--merge", action="store_true",
                   help="keep the other arms of an earlier report in --out (same protocol): add or redo arms")
    p.set_defaults(func=_run_approaches)
    for app in APPLICATIONS:  # each application's measurement lives beside its command
        app.add_experiment(sub)


def add(subparsers) -> None:
    """Declare this module's commands."""
    _add_features(subparsers)
    _add_experiment(subparsers)
