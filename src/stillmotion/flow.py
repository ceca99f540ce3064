"""Dense optical flow between frames, the backward warp, and the forward-backward occlusion check. No downloads.

Flow is OpenCV's (Farnebäck 2003 by default; DIS, Kroeger et al. 2016, as an option) on the grey frames at their
own resolution. For a pair of neighbouring frames (I0, I1):
    forward flow   fw:  I0(p) ~ I1(p + fw(p))
    backward flow  bw:  I1(p) ~ I0(p + bw(p))
and warp(I, F)(p) = I(p + F(p)) (bilinear). A pair of identical frames gets exactly zero flow without asking
OpenCV. p of I1 is `visible` (not occluded) when p + bw(p) lies inside the frame and the forward-backward check
holds (Sundaram, Brox & Keutzer 2010, "Dense point trajectories by GPU-accelerated large displacement optical
flow"): |bw(p) + fw'(p)|^2 <= 0.01 (|bw(p)|^2 + |fw'(p)|^2) + 0.5, where fw'(p) = fw(p + bw(p)).

Flow sits below every layer that needs it: curation (data/curate.py), flow interpolation
(pipelines/flow_interpolation.py), training's flow-consistency term and motion hints (train/), and the
temporal-consistency metrics (eval/temporal.py). It imports nothing from stillmotion.
"""

from __future__ import annotations

import numpy as np

FLOW_METHODS = ("farneback", "dis")


def require_cv2(purpose: str = "stillmotion.flow"):
    """The cv2 module, or an ImportError that says how to install it (OpenCV is imported only when needed)."""
    try:
        import cv2
    except ImportError as e:
        raise ImportError(f"{purpose} needs OpenCV for optical flow: pip install opencv-python-headless") from e
    return cv2


def optical_flow(frame0: np.ndarray, frame1: np.ndarray, method: str = "farneback") -> np.ndarray:
    """Dense flow from one uint8 RGB (H, W, 3) or grey (H, W) frame to the next.

    Returns:
        (H, W, 2) float64 displacement (dx, dy) in pixels with frame0(p) ~ frame1(p + flow(p)); exactly zero
        when the frames are identical.
    """
    if method not in FLOW_METHODS:
        raise ValueError(f"unknown flow method '{method}'; choose one of {', '.join(FLOW_METHODS)}")
    if np.array_equal(frame0, frame1):
        return np.zeros((*frame0.shape[:2], 2))
    cv2 = require_cv2()
    g0, g1 = (np.ascontiguousarray(f) if f.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY)
              for f in (frame0, frame1))
    if method == "farneback":
        # pyramid scale 0.5, 3 levels, 15 px window, 3 iterations, 5-neighbourhood polynomial, sigma 1.2:
        # OpenCV's documented defaults for this function.
        flow = cv2.calcOpticalFlowFarneback(g0, g1, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    else:
        if max(g0.shape) < 12:
            raise ValueError(f"DIS flow needs frames at least 12 pixels wide or high; got {g0.shape[1]}x{g0.shape[0]}. "
                             "Use method='farneback' for tiny frames")
        flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(g0, g1, None)
    return flow.astype(np.float64)


def video_flows(frames: np.ndarray, method: str = "farneback") -> tuple[np.ndarray, np.ndarray]:
    """Forward and backward flow of every neighbouring frame pair.

    Args:
        frames: uint8 (F, H, W, 3) RGB or (F, H, W) grey frames, F >= 2 (`data.video_io.as_frames` turns a float
            (C, F, H, W) clip in [-1, 1] into these).
        method: "farneback" or "dis".

    Returns:
        (forward, backward), each (F - 1, H, W, 2) float64: forward[i] maps frame i to frame i + 1,
        backward[i] maps frame i + 1 to frame i (see `optical_flow` for the convention).
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or len(frames) < 2:
        raise ValueError(f"video_flows needs uint8 frames (F, H, W, 3) or (F, H, W) with F >= 2; got "
                         f"{frames.dtype} {frames.shape}")
    forward = np.stack([optical_flow(a, b, method) for a, b in zip(frames[:-1], frames[1:])])
    backward = np.stack([optical_flow(b, a, method) for a, b in zip(frames[:-1], frames[1:])])
    return forward, backward


def warp(image: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Backward warp: out(p) = image(p + flow(p)), bilinear, in float64.

    Args:
        image: (H, W, C) values. flow: (H, W, 2) displacement (dx, dy) in pixels.

    Returns:
        (warped (H, W, C) float64, inside (H, W) bool: p + flow(p) lies within the frame). Samples outside
        are clamped to the border; zero flow returns the image exactly.
    """
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    x, y = xs + flow[..., 0], ys + flow[..., 1]
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    x, y = np.clip(x, 0, w - 1), np.clip(y, 0, h - 1)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]                     # (H, W, 1) weights
    img = image.astype(np.float64)
    top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
    bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
    return top * (1 - fy) + bottom * fy, inside


def visible(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Pixels p of frame i + 1 that frame i explains: p + bw(p) inside the frame and forward-backward consistent
    (the check in the module docstring).

    Args:
        forward, backward: (H, W, 2) flows of one frame pair (see `video_flows`).

    Returns:
        (H, W) bool.
    """
    h, w = backward.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    x, y = xs + backward[..., 0], ys + backward[..., 1]
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    fw_back, _ = warp(forward, backward)                                   # fw(p + bw(p)), (H, W, 2)
    mismatch = ((backward + fw_back) ** 2).sum(-1)
    bound = 0.01 * ((backward**2).sum(-1) + (fw_back**2).sum(-1)) + 0.5
    return inside & (mismatch <= bound)
