"""The pixel probe (eval/probe.py) on the shapes world's own clips, whose labels are exact: it must read what the
world drew before it judges what a model drew. Thresholds were set on seeds (7, i) and (8, i); these are others."""

import collections

import numpy as np
import pytest

from stillmotion.data.captions import DIRECTIONS
from stillmotion.data.shapes import COLOURS, MOTIONS, ShapesWorld
from stillmotion.eval.probe import OTHER_MOTIONS, read_clip, read_motion
from stillmotion.eval.rotation import tracked_turn


def world_clips(motion: str, n: int, seed: int = 100):
    world = ShapesWorld(32, 16, p_two=0.0, motions=(motion,), max_objects=1)
    for i in range(n):
        labels = world.sample_labels(np.random.default_rng((seed, i)))
        yield world.render(labels), labels.objects[0]


@pytest.mark.parametrize("motion", MOTIONS)
def test_read_motion_reads_the_worlds_own_clips(motion):
    readings = collections.Counter(read_motion(video).motion for video, _ in world_clips(motion, 48))
    # a bounce within the first or last two frames leaves a glide on screen: the one expected miss
    assert readings[motion] / 48 >= (0.9 if motion == "bouncing" else 0.98), readings


@pytest.mark.parametrize("direction", list(DIRECTIONS))
def test_read_clip_reads_colour_and_direction_of_glides(direction):
    hits = [(r.colour == obj.colour, r.direction == direction)
            for r, obj in ((read_clip(v), o) for v, o in world_clips(direction, 24))]
    assert np.mean(hits, axis=0).tolist() == [1.0, 1.0]


def test_read_motion_on_constructed_clips():
    clip = np.zeros((16, 32, 32, 3), np.uint8)
    clip[:, 10:16, 10:16] = COLOURS["red"]
    assert read_motion(clip).motion == "static"
    grown = clip.copy()
    for f in range(16):
        grown[f, 10:13 + f // 2, 10:13 + f // 2] = COLOURS["red"]
    assert read_motion(grown).motion == "growing" and read_motion(grown[::-1]).motion == "shrinking"
    back_and_forth = np.zeros_like(clip)
    for f, x in enumerate([2, 5, 8, 11, 14, 17, 20, 23, 26, 23, 20, 17, 14, 11, 8, 5]):
        back_and_forth[f, 12:18, x:x + 5] = COLOURS["red"]
    assert read_motion(back_and_forth).motion == "bouncing"
    assert read_motion(back_and_forth[:9]).motion == "right"  # the same path before its turn is a glide
    gone = clip.copy()
    gone[7] = 0
    assert read_motion(gone).motion is None and read_motion(clip[:1]).motion is None
    assert set(OTHER_MOTIONS) | set(DIRECTIONS) == set(MOTIONS)


def _square(angle_deg: float, jitter: tuple = (0, 0, 0, 0)) -> np.ndarray:
    """(32, 32, 3) a red 12-pixel square centred at (16, 16), turned by angle_deg, its four sides moved outwards by
    `jitter` pixels (left, right, top, bottom): a wobbling outline."""
    ys, xs = np.mgrid[0:32, 0:32] - 15.5
    a = np.deg2rad(angle_deg)
    u, v = xs * np.cos(a) + ys * np.sin(a), -xs * np.sin(a) + ys * np.cos(a)
    left, right, top, bottom = jitter
    inside = (u >= -6 - left) & (u <= 6 + right) & (v >= -6 - top) & (v <= 6 + bottom)
    frame = np.zeros((32, 32, 3), np.uint8)
    frame[inside] = COLOURS["red"]
    return frame


def test_a_wobbling_outline_is_not_a_turn_and_a_steady_turn_is():
    """The mask test alone read a still shape whose sides shift by a pixel from frame to frame as rotating; the
    tracked turn tells the two apart, in both senses of turning."""
    rng = np.random.default_rng(0)
    wobbling = np.stack([_square(0, tuple(rng.integers(-1, 2, 4))) for _ in range(16)])
    reading = read_motion(wobbling)
    assert reading.turn > 0.2  # the mask changes as much as a turn would change it ...
    assert reading.motion == "static" and abs(reading.turn_deg) < 30  # ... but nothing turns
    senses = []
    for sense in (1, -1):
        turning = np.stack([_square(sense * 5 * f) for f in range(16)])  # 75 degrees, one way
        degrees, consistency = tracked_turn(turning)
        assert abs(abs(degrees) - 75) <= 8 and consistency > 0.9
        assert read_motion(turning).motion == "rotating"
        senses.append(np.sign(degrees))
    assert senses[0] == -senses[1]
