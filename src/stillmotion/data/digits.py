"""The "digits" world: real handwritten digits moving over a dark canvas, with exact labels.

The glyphs are scikit-learn's bundled 1,797 handwritten 8x8 digits (`sklearn.datasets.load_digits`, part of
the wheel, nothing downloads). A fixed split keeps some handwriting unseen: the first 80% of the images are
"train", the rest "heldout". Each glyph is drawn by bilinear sampling of its 8x8 grid at the moving
(sub-pixel) position, so a 0.5 px/frame drift is smooth, and its grey level is the alpha of its colour
(near-white by default). Motion, placement and captions are shared with the shapes world (shapes.py,
captions.py), so the same labels describe both.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from stillmotion.data.captions import DIRECTIONS, SPLITS, make_caption
from stillmotion.data.shapes import (
    BACKGROUND_CHOICES,
    BACKGROUNDS,
    BOUNCE_DIRECTION,
    COLOURS,
    MOTIONS,
    SPEEDS,
    TRAVEL,
    Clip,
    ObjectLabels,
    SceneLabels,
    _check,
    _min_gap,
    background_image,
    bounces,
    composite,
    place,
    trajectory,
)

DIGIT_MOTIONS = tuple(DIRECTIONS) + ("static", "bouncing")
IMAGE_SPLITS = ("train", "heldout", "all")
TRAIN_FRACTION = 0.8
SIZE_RANGE = (0.4, 0.5)  # glyph box width: 12.8-16 px on a 32 px canvas


@lru_cache(maxsize=1)
def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 glyphs as (N, 8, 8) float32 in [0, 1] and their digits (N,) int64."""
    from sklearn.datasets import load_digits  # imported here: scikit-learn is slow to import

    data = load_digits()
    return (data.images / 16.0).astype(np.float32), data.target.astype(np.int64)


def split_indices(split: str) -> np.ndarray:
    """Image indices of a fixed split: "train" (first 80%), "heldout" (the rest) or "all"."""
    _check("image split", split, IMAGE_SPLITS)
    n = len(digit_images()[1])
    cut = int(round(TRAIN_FRACTION * n))
    return {"train": np.arange(cut), "heldout": np.arange(cut, n), "all": np.arange(n)}[split]


