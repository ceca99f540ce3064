"""`stillmotion train`: one command from a laptop to torchrun."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from stillmotion.cli.common import nonnegative_int, positive_int


def _run_train(args: argparse.Namespace) -> int:
    from stillmotion.train.config import TrainConfig, make_config, upgrade_saved
    from stillmotion.train.loop import train

    overrides = {}
    for item in args.set or []:
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE, got '{item}'")
        key, value = item.split("=", 1)
        overrides[key.strip().replace("-", "_")] = value
    for key in ("world", "data", "out", "steps", "minutes", "batch_size", "lr", "seed", "model", "frames",
                "size", "threads", "workers", "ckpt_minutes"):
        value = getattr(args, key)
        if value is not None:
            overrides[key] = value
    if args.bf16:
        overrides["bf16"] = True
    if args.resume:
        from stillmotion import checkpoint

        out = overrides.get("out") or TrainConfig.out
        staged = Path(out) / "train_config.json"  # a staged run stopped before its video stage saved anything
        if not checkpoint.exists(out) and checkpoint.exists(Path(out) / "image") and staged.exists():
            saved = json.loads(staged.read_text())
        else:
            saved = checkpoint.load_config(out)["train"]
        saved = upgrade_saved(saved)  # a run saved by an earlier version continues too
        free = ("steps", "minutes", "threads", "workers", "ckpt_minutes")  # budget and machine, not what is learned
        changed = {k: v for k, v in overrides.items() if k not in (*free, "out") and saved.get(k) != v}
        if changed or args.preset:
            raise ValueError(f"--resume continues the saved run '{out}' with its own config; only --steps, "
                             f"--minutes, --threads, --workers and --ckpt-minutes may change "
                             f"(got {sorted(changed) or ['--preset']})")
        saved.update({k: v for k, v in overrides.items() if k in free})
        saved["out"] = str(out)  # a run folder copied or moved elsewhere continues where it is now
        cfg = make_config(None, saved)
    else:
        cfg = make_config(args.preset or "shapes-s", overrides)
    # the command line, for the checkpoint's record (model cards); under torchrun too it reads `stillmotion train`
    train(cfg, resume=args.resume, overwrite=args.overwrite, command=shlex.join(["stillmotion", *args.argv]))
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
    p.add_argument("--steps", type=nonnegative_int,
                   help="stop after N optimizer steps (0 with --set planner_fit_clips=N: only refit the planner)")
    p.add_argument("--minutes", type=float, help="stop after M minutes of training")
    p.add_argument("--batch-size", type=positive_int, help="global batch size")
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--seed", type=int, help="seed (data, noise and init are functions of it)")
    p.add_argument("--model", help="U-Net preset (tiny, cpu, cpu-m, gpu-b, gpu-l); change its fields with "
                                   "--set model.FIELD=VALUE")
    p.add_argument("--frames", type=int, help="frames per training clip")
    p.add_argument("--size", type=int, help="frame size in pixels")
    p.add_argument("--threads", type=positive_int, help="CPU threads for torch")
    p.add_argument("--workers", type=int, help="processes decoding clips ahead of each step (real videos: 2-8)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast (opt-in)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in an --out that holds a run: the old run is renamed to <out>.old-<time>, "
                        "never deleted (without it such a folder is refused)")
    p.add_argument("--ckpt-minutes", type=float, help="minutes between checkpoints (default 3)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override any TrainConfig field; model.FIELD and sampling.FIELD change one field of the "
                        "U-Net or sampling config (e.g. --set model.motion_cond=true --set sampling.steps=10)")
    p.set_defaults(func=_run_train)


def add(subparsers) -> None:
    """Declare this module's commands."""
    _add_train(subparsers)
