"""Motion hints for training: how far a clip's content moves, measured from its optical flow.

The hint of a clip is one vector [dx, dy] in canvas fractions over the whole clip (x right, y down): the sum over
neighbouring frame pairs of the mean flow of the pixels that move (|flow| > `MOVING_PX`, and visible under the
forward-backward check), divided by the frame size. A still clip gets (0, 0); a left-mover of the shapes world
about (-0.25, 0) when slow. It is measured from pixels, not read from labels, so it works on any video folder.
During training the hint is dropped (all zeros, "no hint") with probability `TrainConfig.motion_dropout`, so
one model samples with and without it (models/unet.py `motion_cond`, cond.py `motion_hint`).
"""

from __future__ import annotations

import numpy as np

MOVING_PX = 0.5  # a pixel moves when its flow is longer than this many pixels per frame


def motion_from_flow(backward: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """The clip's motion hint [dx, dy, 1] from its backward flows (train/flow_consistency.py `clip_flow`).

    Args:
        backward: (F - 1, H, W, 2): frame f + 1's pixel p was at p + backward[f](p) in frame f.
        seen: (F - 1, H, W) bool visibility.

    Returns:
        (3,) float32: total displacement (dx, dy) in canvas fractions, and 1 (a hint is given).
    """
    _, h, w, _ = backward.shape
    total = np.zeros(2)
    for bw, ok in zip(backward, seen):
        moving = ok & (np.hypot(bw[..., 0], bw[..., 1]) > MOVING_PX)
        if moving.any():
            total -= bw[moving].mean(0)  # content moved by -backward
    return np.array([total[0] / w, total[1] / h, 1.0], np.float32)
