"""Checkpoints: `model.safetensors` + `config.json` (+ `training_state.pt` for resume) in one folder.

A run folder holds the latest checkpoint in `checkpoint/`. Saving writes a complete new folder beside it and
swaps it in with renames, so a crash at any moment leaves the last good checkpoint loadable (at worst under the
name `checkpoint.old/`, which `resolve` also finds). Loading needs only the path.

The format is read and written here, one layer above models/ and diffusion/ (checking a config.json asks the
U-Net's config and the parameterizations) and below everything that saves or loads a model: data, pipelines,
train, eval, the CLI.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors import torch as safetensors_torch
from safetensors.torch import load_file
from torch import nn

from stillmotion.atomic import write_atomic
from stillmotion.diffusion.denoiser import PARAMETERIZATIONS
from stillmotion.fieldtypes import mapping_problem
from stillmotion.models.unet import UNetConfig
from stillmotion.version import __version__

FORMAT = "stillmotion-checkpoint/1"


def save_file(tensors: dict, filename: str, metadata: dict | None = None) -> None:
    """safetensors' `save_file`, leaving the file readable as the umask allows (0644 under the usual 022).

    safetensors 0.8 creates its files with mode 0600 whatever the umask, so an exported model could not be read
    by the other users of a shared folder or by a web server.
    """
    safetensors_torch.save_file(tensors, filename, metadata=metadata)
    umask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(umask)
    os.chmod(filename, 0o666 & ~umask)


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
    state = weights.state_dict() if isinstance(weights, nn.Module) else weights
    try:
        tmp.mkdir()
        save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(tmp / "model.safetensors"),
                  metadata={"format": FORMAT})
        (tmp / "config.json").write_text(json.dumps({"format": FORMAT, "version": __version__, **config}, indent=2))
        if training_state is not None:
            torch.save(training_state, tmp / "training_state.pt")
    except Exception as e:  # a full or failing disk: safetensors, torch.save and json each say it differently
        shutil.rmtree(tmp, ignore_errors=True)  # never leave a partial copy filling the disk
        kept, then = (f"the last good checkpoint in '{final}' is kept", "continue with --resume") if exists(run_dir) \
            else ("no checkpoint was saved yet", "run again")
        copies = 5 if training_state else 1  # the EMA weights; + raw weights, two Adam moments, EMA in the state
        need = sum(v.numel() * v.element_size() for v in state.values()) * copies / 2**20
        raise OSError(f"could not write a checkpoint into '{run_dir}' ({' '.join(str(e).split())[:200]}); {kept}. "
                      f"Free disk space (a checkpoint needs about {need:.0f} MB) and {then}") from e
    if final.exists():
        if old.exists():
            shutil.rmtree(old)
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)
    return final


def load_config(path: str | Path, *, required: tuple[str, ...] = ()) -> dict:
    """The checkpoint's config.json, its sections checked by type: an error names the file and the field.

    Args:
        required: sections that must be there (REQUIRED: all that building and sampling the model read).
    """
    folder = resolve(path)
    file = folder / "config.json"
    try:
        config = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"'{file}' is not valid JSON ({e}); the checkpoint is damaged: copy or export it "
                         "again") from e
    if not isinstance(config, dict) or not str(config.get("format", "")).startswith("stillmotion-checkpoint"):
        raise ValueError(f"'{folder}' is not a stillmotion checkpoint (config.json has no stillmotion format tag)")
    problem = config_problem(config, required)
    if problem:
        raise ValueError(f"'{file}': {problem}; correct that field, or copy or export the checkpoint again")
    return config


# the sections sampling reads besides "model" (a UNetConfig): field -> (type, required)
SECTIONS = {
    "diffusion": {"parameterization": (str, True), "sigma_data": (float, True), "data_mean": (float, False),
                  "noise_warp": (float, False)},
    "text_encoder": {"name": (str, True), "dim": (int, False)},
    "data": {"world": (str | None, False), "data": (str | None, False), "frames": (int, True), "size": (int, True)},
    "sampling": {"sampler": (str, False), "steps": (int, False), "guidance": (float, False),  # SamplingConfig
                 "schedule": (str, False), "strategy": (str, False), "noise_warp": (float, False)},
}
REQUIRED = ("model", "diffusion", "text_encoder", "data")


def config_problem(config: dict, required: tuple[str, ...] = ()) -> str | None:
    """The first thing wrong with a checkpoint config's sections, in one line (None if nothing); sections that
    are absent are checked only when `required`."""
    for name in (*REQUIRED, "sampling", "train", "record"):
        if name not in config and name in required:
            return f"the '{name}' section is missing"
        if name in config and not isinstance(config[name], dict):
            return f"'{name}' must be an object ({{...}}), got {type(config[name]).__name__}"
    for name, fields in SECTIONS.items():
        problem = mapping_problem(config[name], fields, name) if name in config else None
        if problem:
            return problem
    return _values_problem(config)


def _values_problem(config: dict) -> str | None:
    """Values of the right type that still cannot be: a model config its U-Net refuses, a negative sigma_data."""
    model, diffusion, data = (config.get(name, {}) for name in ("model", "diffusion", "data"))
    if model.get("arch", "spacetime-unet") != "spacetime-unet":
        return f"model.arch: expected 'spacetime-unet', got {model['arch']!r}"
    try:
        model_config(config)
    except (ValueError, TypeError) as e:
        return "model." + str(e).removeprefix("UNetConfig: ")
    if diffusion.get("parameterization", "v") not in PARAMETERIZATIONS:
        return (f"diffusion.parameterization: expected one of {list(PARAMETERIZATIONS)}, got "
                f"{diffusion['parameterization']!r}")
    if not diffusion.get("sigma_data", 1) > 0 or not 0 <= diffusion.get("noise_warp", 0) <= 1:
        return f"diffusion: sigma_data must be > 0 and noise_warp in [0, 1] (got {diffusion})"
    if data.get("frames", 1) < 1 or data.get("size", 8) < 8 or data.get("size", 8) % 8:
        return f"data: frames must be >= 1 and size a multiple of 8 (got {data})"
    return None


def model_config(config: dict) -> UNetConfig | None:
    """The U-Net config of a checkpoint's config (its `model` section without `arch`); None without one."""
    model = config.get("model")
    return UNetConfig.from_dict({k: v for k, v in model.items() if k != "arch"}) if model else None


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The checkpoint's weights; a file that does not load (truncated, not safetensors) is named in the error."""
    file = resolve(path) / "model.safetensors"
    try:
        return load_file(str(file))
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error type (and OSError)
        reason = " ".join(str(e).split()) or type(e).__name__
        raise ValueError(f"'{file}' does not load ({reason}): the checkpoint is damaged (a truncated or "
                         "interrupted copy?); copy or export it again, or retrain") from e


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
    write_atomic(dest / "config.json", json.dumps({"format": FORMAT, "version": __version__, **config}, indent=2))
    return dest
