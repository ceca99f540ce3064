"""The "shapes" world: coloured shapes that move, bounce, grow, shrink or spin, with exact labels.

Every clip is a deterministic function of one integer seed. Labels are drawn first (`SceneLabels`), the
pixels are rendered from the labels alone (`ShapesWorld.render`), and the caption is drawn from the labels
(`captions.make_caption`), so pixels, labels and words always agree.

Geometry is in normalised canvas units: x, y in [0, 1] (y points down), an object's `size` is the width of
its bounding box at frame 0 as a fraction of the canvas. Motion amounts are fractions of the canvas over the
whole clip, so a clip looks the same at any size and frame count:
  left/right/up/down and diagonals  displacement TRAVEL[speed] per moving axis (diagonals move on both);
  bouncing                          path length BOUNCE_PATH[speed], reflected off the walls;
  growing / shrinking               size ratio GROWTH[speed] between the first and last frame;
  rotating                          TURN[speed] radians (squares and triangles; a circle would not show it).
Objects are drawn from signed distances: alpha = clip(0.5 - distance_in_pixels, 0, 1), which anti-aliases
the edge and leaves the interior exactly its colour.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from stillmotion.data.captions import DIRECTIONS, SPLITS, make_caption

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 80, 230), "yellow": (235, 220, 50),
    "cyan": (40, 210, 220), "magenta": (210, 50, 200), "white": (240, 240, 240), "orange": (245, 140, 30),
}
SHAPES = ("circle", "square", "triangle", "diamond", "ring")
DEFAULT_SHAPES = ("circle", "square", "triangle")
MOTIONS = tuple(DIRECTIONS) + ("static", "bouncing", "growing", "shrinking", "rotating")
SPEEDS = ("slow", "fast")
BACKGROUNDS = ("black", "gray", "gradient", "noise")
BACKGROUND_CHOICES = BACKGROUNDS + ("mixed",)  # "mixed": one of BACKGROUNDS per clip

TRAVEL = {"slow": 0.25, "fast": 0.5}
BOUNCE_PATH = {"slow": 0.9, "fast": 1.8}
GROWTH = {"slow": 1.6, "fast": 2.4}
TURN = {"slow": math.radians(60), "fast": math.radians(150)}
SIZE_RANGE = (0.2, 1 / 3)
BOUNCE_DIRECTION = (math.cos(math.radians(30)), math.sin(math.radians(30)))  # canonical first step
# Half-extent of each shape (its farthest point from the centre) in units of `size`, upright / any angle.
# A digit's 8x8 box has blank margins, so its ink reaches about 0.42 of the box width from the centre.
EXTENT = {"circle": 0.5, "square": 0.5, "triangle": 0.5774, "diamond": 0.5, "ring": 0.5, "digit": 0.42}
ROTATED_EXTENT = {**EXTENT, "square": 0.7072, "digit": 0.6}
ROTATES_VISIBLY = ("square", "triangle", "diamond", "digit")


@dataclass(frozen=True)
class ObjectLabels:
    """One object in a clip; everything needed to draw it.

    Attributes:
        colour: a key of COLOURS.
        shape: a key of SHAPES, or "digit".
        motion: a key of MOTIONS.
        speed: "slow" / "fast", or "none" for static objects.
        size: bounding-box width at frame 0, fraction of the canvas.
        start: (x, y) centre at frame 0, fractions of the canvas (y down).
        direction: (dx, dy) unit vector of a bouncing object's first step; (0, 0) otherwise.
        angle: orientation at frame 0 in radians; spin: +1 / -1 rotation sense (rotating only).
        digit: the digit shown (digits world); image_index: which image of the digits data set.
    """

    colour: str
    shape: str
    motion: str
    speed: str
    size: float
    start: tuple[float, float]
    direction: tuple[float, float] = (0.0, 0.0)
    angle: float = 0.0
    spin: int = 1
    digit: int | None = None
    image_index: int | None = None


@dataclass(frozen=True)
class SceneLabels:
    """All objects of a clip (drawn in order, later on top) and its background."""

    objects: tuple[ObjectLabels, ...]
    background: str = "black"
    background_seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Clip:
    """One sample of a world: video (F, H, W, 3) uint8, its caption, its exact labels, and the seed."""

    video: np.ndarray
    caption: str
    labels: SceneLabels
    seed: int = field(default=0)


# ----------------------------------------------------------------------------------------------- motion

def trajectory(obj: ObjectLabels, frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where an object is in every frame.

    Returns:
        centre (F, 2) as (x, y) canvas fractions, scale (F,) relative to `obj.size`, angle (F,) radians.
    """
    u = np.arange(frames, dtype=np.float64) / max(frames - 1, 1)                # clip progress in [0, 1]
    centre = np.broadcast_to(np.asarray(obj.start, np.float64), (frames, 2)).copy()
    scale = np.ones(frames)
    angle = np.full(frames, float(obj.angle))
    if obj.motion in DIRECTIONS:
        centre += u[:, None] * TRAVEL[obj.speed] * np.asarray(DIRECTIONS[obj.motion], np.float64)
    elif obj.motion == "bouncing":
        lo = EXTENT[obj.shape] * obj.size
        span = 1.0 - 2.0 * lo                                                  # room for the centre
        unfolded = centre - lo + u[:, None] * BOUNCE_PATH[obj.speed] * np.asarray(obj.direction)
        centre = lo + span - np.abs(np.mod(unfolded, 2.0 * span) - span)       # reflect off both walls
    elif obj.motion == "growing":
        scale = GROWTH[obj.speed] ** u
    elif obj.motion == "shrinking":
        scale = GROWTH[obj.speed] ** -u
    elif obj.motion == "rotating":
        angle = angle + obj.spin * TURN[obj.speed] * u
    elif obj.motion != "static":
        raise ValueError(f"unknown motion {obj.motion!r}; expected one of {MOTIONS}")
    return centre, scale, angle


