"""Fixtures shared by the application tests: tiny, untrained checkpoints built from components (no training)."""

from __future__ import annotations

import pytest
import torch

from stillmotion import checkpoint
from stillmotion.models.registry import build_unet

TASKS = {"t2v": 0.25, "i2v": 0.25, "predict": 0.25, "interpolate": 0.25}


def tiny_checkpoint(folder, *, frames: int = 8, size: int = 16, tasks: dict | None = None,
                    strategy: str = "joint", seed: int = 0, model: dict | None = None,
                    diffusion: dict | None = None, perturb: float = 0.0):
    """A 2-level tiny U-Net, random weights, saved as a checkpoint whose config says it was trained for `tasks`.

    model: UNetConfig fields over the "tiny" preset (e.g. {"motion_cond": True}); diffusion: entries of the config's
    "diffusion" section (e.g. {"noise_warp": 0.5}). perturb: the std of Gaussian noise added to every parameter.
    The U-Net starts with its output and every residual branch at zero (models/unet.py `initialize_weights`), so
    untouched it outputs 0 and reads no prompt, hint or known frame; perturbed, every input reaches its output.
    """
    torch.manual_seed(seed)
    net = build_unet("tiny", **(model or {}))
    if perturb:
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn(p.shape) * perturb)
    config = {"model": {"arch": "spacetime-unet", **net.config.to_dict()},
              "diffusion": {"parameterization": "v", "sigma_data": 0.5, "data_mean": 0.0, "noise_warp": 0.0,
                            **(diffusion or {})},
              "text_encoder": {"name": "minilm", "dim": 384},
              "data": {"world": "shapes", "data": None, "frames": frames, "size": size},
              "sampling": {"strategy": strategy}, "train": {"tasks": dict(TASKS if tasks is None else tasks)},
              "record": {}}
    return checkpoint.save(folder, weights=net, config=config)


@pytest.fixture(scope="session")
def tiny_multitask(tmp_path_factory) -> str:
    """An 8-frame 16x16 checkpoint 'trained' (its config says) for all four frame tasks."""
    return str(tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "multitask"))
