"""The synthetic worlds drawn in batched torch, on any device: the same labels give the same pixels as numpy.

`shapes.ShapesWorld.render` (and `digits.DigitsWorld.render`) draw one clip at a time in numpy, which is what
DataLoader workers do on the CPU. Here a whole batch of labels becomes a few tensors once (`labels_to_tensors`),
and `render` draws every clip, frame and pixel at once with the same arithmetic, in the same order:

    trajectory   per object and frame (N, F), in float64 (tiny tensors): centre, scale, angle, as
                 shapes.trajectory (linear travel, bounces folded off the walls, growth, rotation);
    coverage     per object and pixel (N, F, H, W) in `dtype`: signed distance of the object's shape (or bilinear
                 sampling of its digit glyph), alpha = clip(0.5 - distance, 0, 1), as shapes.coverage;
    composite    each layer of objects (every scene's first, then every second) painted over the static
                 background in float32, rounded half to even to uint8 levels, as shapes.composite.

Python loops run only over the layers (the most objects in a scene: 2) and the shape kinds present in the batch
(on the CPU also over pieces of 64 objects, see CPU_CHUNK). Which kinds and layers exist is known on the host
from the labels, so nothing reads a device value back: a batch is queued on the GPU without a sync.

Backgrounds: "black" and "gray" are flat levels filled on the device. "gradient" and "noise" draw their colours
from numpy's PCG64 stream seeded by the clip's `background_seed` (shapes.background_image); that stream and
numpy's bounded-integer algorithm cannot be reproduced in torch, so those images are drawn on the host by
`background_image` itself, once per batch (one static image per clip, not per frame: about 20 us each) and
uploaded with the batch. Exact by construction.

Precision: trajectories are float64 as in numpy. With `dtype=torch.float64` the pixel arithmetic is numpy's too
and the clips are equal level for level (tests/test_render_torch.py). With float32 (the default: the fast path on
a GPU) pixel offsets and distances carry float32 rounding (~1e-5 px), which moves an anti-aliased edge pixel
across a rounding boundary now and then: at most 1 level of 255, on about 1e-6 of the values (23 of 19.7M over
the test's 400 mixed scenes; the mean difference is the same 1e-6 levels).

    scene = labels_to_tensors([world.sample_labels(np.random.default_rng(s)) for s in seeds])
    video = render(scene, world.frames, world.size, "cuda")        # (B, F, H, W, 3) uint8, == world.render
    x0 = render_video(scene, world.frames, world.size, "cuda")     # (B, 3, F, H, W) float32 in [-1, 1]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from stillmotion.data.captions import DIRECTIONS
from stillmotion.data.shapes import (
    BACKGROUNDS,
    BOUNCE_PATH,
    COLOURS,
    EXTENT,
    GROWTH,
    MOTIONS,
    SHAPES,
    TRAVEL,
    TURN,
    ObjectLabels,
    SceneLabels,
    background_image,
)

KINDS = SHAPES + ("digit",)
FLAT_LEVELS = {"black": 0.0, "gray": 64.0}         # backgrounds that are one level (shapes.background_image)
# Columns of SceneTensors.objects (N, 15) float64, one row per object.
START, HEADING, PATH, BOUNCE, EXTENT_COL, SIZE, GROWTH_COL, GROWTH_SIGN, ANGLE, TURN_COL, RGB = (
    slice(0, 2), slice(2, 4), 4, 5, 6, 7, 8, 9, 10, 11, slice(12, 15))
N_COLUMNS = 15
# Objects per coverage call on the CPU: keeps the per-pixel temporaries (up to ~16 MB) under glibc's largest
# mmap threshold (32 MB), so the allocator reuses them instead of page-faulting fresh memory every batch
# (measured: that doubled the time). On a GPU the caching allocator reuses memory anyway; one call per group.
CPU_CHUNK = 64


@dataclass(frozen=True)
class SceneTensors:
    """The labels of B scenes with N objects in all, packed for the device.

    The objects are listed by layer (every scene's first object, then every second one) and, within a layer,
    by shape kind, so each kind of each layer is one contiguous slice: the renderer draws a slice with one
    formula and pastes a layer with one indexed copy, and no work is spent on kinds or objects a scene lacks.

    Attributes:
        objects: (N, 15) float64, one row per object: start (x, y), heading (dx, dy) of linear or bouncing travel,
            path (canvas fractions travelled over the clip), bounce (0/1), extent (EXTENT[shape] * size, the
            bouncing wall margin), size, growth base and sign (scale = growth ** (sign * u)), angle at frame 0,
            turn (spin * TURN over the clip), rgb.
        ids: (N, 2) int64: the object's scene (index in the labels) and digit image index (0 for shapes).
        level: (B,) float32 level of flat backgrounds (textured ones are drawn over it).
        groups: (kind, first, end) row slices of one shape kind (host side: no sync to branch on them).
        layers: (first, end) row slices of each layer, in painting order (host side).
        background, background_seed: each scene's background name and seed (host side, for textured ones).
    """

    objects: Tensor
    ids: Tensor
    level: Tensor
    groups: tuple[tuple[str, int, int], ...]
    layers: tuple[tuple[int, int], ...]
    background: tuple[str, ...]
    background_seed: tuple[int, ...]

    def to(self, device: str | torch.device) -> SceneTensors:
        """The same scenes with their tensors on `device` (copies queued without waiting where possible)."""
        move = lambda t: t.to(device, non_blocking=True)
        return replace(self, objects=move(self.objects), ids=move(self.ids), level=move(self.level))

    def __len__(self) -> int:
        return len(self.background)


# ----------------------------------------------------------------------------------------------- labels

def _object_row(obj: ObjectLabels) -> list[float]:
    """One object's row of SceneTensors.objects, with the constants shapes.trajectory would use."""
    heading, path, bounce, growth, sign, turn = (0.0, 0.0), 0.0, 0.0, 1.0, 0.0, 0.0
    if obj.motion in DIRECTIONS:
        heading, path = DIRECTIONS[obj.motion], TRAVEL[obj.speed]
    elif obj.motion == "bouncing":
        heading, path, bounce = obj.direction, BOUNCE_PATH[obj.speed], 1.0
    elif obj.motion in ("growing", "shrinking"):
        growth, sign = GROWTH[obj.speed], (1.0 if obj.motion == "growing" else -1.0)
    elif obj.motion == "rotating":
        turn = obj.spin * TURN[obj.speed]
    elif obj.motion != "static":
        raise ValueError(f"unknown motion {obj.motion!r}; expected one of {MOTIONS}")
    if obj.shape not in KINDS:
        raise ValueError(f"unknown shape {obj.shape!r}; expected one of {KINDS}")
    if obj.colour not in COLOURS:
        raise ValueError(f"unknown colour {obj.colour!r}; expected one of {tuple(COLOURS)}")
    return [*obj.start, *heading, path, bounce, EXTENT[obj.shape] * obj.size, obj.size, growth, sign,
            float(obj.angle), turn, *COLOURS[obj.colour]]


def labels_to_tensors(labels: Sequence[SceneLabels]) -> SceneTensors:
    """Pack the labels of B scenes into tensors (on the CPU; `.to(device)` moves them).

    Args:
        labels: B SceneLabels (from `world.sample_labels`, `labels_from_attributes`, a clip's `.labels`), of
            either world, mixed freely.

    Raises:
        ValueError: no scenes, or an unknown shape, motion, colour or background.
    """
    if not labels:
        raise ValueError("labels_to_tensors needs at least one scene")
    for scene in labels:
        if scene.background not in BACKGROUNDS:
            raise ValueError(f"unknown background {scene.background!r}; expected one of {BACKGROUNDS}")
    # (layer, kind, scene): painting order first, then one contiguous slice per kind within a layer
    order = sorted((j, KINDS.index(o.shape) if o.shape in KINDS else -1, b, o)
                   for b, scene in enumerate(labels) for j, o in enumerate(scene.objects))
    rows = np.array([_object_row(o) for *_, o in order], np.float64).reshape(len(order), N_COLUMNS)
    ids = np.array([(b, o.image_index or 0) for _, _, b, o in order], np.int64).reshape(len(order), 2)
    groups, layers = _runs([(j, KINDS[kind]) for j, kind, _, _ in order]), _runs([j for j, *_ in order])
    level = torch.tensor([FLAT_LEVELS.get(s.background, 0.0) for s in labels], dtype=torch.float32)
    return SceneTensors(torch.from_numpy(rows), torch.from_numpy(ids), level,
                        tuple((kind, a, e) for (_, kind), a, e in groups), tuple((a, e) for _, a, e in layers),
                        tuple(s.background for s in labels), tuple(int(s.background_seed) for s in labels))


def _runs(keys: list) -> list[tuple]:
    """(key, first, end) of each run of equal consecutive keys."""
    runs = []
    for i, key in enumerate(keys):
        if runs and runs[-1][0] == key:
            runs[-1] = (key, runs[-1][1], i + 1)
        else:
            runs.append((key, i, i + 1))
    return runs


# ----------------------------------------------------------------------------------------------- motion

def progress(frames: int, device=None) -> Tensor:
    """Clip progress u (F,) float64 in [0, 1], as shapes.trajectory."""
    return torch.arange(frames, dtype=torch.float64, device=device) / max(frames - 1, 1)


def trajectory(obj: Tensor, u: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Where n objects are in every frame (shapes.trajectory, batched; float64, same operation order).

    Args:
        obj: (n, 15) float64 rows of SceneTensors.objects.
        u: (F,) clip progress.

    Returns:
        centre (n, F, 2) as (x, y) canvas fractions, scale (n, F) relative to size, angle (n, F) radians.
    """
    start, heading = obj[:, None, START], obj[:, None, HEADING]                      # (n, 1, 2)
    travel = (u[None, :, None] * obj[:, None, None, PATH]) * heading                  # (n, F, 2)
    lo = obj[:, None, None, EXTENT_COL]                                              # (n, 1, 1)
    span = 1.0 - 2.0 * lo                                                            # room for the centre
    unfolded = start - lo + travel
    folded = lo + span - (torch.remainder(unfolded, 2.0 * span) - span).abs()        # reflect off both walls
    centre = torch.where(obj[:, None, None, BOUNCE] > 0, folded, start + travel)
    scale = torch.pow(obj[:, None, GROWTH_COL], u * obj[:, None, GROWTH_SIGN])       # growth ** (+-u), 1 if none
    angle = obj[:, None, ANGLE] + obj[:, None, TURN_COL] * u
    return centre, scale, angle


# ----------------------------------------------------------------------------------------------- drawing

def signed_distance(kind: str, dx: Tensor, dy: Tensor, qx: Tensor | None, qy: Tensor | None,
                    size: Tensor) -> Tensor:
    """Signed distance (pixels, < 0 inside) of one shape kind, as shapes.signed_distance.

    Args:
        dx, dy: pixel centre minus object centre, (n, F, 1, W) and (n, F, H, 1).
        qx, qy: the same rotated into the shape's frame (n, F, H, W) (unused by circle and ring).
        size: (n, F, 1, 1) bounding-box width in pixels.
    """
    if kind in ("circle", "ring"):
        r = torch.sqrt(dx * dx + dy * dy)
        return r - size / 2 if kind == "circle" else (r - 0.35 * size).abs() - 0.15 * size
    if kind == "square":
        return torch.maximum(qx.abs(), qy.abs()) - size / 2
    if kind == "diamond":
        return (qx.abs() + qy.abs() - size / 2) / math.sqrt(2)
    if kind == "triangle":
        h = math.sqrt(3) / 2
        d = torch.maximum(qy, torch.maximum(h * qx - 0.5 * qy, -h * qx - 0.5 * qy))
        return d - size / (2 * math.sqrt(3))
    raise ValueError(f"no signed distance for {kind!r}; expected one of {SHAPES}")


_CORNERS: dict[str, Tensor] = {}


def glyph_corners(device: torch.device) -> Tensor:
    """(N, 121, 4) float32 on `device`, cached: for every digit glyph and cell i of its zero-padded 11x11 grid
    (glyph cells at 1..8), the values of the cells i, i + 1, i + 11, i + 12: the four corners bilinear sampling
    reads, fetched with one gather. The grid is 11 wide (digits.py pads to 10) so that x0 + 1 and y0 + 1 never
    need clamping: where numpy clamps them, the weight is 0 and both read a zero padding cell."""
    key = str(device)
    if key not in _CORNERS:
        from stillmotion.data.digits import digit_images

        images = digit_images()[0]
        grid = np.pad(images, ((0, 0), (1, 2), (1, 2))).reshape(len(images), 121)    # (N, 11 * 11)
        flat = np.pad(grid, ((0, 0), (0, 12)))
        corners = np.stack([flat[:, o:o + 121] for o in (0, 1, 11, 12)], -1)         # (N, 121, 4)
        _CORNERS[key] = torch.from_numpy(np.ascontiguousarray(corners)).to(device)
    return _CORNERS[key]


def glyph_coverage(image: Tensor, qx: Tensor, qy: Tensor, box: Tensor) -> Tensor:
    """Alpha (n, F, H, W) float32 of digit glyphs by bilinear sampling, as digits.glyph_coverage.

    Args:
        image: (n,) digit image indices; qx, qy: (n, F, H, W) offsets in the glyph frame, px;
        box: (n, F, 1, 1) glyph width in pixels.
    """
    table = glyph_corners(qx.device)[image]                                          # (n, 121, 4)
    gx = ((qx / box + 0.5) * 8 - 0.5 + 1).clamp(0, 9)                               # cell coordinates, 0..9
    gy = ((qy / box + 0.5) * 8 - 0.5 + 1).clamp(0, 9)
    x0, y0 = gx.floor(), gy.floor()
    fx, fy = (gx - x0).float(), (gy - y0).float()
    cell = (y0 * 11 + x0).long().flatten(1)[..., None].expand(-1, -1, 4)             # (n, F*H*W, 4)
    v = table.gather(1, cell).view(*fx.shape, 4)                                     # (n, F, H, W, 4) corners
    top = v[..., 0] * (1 - fx) + v[..., 1] * fx
    bottom = v[..., 2] * (1 - fx) + v[..., 3] * fx
    return top * (1 - fy) + bottom * fy


def coverage(kind: str, obj: Tensor, image: Tensor, u: Tensor, height: int, width: int,
             dtype: torch.dtype) -> Tensor:
    """Per-pixel coverage alpha (n, F, H, W) float32 in [0, 1] of n objects of one kind, as shapes.coverage.

    Args:
        kind: a key of KINDS; obj: (n, 15) float64 object rows; image: (n,) digit image indices (digits only);
        u: (F,) progress; dtype: precision of the per-pixel arithmetic.
    """
    centre, scale, angle = trajectory(obj, u)
    px = min(height, width)                                                          # pixels per canvas unit
    cx = (centre[..., 0] * width)[..., None, None]                                   # (n, F, 1, 1)
    cy = (centre[..., 1] * height)[..., None, None]
    # Offsets per row and column are small (n, F, W) tensors: float64 like numpy, then `dtype` per pixel.
    dx = ((torch.arange(width, dtype=torch.float64, device=u.device) + 0.5) - cx).to(dtype)         # (n, F, 1, W)
    dy = ((torch.arange(height, dtype=torch.float64, device=u.device) + 0.5)[:, None] - cy).to(dtype)  # (n,F,H,1)
    size = ((obj[:, None, SIZE] * px) * scale).to(dtype)[..., None, None]            # (n, F, 1, 1)
    qx = qy = None
    if kind not in ("circle", "ring"):
        c, s = (f(angle).to(dtype)[..., None, None] for f in (torch.cos, torch.sin))
        qx, qy = c * dx + s * dy, -s * dx + c * dy                                   # rotate into the shape frame
    if kind == "digit":
        return glyph_coverage(image, qx, qy, size)
    return (0.5 - signed_distance(kind, dx, dy, qx, qy, size)).clamp(0.0, 1.0).float()


def backgrounds(scene: SceneTensors, height: int, width: int, device) -> Tensor:
    """The static backgrounds (B, 3, 1, H, W) float32 with integer levels in [0, 255] on `device`.

    Flat ones are filled on the device from `scene.level`; textured ones ("gradient", "noise") are drawn on the
    host by shapes.background_image from their seeds (numpy's generator, not reproducible in torch) and
    uploaded together: one small copy per batch, none when every background is flat.
    """
    canvas = scene.level.to(device)[:, None, None, None, None].expand(-1, 3, 1, height, width).clone()
    textured = [b for b, name in enumerate(scene.background) if name not in FLAT_LEVELS]
    if textured:
        images = np.stack([background_image(scene.background[b], height, width, scene.background_seed[b])
                           for b in textured]).astype(np.uint8)                      # (T, H, W, 3) integer levels
        images = torch.from_numpy(images).to(device, non_blocking=True).permute(0, 3, 1, 2)[:, :, None]
        canvas.index_copy_(0, torch.tensor(textured).to(device, non_blocking=True), images.float())
    return canvas


def _pieces(groups, first: int, end: int, step: int):
    """(kind, first, end) of the groups within rows first..end, cut into pieces of at most `step` rows."""
    for kind, g0, g1 in groups:
        if first <= g0 < end:
            for c in range(g0, g1, step):
                yield kind, c, min(c + step, g1)


def _canvas(scene: SceneTensors, frames: int, size: int | tuple[int, int], device, dtype: torch.dtype,
            out: Tensor | None = None) -> Tensor:
    """The rendered clips (B, 3, F, H, W) float32, integer levels in [0, 255] (shapes.composite, batched),
    drawn into `out` when given."""
    height, width = (size, size) if isinstance(size, int) else size
    if frames < 1 or height < 1 or width < 1:
        raise ValueError(f"need frames >= 1 and a positive size; got frames={frames}, size={size}")
    device = torch.device(device) if device is not None else scene.objects.device
    shape = (len(scene), 3, frames, height, width)
    same_device = out is not None and out.device.type == device.type and device.index in (None, out.device.index)
    if out is not None and (out.shape != shape or out.dtype != torch.float32 or not out.is_contiguous()
                            or not same_device):
        raise ValueError(f"out must be a contiguous float32 tensor of shape {shape} on {device}; got "
                         f"{out.dtype} {tuple(out.shape)} on {out.device}")
    scene = scene.to(device)
    u = progress(frames, device)
    background = backgrounds(scene, height, width, device)                           # (B, 3, 1, H, W)
    colour = scene.objects[:, RGB].float()[:, :, None, None, None]                   # (N, 3, 1, 1, 1)
    if not scene.layers:  # no objects in any scene
        canvas = background.expand(shape)
        return canvas.clone() if out is None else out.copy_(canvas)
    for layer, (a, e) in enumerate(scene.layers):                                    # painted in order
        step = CPU_CHUNK if device.type == "cpu" else len(scene.objects)
        alpha = torch.cat([coverage(kind, scene.objects[c0:c1], scene.ids[c0:c1, 1], u, height, width, dtype)
                           for kind, c0, c1 in _pieces(scene.groups, a, e, step)])   # (n, F, H, W)
        where = scene.ids[a:e, 0]                                                    # their scenes, each once
        if layer == 0:  # over the static background: colour - canvas is one image per scene, not per frame
            full = alpha.new_zeros(len(scene), *alpha.shape[1:]) if e - a < len(scene) else torch.empty_like(alpha)
            alpha = full.index_copy_(0, where, alpha)[:, None]                       # (B, 1, F, H, W)
            paint = torch.zeros_like(background).index_copy_(0, where, colour[a:e].expand(-1, -1, 1, height, width))
            canvas = torch.mul(alpha, paint - background, out=out).add_(background)  # alpha 1 -> exactly colour
        else:  # in place: on the CPU a fresh clip-sized buffer costs as much in page faults as the drawing
            rows = canvas.index_select(0, where)                                     # (n, 3, F, H, W)
            rows.add_((colour[a:e] - rows).mul_(alpha[:, None]))
            canvas.index_copy_(0, where, rows)
    return canvas.round_()                                                           # half to even, as np.rint


def render(scene: SceneTensors, frames: int, size: int | tuple[int, int], device=None, *,
           dtype: torch.dtype = torch.float32) -> Tensor:
    """Draw B scenes into clips (B, F, H, W, 3) uint8 on `device`: ShapesWorld.render / DigitsWorld.render
    for every scene at once.

    Args:
        scene: from `labels_to_tensors`.
        frames: F; size: H = W, or (H, W).
        device: where to draw (default: where `scene` is).
        dtype: precision of the per-pixel arithmetic: float32 (fast) or float64 (numpy's own, level-exact).
    """
    canvas = _canvas(scene, frames, size, device, dtype)
    return canvas.to(torch.uint8).permute(0, 2, 3, 4, 1).contiguous()             # (B, 3, F, H, W) -> (B, F, H, W, 3)


def render_video(scene: SceneTensors, frames: int, size: int | tuple[int, int], device=None, *,
                 dtype: torch.dtype = torch.float32, out: Tensor | None = None) -> Tensor:
    """Draw B scenes as training videos (B, 3, F, H, W) float32 in [-1, 1]: exactly `video_io.to_float` of
    `render`'s levels, stacked (what `worlds.sample_batch` and `train.batches.make_batch` build).

    Args:
        scene, frames, size, device, dtype: as `render`.
        out: a contiguous (B, 3, F, H, W) float32 tensor on `device` to draw into and return (a loop that
            reuses one allocates nothing clip-sized; on the CPU that halves the time, see bench/render_world.py).
    """
    return _canvas(scene, frames, size, device, dtype, out).div_(127.5).sub_(1.0)