def bounces(obj: ObjectLabels, frames: int) -> bool:
    """True when a bouncing object hits a wall at least once during the clip (else it looks like a glide)."""
    lo = EXTENT[obj.shape] * obj.size
    u = np.arange(frames) / max(frames - 1, 1)
    unfolded = np.asarray(obj.start) + u[:, None] * BOUNCE_PATH[obj.speed] * np.asarray(obj.direction)
    return bool(((unfolded < lo) | (unfolded > 1.0 - lo)).any())


def place(rng: np.random.Generator, shape: str, motion: str, speed: str, size: float) -> tuple[float, float]:
    """A start centre that keeps the object inside the canvas for the whole clip."""
    growth = GROWTH[speed] if motion == "growing" else 1.0
    ext = (ROTATED_EXTENT if motion == "rotating" else EXTENT)[shape] * size * growth
    step = np.asarray(DIRECTIONS.get(motion, (0, 0)), np.float64) * (TRAVEL.get(speed, 0.0))
    lo = ext + np.maximum(0.0, -step)
    hi = 1.0 - ext - np.maximum(0.0, step)
    hi = np.maximum(hi, lo)  # an oversized object: pin it rather than fail
    return tuple(float(v) for v in lo + rng.random(2) * (hi - lo))


def labels_from_attributes(colour: str, shape: str, motion: str, speed: str = "slow", *,
                           size: float = 0.28, start: tuple[float, float] | None = None,
                           background: str = "black") -> SceneLabels:
    """Labels of one object with a canonical placement (for evaluation prompts and tests).

    Linear motions start so that their path is centred on the canvas; everything else starts in the middle.
    """
    _check("colour", colour, COLOURS)
    _check("shape", shape, SHAPES)
    _check("motion", motion, MOTIONS)
    speed = "none" if motion == "static" else speed
    if motion != "static":
        _check("speed", speed, SPEEDS)
    if motion in ("growing", "shrinking"):
        size = min(size, 0.55 / GROWTH[speed]) if motion == "growing" else size
    if start is None:
        d = np.asarray(DIRECTIONS.get(motion, (0, 0)), np.float64)
        start = tuple(float(v) for v in 0.5 - 0.5 * d * TRAVEL.get(speed, 0.0))
    direction = BOUNCE_DIRECTION if motion == "bouncing" else (0.0, 0.0)
    return SceneLabels((ObjectLabels(colour, shape, motion, speed, size, start, direction),), background)


def _check(kind: str, value, valid) -> None:
    if value not in valid:
        raise ValueError(f"unknown {kind} {value!r}; expected one of: {', '.join(valid)}")


# ----------------------------------------------------------------------------------------------- drawing

