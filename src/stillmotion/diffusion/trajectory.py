"""Trajectory anchoring: partway through sampling, every frame becomes one frame moved along the motion asked for.

A sampler decides the coarse layout of a clip (where the object is) at the high noise levels and the details at
the low ones. Anchoring steps in between: at noise level `sigma`, frame f of the partly denoised clip is replaced
by the anchor frame a translated by the motion between them ((u_f - u_a) * displacement, u_f = f / (F - 1),
integer pixels), and the sampler denoises on from there, the network filling in edges and details and keeping the
frames together. The motion thus comes from the plan (the prompt's motion planner, or the user's hint) and the
content from the model, as in Text2Video-Zero's "motion dynamics in latent codes" (Khachatryan et al. 2023), here
with one global translation per clip and at a chosen noise level instead of a fixed number of DDIM steps.

Both parts of the noisy frame move: its content and its noise. A model trained with warped noise
(diffusion/noise_warp.py, noise = one canvas panning along the clip's motion) was trained on nearly such clips:
a clip that moves by the displacement, with noise that pans by it (its canvas brings fresh noise in at the edge
where the circular shift below brings back what left the other).

    x = follow_trajectory(x, displacement, anchored)  # x: (B, C, F, H, W) at an anchoring noise level

The anchor is the middle frame by default: the path is then centred where the model put the object mid-clip, so
a model that placed it near the edge it should move towards loses it off the canvas less often than with frame 0
as the anchor. Given a map of where the object is (`best_anchor`: the sampler's clean estimate at that point), the
anchor is instead the frame, among those that show the object as most frames do, from which the path keeps most of
it on the canvas, the middle one on ties.
The frames are circular shifts of the anchor: what leaves one edge enters at the other, so every
frame holds exactly the anchor's pixels and noise (still N(0, sigma^2) per pixel). Keeping each frame's own pixels
where the shifted anchor leaves a gap instead kept the objects the model had drawn there too: duplicates, and on 64
plainly worded prompts direction 0.94 and 2 jumping clips against 0.98 and 1 with the shift (0.47 / 5 against
0.52 / 0 on held-out wordings).

Where the object would leave the canvas along the path (a model that drew it near the edge it moves towards), the
whole path is moved by the least that keeps it on (`path_offset`; the shapes world, like most footage of a moving
object, keeps its object in view), so it does not wrap around and jump. And the pipeline anchors at every sampler
level from `sigma` down, not once: after a single anchoring the network still moved or redrew the object in some
clips. On the from-scratch preset's seed-1 run (docs/from-scratch.md, 256 plainly worded prompts), once:
direction 0.891, 6 jumping; at every level: 0.906, 1; at every level with the path kept on the canvas: 0.949, 1
(once with it: 0.883). The clip of an anchored prompt is then a rigid translation of one frame, which is what a
travelling object of this world is; objects that grow, shrink or turn travel less than MIN_TRAVEL and are left to
the model.
"""

from __future__ import annotations

import torch
from torch import Tensor

from stillmotion.diffusion.noise_warp import frame_shifts

# displacements shorter than this (canvas fractions over the clip) are not anchored: the shipped planner reads
# 0.10-0.14 for rotating objects (their centroid stays put) and >= 0.25 for the shapes world's slowest travel
MIN_TRAVEL = 0.15
OBJECT_CONTRAST = 0.3  # object_map: differences from the background below this (of the [-1, 1] range) are none
# best_anchor: only frames whose object content is within these fractions of the clip's median frame's: not a faint
# or half-drawn object (which would vanish), nor one with a second copy beside it (which would be kept in every frame)
WHOLE_OBJECT = (0.5, 1.5)
# path_offset: the object's box along each axis holds all but this fraction of the anchor frame's content on
# either side (a few stray bright pixels of a noisy estimate do not stretch it over the canvas)
BOX_TAIL = 0.05
SHOWN = 0.25  # ... that median taken over the frames holding at least this fraction of the fullest frame's content