def glyph_coverage(obj: ObjectLabels, glyph: np.ndarray, frames: int, height: int, width: int) -> np.ndarray:
    """Alpha (F, H, W) float32 of one 8x8 glyph following the object's trajectory (bilinear sampling)."""
    centre, scale, angle = trajectory(obj, frames)
    px = min(height, width)
    box = (obj.size * px * scale)[:, None, None]                               # (F, 1, 1) glyph width, px
    dx = (np.arange(width) + 0.5)[None, None, :] - (centre[:, 0] * width)[:, None, None]   # (F, 1, W)
    dy = (np.arange(height) + 0.5)[None, :, None] - (centre[:, 1] * height)[:, None, None]  # (F, H, 1)
    c, s = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    qx, qy = c * dx + s * dy, -s * dx + c * dy                                 # (F, H, W) in the glyph frame
    # Glyph cell centres sit at 0..7; shift by 1 into a zero-padded 10x10 grid so that outside reads 0.
    gx = np.clip((qx / box + 0.5) * 8 - 0.5 + 1, 0, 9)
    gy = np.clip((qy / box + 0.5) * 8 - 0.5 + 1, 0, 9)
    x0, y0 = np.floor(gx).astype(np.int64), np.floor(gy).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, 9), np.minimum(y0 + 1, 9)
    fx, fy = (gx - x0).astype(np.float32), (gy - y0).astype(np.float32)
    g = np.pad(glyph, 1)                                                       # (10, 10)
    top = g[y0, x0] * (1 - fx) + g[y0, x1] * fx
    bottom = g[y1, x0] * (1 - fx) + g[y1, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


class DigitsWorld:
    """Synthetic clips of one (or two) handwritten digits moving, with exact labels and varied captions.

    Args:
        size: canvas height and width in pixels.
        frames: frames per clip.
        p_two: probability of a second digit (needs max_objects >= 2).
        background: "black", "gray", "gradient", "noise" or "mixed".
        caption_split: "train" or "heldout" wordings.
        motions: allowed motions (default: 8 directions, static, bouncing; any of shapes.MOTIONS works).
        max_objects: 1 or 2.
        coloured: draw digits in a random non-white palette colour (named in the caption) instead of white.
        image_split: which handwriting: "train" (first 80% of the images), "heldout" or "all".
        digits: restrict the digit identities (default 0-9).
        speeds: restrict the speeds.
        size_range: glyph box width as fractions of the canvas.
        p_speed: probability that a caption mentions the speed.
    """

    name = "digits"

    def __init__(self, size: int = 32, frames: int = 16, p_two: float = 0.0, background: str = "black",
                 caption_split: str = "train", motions=None, *, max_objects: int = 2, coloured: bool = False,
                 image_split: str = "train", digits=None, speeds=None,
                 size_range: tuple[float, float] = SIZE_RANGE, p_speed: float = 0.8):
        if size < 8 or frames < 1:
            raise ValueError(f"need size >= 8 and frames >= 1; got size={size}, frames={frames}")
        if caption_split not in SPLITS:
            raise ValueError(f"caption_split must be one of {SPLITS}; got {caption_split!r}")
        _check("background", background, BACKGROUND_CHOICES)
        self.size, self.frames, self.p_two, self.max_objects = size, frames, p_two, max_objects
        self.background, self.caption_split, self.coloured = background, caption_split, coloured
        self.size_range, self.p_speed, self.image_split = size_range, p_speed, image_split
        self.motions = tuple(motions or DIGIT_MOTIONS)
        self.speeds = tuple(speeds or SPEEDS)
        for kind, values, valid in (("motion", self.motions, MOTIONS), ("speed", self.speeds, SPEEDS)):
            for v in values:
                _check(kind, v, valid)
        images, targets = digit_images()
        self.indices = split_indices(image_split)
        if digits is not None:
            self.indices = self.indices[np.isin(targets[self.indices], list(digits))]
            if len(self.indices) == 0:
                raise ValueError(f"no images of digits {list(digits)} in the {image_split!r} split; "
                                 "pass digits from 0-9")

    def __repr__(self) -> str:
        return (f"DigitsWorld(size={self.size}, frames={self.frames}, p_two={self.p_two}, "
                f"coloured={self.coloured}, image_split={self.image_split!r}, "
                f"caption_split={self.caption_split!r})")

    def _object(self, rng: np.random.Generator, colour: str) -> ObjectLabels:
        images, targets = digit_images()
        index = int(self.indices[int(rng.integers(len(self.indices)))])
        motion = self.motions[int(rng.integers(len(self.motions)))]
        speed = "none" if motion == "static" else self.speeds[int(rng.integers(len(self.speeds)))]
        size = float(rng.uniform(*self.size_range))
        start = place(rng, "digit", motion, speed, size)
        direction, spin = (0.0, 0.0), 1
        if motion == "bouncing":
            for _ in range(20):
                theta = rng.uniform(0, 2 * math.pi)
                direction = (math.cos(theta), math.sin(theta))
                if bounces(ObjectLabels(colour, "digit", motion, speed, size, start, direction), self.frames):
                    break
        if motion == "rotating":
            spin = int(rng.choice([-1, 1]))
        return ObjectLabels(colour, "digit", motion, speed, size, start, direction, 0.0, spin,
                            digit=int(targets[index]), image_index=index)

    def sample_labels(self, rng: np.random.Generator) -> SceneLabels:
        """Draw the labels of one clip from `rng`."""
        n = 2 if self.max_objects >= 2 and rng.random() < self.p_two else 1
        if self.coloured:
            palette = [c for c in COLOURS if c != "white"]  # white is the uncoloured default, never named
            colours = [palette[i] for i in rng.permutation(len(palette))[:n]]
        else:
            colours = ["white"] * n
        objects = [self._object(rng, colours[0])]
        if n == 2:
            best, best_gap = None, -math.inf
            for _ in range(10):
                other = self._object(rng, colours[1])
                gap = _min_gap(objects[0], other, self.frames)
                if gap > best_gap:
                    best, best_gap = other, gap
                if gap > 0:
                    break
            objects.append(best)
        background = self.background
        if background == "mixed":
            background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
        return SceneLabels(tuple(objects), background, int(rng.integers(2**31)))

    def render(self, labels: SceneLabels) -> np.ndarray:
        """Draw labels into a clip (F, H, W, 3) uint8."""
        images, _ = digit_images()
        bg = background_image(labels.background, self.size, self.size, labels.background_seed)
        layers = [(glyph_coverage(o, images[o.image_index], self.frames, self.size, self.size),
                   COLOURS[o.colour]) for o in labels.objects]
        if not layers:
            return np.broadcast_to(np.rint(bg).astype(np.uint8), (self.frames, *bg.shape)).copy()
        return composite(bg, layers)

    def sample(self, seed: int) -> Clip:
        """The clip of `seed`: always the same video, caption and labels for the same seed and world."""
        rng = np.random.default_rng(seed)
        labels = self.sample_labels(rng)
        caption = make_caption(labels, rng, self.caption_split, p_speed=self.p_speed)
        return Clip(self.render(labels), caption, labels, seed)

    def labels_from_attributes(self, digit: int, motion: str, speed: str = "slow", *, colour: str = "white",
                               size: float = 0.45, image_index: int | None = None,
                               background: str = "black") -> SceneLabels:
        """Labels of one digit with a canonical placement (path centred on the canvas).

        `image_index` defaults to the first image of `digit` in this world's image split.
        """
        _check("motion", motion, MOTIONS)
        _check("colour", colour, COLOURS)
        _, targets = digit_images()
        if image_index is None:
            matches = self.indices[targets[self.indices] == digit]
            if len(matches) == 0:
                raise ValueError(f"no image of digit {digit!r} in this world; pass a digit from 0-9")
            image_index = int(matches[0])
        speed = "none" if motion == "static" else speed
        if motion != "static":
            _check("speed", speed, SPEEDS)
        d = np.asarray(DIRECTIONS.get(motion, (0, 0)), np.float64)
        start = tuple(float(v) for v in 0.5 - 0.5 * d * TRAVEL.get(speed, 0.0))
        direction = BOUNCE_DIRECTION if motion == "bouncing" else (0.0, 0.0)
        obj = ObjectLabels(colour, "digit", motion, speed, size, start, direction,
                           digit=int(targets[image_index]), image_index=image_index)
        return SceneLabels((obj,), background)