def signed_distance(shape: str, dx: np.ndarray, dy: np.ndarray, size: np.ndarray,
                    angle: np.ndarray) -> np.ndarray:
    """Signed distance (pixels, < 0 inside) from pixel centres to a shape.

    Args:
        dx, dy: pixel centre minus object centre, broadcastable to (F, H, W).
        size, angle: (F, 1, 1) bounding-box width in pixels and orientation in radians.
    """
    if shape in ("circle", "ring"):
        r = np.sqrt(dx * dx + dy * dy)
        return r - size / 2 if shape == "circle" else np.abs(r - 0.35 * size) - 0.15 * size
    c, s = np.cos(angle), np.sin(angle)
    qx, qy = c * dx + s * dy, -s * dx + c * dy                                   # rotate into the shape frame
    if shape == "square":
        return np.maximum(np.abs(qx), np.abs(qy)) - size / 2
    if shape == "diamond":
        return (np.abs(qx) + np.abs(qy) - size / 2) / math.sqrt(2)
    if shape == "triangle":  # equilateral, side `size`, centroid at the centre, apex up, inradius size/√12
        h = math.sqrt(3) / 2
        d = np.maximum(qy, np.maximum(h * qx - 0.5 * qy, -h * qx - 0.5 * qy))
        return d - size / (2 * math.sqrt(3))
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def coverage(obj: ObjectLabels, frames: int, height: int, width: int) -> np.ndarray:
    """Per-pixel coverage alpha (F, H, W) float32 in [0, 1] of one shape over the clip."""
    centre, scale, angle = trajectory(obj, frames)
    px = min(height, width)                                                     # pixels per canvas unit
    cx = (centre[:, 0] * width)[:, None, None]                                 # (F, 1, 1)
    cy = (centre[:, 1] * height)[:, None, None]
    dx = (np.arange(width) + 0.5)[None, None, :] - cx                          # (F, 1, W)
    dy = (np.arange(height) + 0.5)[None, :, None] - cy                         # (F, H, 1)
    dist = signed_distance(obj.shape, dx, dy, (obj.size * px * scale)[:, None, None], angle[:, None, None])
    return np.clip(0.5 - dist, 0.0, 1.0).astype(np.float32)


def background_image(name: str, height: int, width: int, seed: int = 0) -> np.ndarray:
    """A static background (H, W, 3) float32 with integer-valued levels in [0, 255]; dark, so colours read."""
    rng = np.random.default_rng(seed)
    if name == "black":
        return np.zeros((height, width, 3), np.float32)
    if name == "gray":
        return np.full((height, width, 3), 64.0, np.float32)
    if name == "gradient":
        a, b = rng.integers(0, 90, size=(2, 3))
        theta = rng.uniform(0, 2 * math.pi)
        y, x = np.mgrid[0:height, 0:width]
        ramp = (np.cos(theta) * x / width + np.sin(theta) * y / height)
        ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-9)
        return np.rint(a + ramp[..., None] * (b - a)).astype(np.float32)
    if name == "noise":
        return np.repeat(rng.integers(0, 60, size=(height, width, 1)), 3, axis=-1).astype(np.float32)
    raise ValueError(f"unknown background {name!r}; expected one of {BACKGROUND_CHOICES}")


def composite(background: np.ndarray, layers: list[tuple[np.ndarray, tuple[int, int, int]]]) -> np.ndarray:
    """Paint (alpha (F, H, W), rgb) layers in order over a (H, W, 3) background -> (F, H, W, 3) uint8."""
    frames = layers[0][0].shape[0] if layers else 1
    canvas = np.broadcast_to(background, (frames, *background.shape)).copy()
    for alpha, rgb in layers:
        colour = np.asarray(rgb, np.float32)
        canvas += alpha[..., None] * (colour - canvas)                         # alpha 1 -> exactly `colour`
    return np.rint(canvas).astype(np.uint8)


# ----------------------------------------------------------------------------------------------- the world

