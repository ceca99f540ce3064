"""Checkpoints: `model.safetensors` + `config.json` (+ `training_state.pt` for resume) in one folder.

A run folder holds the latest checkpoint in `checkpoint/`. Saving writes a complete new folder beside it and
swaps it in with renames, so a crash at any moment leaves the last good checkpoint loadable (at worst under the
name `checkpoint.old/`, which `resolve` also finds). Loading needs only the path.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from stillmotion import __version__

FORMAT = "stillmotion-checkpoint/1"


def _found(path: Path) -> Path | None:
    """The first of path, path/checkpoint, path/checkpoint.old holding `model.safetensors` + `config.json`."""
    for candidate in (path, path / "checkpoint", path / "checkpoint.old"):
        if (candidate / "model.safetensors").is_file() and (candidate / "config.json").is_file():
            return candidate
    return None


def exists(run_dir: str | Path) -> bool:
    """Whether a run folder holds a checkpoint to resume from (also one left as checkpoint.old by an interrupted
    save)."""
    return _found(Path(run_dir)) is not None


def resolve(path: str | Path) -> Path:
    """The folder holding `model.safetensors` + `config.json` for a checkpoint or run folder."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at '{path}': the path does not exist. Give a run folder "
                                f"(runs/NAME) or a checkpoint folder containing model.safetensors and config.json")
    found = _found(path)
    if found is not None:
        return found
    raise FileNotFoundError(f"no checkpoint in '{path}': expected model.safetensors and config.json there or in "
                            f"its checkpoint/ folder. Train one with `stillmotion train`, or omit --model to use "
                            f"the shipped model")


def save(run_dir: str | Path, *, weights: nn.Module | dict, config: dict,
         training_state: dict | None = None) -> Path:
    """Write a checkpoint atomically into `run_dir/checkpoint/` and return that folder.

    Args:
        weights: the inference weights (the EMA model), a module or a state dict.
        config: everything needed to rebuild and reproduce (model, diffusion, text encoder, training config, record).
        training_state: optimizer, raw weights, EMA, step, ... for `--resume` (omitted for release checkpoints).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    final, tmp, old = run_dir / "checkpoint", run_dir / "checkpoint.tmp", run_dir / "checkpoint.old"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    state = weights.state_dict() if isinstance(weights, nn.Module) else weights
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(tmp / "model.safetensors"),
              metadata={"format": FORMAT})
    (tmp / "config.json").write_text(json.dumps({"format": FORMAT, "version": __version__, **config}, indent=2))
    if training_state is not None:
        torch.save(training_state, tmp / "training_state.pt")
    if final.exists():
        if old.exists():
            shutil.rmtree(old)
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)
    return final


def load_config(path: str | Path) -> dict:
    folder = resolve(path)
    try:
        config = json.loads((folder / "config.json").read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"'{folder / 'config.json'}' is not valid JSON ({e}); the checkpoint is damaged") from e
    if not str(config.get("format", "")).startswith("stillmotion-checkpoint"):
        raise ValueError(f"'{folder}' is not a stillmotion checkpoint (config.json has no stillmotion format tag)")
    return config


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    return load_file(str(resolve(path) / "model.safetensors"))


def load_training_state(path: str | Path) -> dict:
    f = resolve(path) / "training_state.pt"
    if not f.is_file():
        raise FileNotFoundError(f"'{f}' is missing: this checkpoint was saved for inference only and cannot be "
                                f"resumed; start a new run (optionally from these weights)")
    return torch.load(f, map_location="cpu", weights_only=True)


def export(src: str | Path, dest: str | Path, *, dtype: torch.dtype | None = torch.float16,
           sampling: dict | None = None) -> Path:
    """Write an inference-only copy of a checkpoint (no optimizer state), optionally in half precision.

    This is how the shipped model is made: its weights are stored in float16 (half the size in git) and
    loaded back into float32, and it is evaluated as stored. `sampling` updates the config's "sampling" entry,
    the defaults the pipeline samples with (e.g. {"strategy": "first-frame"}).
    """
    folder = resolve(src)
    config = load_config(folder)
    weights = load_weights(folder)
    if dtype is not None:
        weights = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in weights.items()}
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / "model.safetensors.tmp"
    save_file({k: v.contiguous() for k, v in weights.items()}, str(tmp), metadata={"format": FORMAT})
    tmp.replace(dest / "model.safetensors")
    config = {k: v for k, v in config.items() if k not in ("format", "version")}
    config["sampling"] = {**config.get("sampling", {}), **(sampling or {})}
    config["record"] = {**config.get("record", {}), "exported_from": str(folder),
                        "stored_dtype": str(dtype or "as trained").replace("torch.", "")}
    tmp = dest / "config.json.tmp"
    tmp.write_text(json.dumps({"format": FORMAT, "version": __version__, **config}, indent=2))
    tmp.replace(dest / "config.json")
    return dest
