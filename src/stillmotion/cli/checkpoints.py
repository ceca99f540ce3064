"""`stillmotion info` and `stillmotion export`: describe a checkpoint, write an inference-only copy."""

from __future__ import annotations

import argparse
import os

from stillmotion.cli.common import finite_float, output_folder

# ------------------------------------------------------------------------------------------------ info

def _run_info(args: argparse.Namespace) -> int:
    import json

    from stillmotion import checkpoint
    from stillmotion.pipelines.text_to_video import shipped_model_path

    if args.path and args.model and args.path != args.model:
        raise ValueError(f"two checkpoints given ('{args.path}' and --model '{args.model}'); give one")
    path = args.model or args.path or shipped_model_path()
    folder = checkpoint.resolve(path)
    config = checkpoint.load_config(folder, required=() if args.json else checkpoint.REQUIRED)
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
    p.add_argument("--model", default=None, metavar="PATH", help="the same as PATH, spelled as in the other commands")
    p.add_argument("--json", action="store_true", help="print the whole config.json")
    p.set_defaults(func=_run_info)


# ------------------------------------------------------------------------------------------------ export

def _run_export(args: argparse.Namespace) -> int:
    import torch

    from stillmotion import checkpoint
    from stillmotion.train.model_card import write_model_card

    for path in (args.report, args.notes):
        if path and not os.path.isfile(path):
            raise FileNotFoundError(f"no such file: '{path}'")
    sampling = {k: v for k, v in (("strategy", args.strategy), ("guidance", args.guidance)) if v is not None}
    with output_folder(args.dest):  # a failed export leaves no empty folder behind
        dest = checkpoint.export(args.run, args.dest, dtype=None if args.float32 else torch.float16,
                                 sampling=sampling)
        card = write_model_card(dest, args.report, args.notes)
    size = (dest / "model.safetensors").stat().st_size / 1e6
    print(f"wrote {dest} (model.safetensors {size:.1f} MB, config.json, {card.name})")
    return 0


def _add_export(subparsers) -> None:
    from stillmotion.pipelines.text_to_video import STRATEGIES

    p = subparsers.add_parser("export", help="write an inference-only copy of a checkpoint (float16 by default)")
    p.add_argument("run", help="checkpoint or run folder")
    p.add_argument("dest", help="folder to write model.safetensors and config.json into")
    p.add_argument("--float32", action="store_true", help="keep float32 weights (twice the size)")
    p.add_argument("--report", default=None, help="report.json from `stillmotion evaluate`, for the model card")
    p.add_argument("--notes", default=None, help="a markdown file of limitations and notes for the model card")
    p.add_argument("--strategy", default=None, choices=STRATEGIES,
                   help="the model's default sampling strategy (saved in config.json's sampling entry; "
                        "'keyframe' and 'first-frame' need a model trained with the i2v task)")
    p.add_argument("--guidance", type=finite_float, default=None,
                   help="the model's default classifier-free guidance scale (saved in config.json's sampling entry)")
    p.set_defaults(func=_run_export)


def add(subparsers) -> None:
    """Declare this module's commands."""
    _add_info(subparsers)
    _add_export(subparsers)
