"""Classical flow interpolation: keyframes kept exactly, moving objects land between them (better than a crossfade)."""

import numpy as np
import pytest

from stillmotion.data.shapes import ShapesWorld, labels_from_attributes
from stillmotion.eval.reconstruction import psnr
from stillmotion.pipelines.flow_interpolation import flow_interpolate


def _clip(frames=9, motion="right"):
    world = ShapesWorld(size=32, frames=frames)
    return world.render(labels_from_attributes("red", "square", motion, "fast", size=0.3))  # (F, 32, 32, 3)


def test_keyframes_kept_and_motion_interpolated():
    video = _clip(frames=17)  # the square moves 16 px to the right, 4 px between keyframes
    known = np.zeros(17, bool)
    known[::4] = True
    out = flow_interpolate(video, known)
    assert out.shape == video.shape and out.dtype == np.uint8
    assert all(np.array_equal(out[i], video[i]) for i in np.flatnonzero(known))
    crossfade = video.copy()
    for a in range(0, 16, 4):
        for i in range(a + 1, a + 4):
            t = (i - a) / 4
            crossfade[i] = np.rint((1 - t) * video[a] + t * video[a + 4])
    assert psnr(out[~known], video[~known]) > psnr(crossfade[~known], video[~known]) + 5

    def cx(frame):
        return np.nonzero(frame.max(-1) > 90)[1].mean()

    assert max(abs(cx(out[i]) - cx(video[i])) for i in range(17)) < 1.0  # lands where the square really is


def test_every_frame_known_is_the_identity_and_edges_copy():
    video = _clip(frames=6, motion="down")
    assert np.array_equal(flow_interpolate(video, np.ones(6, bool)), video)
    known = np.array([0, 0, 1, 0, 0, 0], bool)
    out = flow_interpolate(video, known)
    assert all(np.array_equal(out[i], video[2]) for i in range(6))


@pytest.mark.parametrize("known, message", [(np.zeros(6, bool), "no known frame"), (np.ones(5, bool), "expected")])
def test_bad_input(known, message):
    with pytest.raises(ValueError, match=message):
        flow_interpolate(_clip(frames=6), known)
