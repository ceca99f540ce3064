"""Look at a world before training on it: an animated GIF grid and a captioned contact sheet."""

from __future__ import annotations

import os
from pathlib import Path

from stillmotion.data.video_io import save_contact_sheet, video_grid, write_video
from stillmotion.data.worlds import get_world


def preview(world: str = "shapes", n: int = 16, out: str | os.PathLike = "preview.gif", seed: int = 0,
            frames: int = 16, size: int = 32, scale: int = 4, fps: float = 8, *, sheet_scale: int = 2,
            **world_kwargs) -> tuple[Path, Path]:
    """Write `n` clips of a world as one animated grid (`out`) and a contact sheet (same stem, .png).

    Clip i uses seed `seed + i`, so a preview shows exactly what `world.sample(seed + i)` trains on.

    Args:
        world: a name in `stillmotion.data.worlds.WORLDS`.
        n: number of clips.
        out: the animation (.gif, .mp4 or .webm); the contact sheet goes next to it as .png.
        seed: seed of the first clip.
        frames, size: clip length and canvas size.
        scale: nearest-neighbour upscale of the animation; sheet_scale: of the contact sheet.
        fps: animation frame rate.
        **world_kwargs: passed to the world (e.g. p_two=0.5, background="mixed", caption_split="heldout").

    Returns:
        (animation path, contact sheet path).
    """
    if n < 1:
        raise ValueError(f"preview needs n >= 1 clips; got {n}")
    source = get_world(world, frames=frames, size=size, **world_kwargs)
    clips = [source.sample(seed + i) for i in range(n)]
    out = Path(out)
    anim = write_video(out, video_grid([c.video for c in clips], pad=2), fps=fps, scale=scale)
    sheet = save_contact_sheet(out.with_suffix(".png"), [c.video for c in clips],
                               captions=[f"#{seed + i}: {c.caption}" for i, c in enumerate(clips)],
                               scale=sheet_scale)
    return anim, sheet
