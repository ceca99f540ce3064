"""Fixtures shared by the application tests: tiny, untrained checkpoints built from components (no training)."""

from __future__ import annotations

import pytest
import torch

from stillmotion import checkpoint
from stillmotion.models.registry import build_unet

TASKS = {"t2v": 0.25, "i2v": 0.25, "predict": 0.25, "interpolate": 0.25}


def tiny_checkpoint(folder, *, frames: int = 8, size: int = 16, tasks: dict | None = None,
                    strategy: str = "joint", seed: int = 0):
    """A 2-level tiny U-Net, random weights, saved as a checkpoint whose config says it was trained for `tasks`."""
    torch.manual_seed(seed)
    net = build_unet("tiny")
    config = {"model": {"arch": "spacetime-unet", **net.config.to_dict()},
              "diffusion": {"parameterization": "v", "sigma_data": 0.5, "data_mean": 0.0, "noise_warp": 0.0},
              "text_encoder": {"name": "minilm", "dim": 384},
              "data": {"world": "shapes", "data": None, "frames": frames, "size": size},
              "sampling": {"strategy": strategy}, "train": {"tasks": dict(TASKS if tasks is None else tasks)},
              "record": {}}
    return checkpoint.save(folder, weights=net, config=config)


@pytest.fixture(scope="session")
def tiny_multitask(tmp_path_factory) -> str:
    """An 8-frame 16x16 checkpoint 'trained' (its config says) for all four frame tasks."""
    return str(tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "multitask"))
