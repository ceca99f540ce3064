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
from stillmotion.eval.rotation import tracked_turn

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


def foreground(video: np.ndarray, threshold: int) -> tuple[np.ndarray, ...]:
    """The bright pixels of a clip on a dark background: mask (F, H, W), area (F,), centroid x and y (F,) in pixels
    (0 in frames without any)."""
    h, w = video.shape[1:3]
    fg = video.max(axis=-1) > threshold                                     # (F, H, W)
    area = fg.sum(axis=(1, 2)).astype(np.float64)                           # (F,)
    ys, xs = np.mgrid[0:h, 0:w]
    safe = np.maximum(area, 1)
    return fg, area, (fg * xs).sum(axis=(1, 2)) / safe, (fg * ys).sum(axis=(1, 2)) / safe


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
    fg, area, cx, cy = foreground(video, threshold)
    visible = area > 0
    if not visible.any():
        return ClipReading(None, None, (0.0, 0.0), math.inf, math.inf, math.inf, 0.0)
    palette = np.array(list(COLOURS.values()), dtype=np.float64)           # (K, 3)
    median = np.median(rgb[fg], axis=0)                                    # (3,)
    colour = list(COLOURS)[int(np.argmin(((palette - median) ** 2).sum(-1)))]
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


OTHER_MOTIONS = ("static", "bouncing", "growing", "shrinking", "rotating")  # the world's motions besides gliding


@dataclass
class MotionReading:
    motion: str | None      # a compass direction (a glide) or one of OTHER_MOTIONS; None if the object vanished
    area_ratio: float       # mean foreground area of the last third of the clip over that of the first third
    reversal: float         # pixels the centroid came back along x or y (0 for a glide, > 0 after a bounce)
    turn: float             # 1 - the lowest IoU of a frame's mask, moved onto frame 0's centroid, with frame 0's
    displacement: tuple     # (dx, dy) in pixels, last third minus first third
    turn_deg: float = math.nan          # the tracked turn (eval/rotation.py), where the mask changed by > `turn`
    turn_consistency: float = math.nan  # 1: one steady sense of turning; about 0: a wobbling outline

    def to_dict(self) -> dict:
        return asdict(self)


def _reversal(p: np.ndarray) -> float:
    """How far a 1-D path came back: its range minus its net travel (0 for a path that never turns)."""
    return float(np.ptp(p) - abs(p[-1] - p[0]))


def _turn(fg: np.ndarray, cx: np.ndarray, cy: np.ndarray) -> float:
    """1 - min over frames of the IoU of the frame's mask, shifted by whole pixels onto frame 0's centroid, with
    frame 0's mask: 0 for a shape that only moves, about 0.3 for a square turned by 45 degrees."""
    worst = 1.0
    for f in range(1, len(fg)):
        shifted = np.roll(fg[f], (int(round(cy[0] - cy[f])), int(round(cx[0] - cx[f]))), axis=(0, 1))
        union = (shifted | fg[0]).sum()
        worst = min(worst, float((shifted & fg[0]).sum() / union) if union else 1.0)
    return 1.0 - worst


def read_motion(video: np.ndarray, *, threshold: int = 90, static_px: float | None = None, growth: float = 1.4,
                reversal_px: float | None = None, turn: float = 0.2, steady_deg: float = 30.0,
                steady: float = 0.5) -> MotionReading:
    """Which of the shapes world's motions a single-object clip on a dark background shows.

    In this order: growing / shrinking when the foreground area changes by more than `growth` (area ratio of the
    last third to the first); bouncing when the centroid comes back more than `reversal_px` along x or y
    (default 6% of the width); a compass direction when it travels `static_px` or more (as `read_clip`);
    rotating when the mask, held still, changes by more than `turn` (1 - IoU) AND the object turns steadily: at
    least `steady_deg` degrees, tracked frame to frame, with consistency >= `steady` (eval/rotation.py; a wobbling
    outline changes the mask without turning); else static. Thresholds are set between the world's motion amounts
    (data/shapes.py: growth 1.6-2.4x in size, i.e. 2.6-5.8x in area; turns of 60-150 degrees, always one way;
    bounces reflect a path of 0.9-1.8 canvas widths); tests/test_probe.py measures the reading on the world's own
    clips.

    Args:
        video: (F, H, W, 3) uint8.
    """
    f, h, w, _ = video.shape
    static_px = 0.06 * w if static_px is None else static_px
    reversal_px = 0.06 * w if reversal_px is None else reversal_px
    fg, area, cx, cy = foreground(video, threshold)
    if f < 2 or not (area > 0).all():
        return MotionReading(None, math.nan, math.nan, math.nan, (0.0, 0.0))
    third = max(1, f // 3)
    ratio = float(area[-third:].mean() / area[:third].mean())
    dx, dy = float(cx[-third:].mean() - cx[:third].mean()), float(cy[-third:].mean() - cy[:third].mean())
    back, turned = max(_reversal(cx), _reversal(cy)), _turn(fg, cx, cy)
    if ratio > growth or ratio < 1 / growth:
        motion = "growing" if ratio > 1 else "shrinking"
    elif back > reversal_px:
        motion = "bouncing"
    elif math.hypot(dx, dy) >= static_px:
        motion = compass(dx, dy)
    elif turned > turn:
        degrees, consistency = tracked_turn(video)
        rotating = abs(degrees) >= steady_deg and consistency >= steady
        return MotionReading("rotating" if rotating else "static", ratio, back, turned, (dx, dy), degrees, consistency)
    else:
        motion = "static"
    return MotionReading(motion, ratio, back, turned, (dx, dy))
