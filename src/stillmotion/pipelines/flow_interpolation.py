"""Classical frame interpolation: optical flow between keyframes, bidirectional warping and blending.

The baseline the diffusion interpolation stage is measured against (no learning, no text). For each pair of
known frames I0 (index a) and I1 (index b) and an in-between frame at t = (i - a) / (b - a), the flows from
the in-between frame to both keyframes are approximated from the two keyframe flows as in Super SloMo
(Jiang et al. 2018, eq. 4), assuming straight motion between the keyframes:

    F_t->0 = -(1 - t) t F_0->1 + t^2 F_1->0
    F_t->1 = (1 - t)^2 F_0->1 - t (1 - t) F_1->0
    I_t    = (1 - t) warp(I0, F_t->0) + t warp(I1, F_t->1)

Flows follow `flow.optical_flow`: I0(p) ~ I1(p + F_0->1(p)), and warp(I, F)(p) = I(p + F(p)).
Frames before the first or after the last keyframe copy the nearest keyframe (this is not extrapolation).
Where flow fails, so does this: a flat-coloured object that moves farther than its own width between two
keyframes (16 px for a 10 px square on black) is not tracked by Farneback or DIS, and the blend then fades
it out at one place and in at the other.
"""

from __future__ import annotations

import numpy as np

from stillmotion.flow import optical_flow, warp


def flow_interpolate(video: np.ndarray, known, *, method: str = "farneback") -> np.ndarray:
    """Fill the unknown frames of a clip from its known frames.

    Args:
        video: (F, H, W, 3) uint8; only the frames where `known` is true are read.
        known: (F,) bools (or 0/1), at least one true.
        method: optical flow, "farneback" or "dis" (flow.FLOW_METHODS).

    Returns:
        (F, H, W, 3) uint8: the known frames exactly as given, the others interpolated.
    """
    known = np.asarray(known, dtype=bool)
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
        raise ValueError(f"flow_interpolate: video must be (F, H, W, 3) uint8; got {video.shape} {video.dtype}")
    if known.shape != (video.shape[0],):
        raise ValueError(f"flow_interpolate: known has shape {known.shape}; expected ({video.shape[0]},)")
    keys = np.flatnonzero(known)
    if len(keys) == 0:
        raise ValueError("flow_interpolate: no known frame; mark at least one keyframe")
    out = video.copy()
    out[:keys[0]] = video[keys[0]]
    out[keys[-1] + 1:] = video[keys[-1]]
    for a, b in zip(keys[:-1], keys[1:]):
        if b - a < 2:
            continue
        i0, i1 = video[a], video[b]
        f01, f10 = optical_flow(i0, i1, method), optical_flow(i1, i0, method)  # (H, W, 2) each
        for i in range(a + 1, b):
            t = (i - a) / (b - a)
            ft0 = -(1 - t) * t * f01 + t * t * f10
            ft1 = (1 - t) ** 2 * f01 - t * (1 - t) * f10
            blend = (1 - t) * warp(i0, ft0)[0] + t * warp(i1, ft1)[0]  # (H, W, 3) float64
            out[i] = np.clip(np.rint(blend), 0, 255).astype(np.uint8)
    return out
