"""A pixel probe for single-object shapes clips: which colour is drawn, where it moves, does it stay itself.

This needs no learned feature network, so it can judge prompt following from the first trained model on:
on a black background the object's pixels are simply the bright ones. Each clip gets:
  colour     the palette colour nearest to the median foreground pixel;
  direction  the centroid's displacement from the first third of the clip to the last third, binned into
             8 compass directions (image y points down, so "up" is -y), or "static" when it is small;
  stability  frame-to-frame consistency: spread of the object's area and colour, and the largest jump of the
             centroid between neighbouring frames relative to its typical step (teleporting shows up here).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from stillmotion.data.shapes import COLOURS

DIRECTIONS = ["right", "down-right", "down", "down-left", "left", "up-left", "up", "up-right"]


@dataclass
class ClipReading:
    colour: str | None          # nearest palette colour of the foreground, None if nothing is drawn
    direction: str | None       # one of DIRECTIONS or "static"; None if the object vanished in some frame
    displacement: tuple         # (dx, dy) in pixels, last third minus first third
    area_cv: float              # std / mean of the foreground area over frames
    colour_drift: float         # largest per-frame distance of the mean foreground colour from the clip median (0-255)
    max_jump: float             # largest frame-to-frame centroid step, in pixels
    visible_frames: float       # fraction of frames with a visible object

    def to_dict(self) -> dict:
        return asdict(self)


def compass(dx: float, dy: float) -> str:
    """The nearest of the 8 DIRECTIONS to a displacement (x right, y down)."""
    return DIRECTIONS[int(round(math.atan2(dy, dx) / (math.pi / 4))) % 8]


def read_clip(video: np.ndarray, *, threshold: int = 90, static_px: float | None = None) -> ClipReading:
    """Read a single-object clip on a dark background.

    Args:
        video: (F, H, W, 3) uint8.
        threshold: a pixel is foreground when its brightest channel exceeds this.
        static_px: displacement below which the clip counts as static (default 6% of the width).
    """
    f, h, w, _ = video.shape
    static_px = 0.06 * w if static_px is None else static_px
    rgb = video.astype(np.float64)
    fg = rgb.max(axis=-1) > threshold                                      # (F, H, W)
    area = fg.sum(axis=(1, 2)).astype(np.float64)                           # (F,)
    visible = area > 0
    if not visible.any():
        return ClipReading(None, None, (0.0, 0.0), math.inf, math.inf, math.inf, 0.0)
    palette = np.array(list(COLOURS.values()), dtype=np.float64)           # (K, 3)
    median = np.median(rgb[fg], axis=0)                                    # (3,)
    colour = list(COLOURS)[int(np.argmin(((palette - median) ** 2).sum(-1)))]
    ys, xs = np.mgrid[0:h, 0:w]
    safe = np.maximum(area, 1)
    cx = (fg * xs).sum(axis=(1, 2)) / safe                                 # (F,)
    cy = (fg * ys).sum(axis=(1, 2)) / safe
    frame_colour = np.stack([(rgb[i][fg[i]].mean(0) if visible[i] else median) for i in range(f)])
    drift = float(np.sqrt(((frame_colour - median) ** 2).sum(-1)).max())
    area_cv = float(area[visible].std() / area[visible].mean())
    if not visible.all():
        return ClipReading(colour, None, (0.0, 0.0), area_cv, drift, math.inf, float(visible.mean()))
    third = max(1, f // 3)
    dx = float(cx[-third:].mean() - cx[:third].mean())
    dy = float(cy[-third:].mean() - cy[:third].mean())
    steps = np.hypot(np.diff(cx), np.diff(cy)) if f > 1 else np.zeros(1)
    if math.hypot(dx, dy) < static_px:
        direction = "static"
    else:
        direction = compass(dx, dy)
    return ClipReading(colour, direction, (dx, dy), area_cv, drift, float(steps.max()), 1.0)