class ShapesWorld:
    """Synthetic clips of one or two coloured shapes with exact labels and varied captions.

    Args:
        size: canvas height and width in pixels.
        frames: frames per clip.
        p_two: probability of a second object (needs max_objects >= 2).
        max_objects: 1 or 2.
        background: "black", "gray", "gradient", "noise" or "mixed" (one of those per clip).
        caption_split: "train" or "heldout" wordings (see captions.py).
        motions, shapes, colours, speeds: restrict the choices (None: all motions, DEFAULT_SHAPES, all
            colours, both speeds).
        size_range: object size range as fractions of the canvas.
        p_speed: probability that a caption mentions the speed.
    """

    name = "shapes"

    def __init__(self, size: int = 32, frames: int = 16, p_two: float = 0.3, background: str = "black",
                 caption_split: str = "train", motions=None, *, max_objects: int = 2, shapes=None,
                 colours=None, speeds=None, size_range: tuple[float, float] = SIZE_RANGE,
                 p_speed: float = 0.8):
        if size < 8 or frames < 1:
            raise ValueError(f"need size >= 8 and frames >= 1; got size={size}, frames={frames}")
        if caption_split not in SPLITS:
            raise ValueError(f"caption_split must be one of {SPLITS}; got {caption_split!r}")
        _check("background", background, BACKGROUND_CHOICES)
        self.size, self.frames, self.p_two, self.max_objects = size, frames, p_two, max_objects
        self.background, self.caption_split, self.size_range, self.p_speed = background, caption_split, \
            size_range, p_speed
        self.motions = tuple(motions or MOTIONS)
        self.shapes = tuple(shapes or DEFAULT_SHAPES)
        self.colours = tuple(colours or COLOURS)
        self.speeds = tuple(speeds or SPEEDS)
        for kind, values, valid in (("motion", self.motions, MOTIONS), ("shape", self.shapes, SHAPES),
                                    ("colour", self.colours, COLOURS), ("speed", self.speeds, SPEEDS)):
            for v in values:
                _check(kind, v, valid)
        if self.motions == ("rotating",) and not set(self.shapes) & set(ROTATES_VISIBLY):
            raise ValueError(f"rotating needs a shape whose rotation shows ({ROTATES_VISIBLY}); "
                             f"got {self.shapes}")
        if max_objects == 2 and len(self.colours) < 2:
            raise ValueError("two objects need two distinct colours; pass max_objects=1 or more colours")

    def __repr__(self) -> str:
        return f"ShapesWorld(size={self.size}, frames={self.frames}, p_two={self.p_two}, " \
               f"background={self.background!r}, caption_split={self.caption_split!r})"

    def _object(self, rng: np.random.Generator, colour: str) -> ObjectLabels:
        motion = self.motions[int(rng.integers(len(self.motions)))]
        shapes = [s for s in self.shapes if motion != "rotating" or s in ROTATES_VISIBLY]
        if not shapes:  # e.g. only circles but rotating allowed: draw another motion
            motion = next(m for m in self.motions if m != "rotating")
            shapes = list(self.shapes)
        shape = shapes[int(rng.integers(len(shapes)))]
        speed = "none" if motion == "static" else self.speeds[int(rng.integers(len(self.speeds)))]
        lo, hi = self.size_range
        if motion == "growing":
            lo, hi = min(lo, 0.12), min(hi, 0.6 / GROWTH[speed])
        elif motion == "shrinking":
            lo, hi = max(lo, 0.12 * GROWTH[speed]), max(hi, 0.6)
        size = float(rng.uniform(lo, hi))
        start = place(rng, shape, motion, speed, size)
        direction, angle, spin = (0.0, 0.0), 0.0, 1
        if motion == "bouncing":
            for _ in range(20):  # a bounce must happen within the clip, or it is just a glide
                theta = rng.uniform(0, 2 * math.pi)
                direction = (math.cos(theta), math.sin(theta))
                obj = ObjectLabels(colour, shape, motion, speed, size, start, direction)
                if bounces(obj, self.frames):
                    break
        if motion == "rotating":
            spin = int(rng.choice([-1, 1]))
        return ObjectLabels(colour, shape, motion, speed, size, start, direction, angle, spin)

    def sample_labels(self, rng: np.random.Generator) -> SceneLabels:
        """Draw the labels of one clip from `rng`."""
        n = 2 if self.max_objects >= 2 and rng.random() < self.p_two else 1
        colours = [self.colours[i] for i in rng.permutation(len(self.colours))[:n]]
        objects = [self._object(rng, colours[0])]
        if n == 2:
            best, best_gap = None, -math.inf
            for _ in range(10):  # prefer a second object that does not overlap the first
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
        bg = background_image(labels.background, self.size, self.size, labels.background_seed)
        layers = [(coverage(o, self.frames, self.size, self.size), COLOURS[o.colour]) for o in labels.objects]
        if not layers:
            return np.broadcast_to(np.rint(bg).astype(np.uint8), (self.frames, *bg.shape)).copy()
        return composite(bg, layers)

    def sample(self, seed: int) -> Clip:
        """The clip of `seed`: always the same video, caption and labels for the same seed and world."""
        rng = np.random.default_rng(seed)
        labels = self.sample_labels(rng)
        caption = make_caption(labels, rng, self.caption_split, p_speed=self.p_speed)
        return Clip(self.render(labels), caption, labels, seed)

    def labels_from_attributes(self, colour: str, shape: str, motion: str, speed: str = "slow",
                               **kwargs) -> SceneLabels:
        """See the module function `labels_from_attributes`."""
        return labels_from_attributes(colour, shape, motion, speed, **kwargs)


def _min_gap(a: ObjectLabels, b: ObjectLabels, frames: int) -> float:
    """Smallest distance between two objects' outlines over the clip (canvas fractions; < 0: overlap)."""
    ca, sa, _ = trajectory(a, frames)
    cb, sb, _ = trajectory(b, frames)
    ext = lambda o: (ROTATED_EXTENT if o.motion == "rotating" else EXTENT)[o.shape] * o.size
    return float((np.hypot(*(ca - cb).T) - ext(a) * sa - ext(b) * sb).min())



def direction_clips(direction: str, n: int, frames: int, size: int, seed: int = 0) -> np.ndarray:
    """`n` clips of one object moving in `direction` (any colour, shape, size, speed and start the world draws),
    on black: what a prompt that names only the direction allows. (n, F, H, W, 3) uint8."""
    _check("direction", direction, DIRECTIONS)
    world = ShapesWorld(size, frames, p_two=0.0, motions=(direction,), max_objects=1)
    return np.stack([world.render(world.sample_labels(np.random.default_rng((seed, i)))) for i in range(n)])
