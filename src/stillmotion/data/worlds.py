"""The registry of synthetic worlds, and batches of clips as training tensors.

A world is any object with `.sample(seed) -> Clip` (video (F, H, W, 3) uint8, caption, labels),
`.render(labels)`, `.size` and `.frames`; the same seed always gives the same clip.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from stillmotion.data.digits import DigitsWorld
from stillmotion.data.shapes import SceneLabels, ShapesWorld
from stillmotion.data.video_io import to_float

WORLDS = {"shapes": ShapesWorld, "digits": DigitsWorld}


def get_world(name: str, **kwargs):
    """Build a world by name, e.g. `get_world("shapes", size=32, frames=16, p_two=0.3)`.

    Raises:
        ValueError: unknown name (the message lists the valid ones) or bad keyword arguments.
    """
    if name not in WORLDS:
        raise ValueError(f"unknown world {name!r}; expected one of: {', '.join(WORLDS)}")
    try:
        return WORLDS[name](**kwargs)
    except TypeError as e:  # an unknown keyword: say which world and what it accepts
        raise ValueError(f"world {name!r}: {e}; see help(stillmotion.data.worlds.WORLDS[{name!r}])") from e


def sample_batch(world, seeds: Iterable[int]) -> tuple[torch.Tensor, list[str], list[SceneLabels]]:
    """Sample one clip per seed and stack them for training.

    Args:
        world: a world instance (see WORLDS).
        seeds: one integer per clip.

    Returns:
        videos (B, 3, F, H, W) float32 in [-1, 1], captions (B strings), labels (B SceneLabels).
    """
    clips = [world.sample(int(s)) for s in seeds]
    if not clips:
        raise ValueError("sample_batch needs at least one seed")
    videos = torch.stack([to_float(c.video) for c in clips])  # B x (C, F, H, W) -> (B, C, F, H, W)
    return videos, [c.caption for c in clips], [c.labels for c in clips]