def follow_trajectory(x: Tensor, displacement: Tensor, anchored: Tensor | None = None,
                      anchor_frame: int | Tensor | None = None, offset: Tensor | None = None) -> Tensor:
    """Every frame of each clip replaced by its anchor frame translated along its displacement.

    Args:
        x: (B, C, F, H, W) the partly denoised clips.
        displacement: (B, 2) [dx, dy] canvas fractions over the whole clip (x right, y down).
        anchored: (B,) bool, which clips to anchor (None: all); the others are returned unchanged.
        anchor_frame: the frame the others are made from: one for all clips, (B,) one per clip, or None: the
            middle one, F // 2.
        offset: (B, 2) long [x, y] pixels every frame of a clip is moved by besides (the anchor frame too), e.g.
            `path_offset`'s, which keeps the object's path on the canvas; None: none.

    Returns:
        (B, C, F, H, W): frame f is the anchor rolled by shift_f - shift_a, shift_f = round(u_f * displacement *
        size) (noise_warp.frame_shifts).
    """
    b, _, frames, height, width = x.shape
    if displacement.shape != (b, 2):
        raise ValueError(f"follow_trajectory: displacement has shape {tuple(displacement.shape)}; expected ({b}, 2)")
    if frames == 1:
        return x
    a = torch.as_tensor(frames // 2 if anchor_frame is None else anchor_frame).long().cpu().expand(b)  # (B,)
    if ((a < 0) | (a >= frames)).any():
        raise ValueError(f"follow_trajectory: anchor_frame {anchor_frame} is outside the clip's {frames} frames")
    anchored = torch.ones(b, dtype=torch.bool) if anchored is None else anchored.detach().bool().cpu()
    shifts = frame_shifts(displacement, frames, height, width)  # (B, F, 2) [shift_x, shift_y]
    shifts = shifts - shifts[torch.arange(b), a][:, None]  # relative to each clip's anchor frame
    if offset is not None:
        shifts = shifts + offset.detach().long().cpu()[:, None, :]
    out = x.clone()
    for i in torch.nonzero(anchored).flatten().tolist():
        for f, (sx, sy) in enumerate(shifts[i].tolist()):
            out[i, :, f] = torch.roll(x[i, :, a[i]], shifts=(sy, sx), dims=(-2, -1))  # (C, H, W)
    return out


def object_map(x0: Tensor, threshold: float = OBJECT_CONTRAST) -> Tensor:
    """(B, F, H, W) where the objects are in clean(-estimated) clips x0 (B, C, F, H, W) in [-1, 1]: each pixel's
    largest channel difference from its frame's median (the background), below `threshold` counted as none."""
    median = x0.flatten(-2).median(dim=-1).values[..., None, None]  # (B, C, F, 1, 1)
    contrast = (x0 - median).abs().amax(dim=1)  # (B, F, H, W)
    return torch.where(contrast >= threshold, contrast, 0.0)


def best_anchor(content: Tensor, displacement: Tensor, whole: tuple[float, float] = WHOLE_OBJECT) -> Tensor:
    """(B,) long: per clip, the anchor frame showing the object whole whose content, moved along the displacement,
    wraps around least.

    Args:
        content: (B, F, H, W) >= 0, how much object each pixel holds (`object_map`).
        displacement: (B, 2) [dx, dy] canvas fractions over the clip.
        whole: (low, high): candidates are the frames whose content is within these fractions of the median
            frame's, the median over the frames that show the object (at least SHOWN of the fullest frame's
            content); that median frame itself always is a candidate.

    Frame a's wrapped share is the sum, over the frames f, of its content in the strips that `follow_trajectory`
    rolls across the canvas's edges to make frame f, divided by its content. Only frames that show the object as
    most frames do compete: one where it is faint or half drawn wraps little because it holds little, and anchored
    on it the clip loses the object; one where a second copy appeared would put that copy in every frame. Ties
    (nothing near an edge) go to the frame nearest the middle.
    """
    b, frames, height, width = content.shape
    shifts = frame_shifts(displacement, frames, height, width).to(content.device)  # (B, F, 2)
    rel = shifts[:, None, :, :] - shifts[:, :, None, :]  # (B, A, F, 2): frame f's shift from anchor a
    cols = torch.arange(width, device=content.device)
    rows = torch.arange(height, device=content.device)
    sx, sy = rel[..., 0, None], rel[..., 1, None]  # (B, A, F, 1)
    leave_x = torch.where(sx > 0, cols >= width - sx, cols < -sx)  # (B, A, F, W): columns rolled across an edge
    leave_y = torch.where(sy > 0, rows >= height - sy, rows < -sy)  # (B, A, F, H)
    wraps = leave_y[..., :, None] | leave_x[..., None, :]  # (B, A, F, H, W)
    wrapped = (wraps * content[:, :, None]).sum(dim=(2, 3, 4))  # (B, A)
    held = content.sum(dim=(2, 3))  # (B, A): each candidate's own content
    # the typical frame among those that show the object at all (content of at least SHOWN x the fullest frame's):
    # where it shows in under half the frames, the plain median is an empty frame, and empty frames would compete
    shown = held >= SHOWN * held.amax(dim=1, keepdim=True)  # (B, A); all True where nothing is drawn anywhere
    typical = held.masked_fill(~shown, float("nan")).nanmedian(dim=1, keepdim=True).values  # (B, 1)
    usual = (held >= whole[0] * typical) & (held <= whole[1] * typical)  # (B, A)
    share = torch.where(usual, wrapped / held.clamp(min=1e-6), torch.inf)
    order = sorted(range(frames), key=lambda f: (abs(f - frames // 2), f))  # middle first
    return torch.tensor(order)[share[:, order].argmin(dim=1).cpu()]  # argmin: the first of equal minima


def path_offset(content: Tensor, displacement: Tensor, anchor_frame: Tensor) -> Tensor:
    """(B, 2) long [x, y]: the smallest move of each clip's anchor frame that keeps its object on the canvas all
    along the path `follow_trajectory` gives it, so that no frame wraps it around an edge.

    Args:
        content: (B, F, H, W) >= 0, where the object is (`object_map` of the clean estimate).
        displacement: (B, 2) [dx, dy] canvas fractions over the clip.
        anchor_frame: (B,) long, each clip's anchor frame (`best_anchor`).

    The object's box holds the anchor frame's content but a tail of BOX_TAIL on each side; along the path it
    spans the box moved by every frame's shift relative to the anchor. Where that span fits the canvas, the move is
    the least that brings it inside (0 where it already is); where it does not (a path longer than the canvas), the
    span is centred. Nothing drawn: no move. The shapes world, like most footage of a moving object, keeps its object in
    view; a model that drew it near the edge it moves towards would otherwise have it leave and wrap.
    """
    b, frames, height, width = content.shape
    shifts = frame_shifts(displacement, frames, height, width)  # (B, F, 2)
    rows = torch.arange(b)
    rel = shifts - shifts[rows, anchor_frame.long().cpu()][:, None]  # (B, F, 2)
    drawn = content[rows.to(content.device), anchor_frame.long().to(content.device)].double().cpu()  # (B, H, W)
    offset = torch.zeros(b, 2, dtype=torch.long)
    for i in range(b):
        for axis, size in ((0, width), (1, height)):
            mass = drawn[i].sum(dim=axis)  # (W,) per column (axis 0) / (H,) per row (axis 1)
            if mass.sum() <= 0:
                continue
            cum = mass.cumsum(0) / mass.sum()
            box = (int(torch.searchsorted(cum, BOX_TAIL)), int(torch.searchsorted(cum, 1 - BOX_TAIL)))
            lo = box[0] + int(rel[i, :, axis].min())  # the span along the path
            hi = box[1] + int(rel[i, :, axis].max())
            if hi - lo + 1 > size:
                offset[i, axis] = (size - 1 - hi - lo) // 2  # centred
            elif lo < 0:
                offset[i, axis] = -lo
            elif hi > size - 1:
                offset[i, axis] = size - 1 - hi
    return offset


def anchor_mask(displacement: Tensor, given: Tensor, min_travel: float = MIN_TRAVEL) -> Tensor:
    """(B,) bool: the clips to anchor: a motion is known (`given`, (B,)) and travels at least `min_travel`.
    Still, growing, shrinking or rotating objects (their centroid stays put) are left to the model."""
    return given.detach().cpu().bool() & (displacement.detach().cpu().norm(dim=1) >= min_travel)
