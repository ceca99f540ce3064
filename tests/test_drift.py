"""The drift metric (eval/drift.py) on clips built to have, or not have, each kind of drift and seam."""

import math
import subprocess
import sys

import numpy as np
import pytest

from stillmotion.data.shapes import COLOURS, ShapesWorld, labels_from_attributes
from stillmotion.data.video_io import write_video
from stillmotion.eval.drift import drift_lines, drift_report, segment_bounds, summarize


def _glide(frames: int = 32, colour: str = "red", motion: str = "right", background: str = "black") -> np.ndarray:
    """(F, 32, 32, 3): one square crossing the canvas at a constant speed."""
    world = ShapesWorld(size=32, frames=frames, p_two=0.0)
    labels = labels_from_attributes(colour, "square", motion, "fast", background=background)
    return world.render(labels)


def test_constant_clip_reads_zero_drift():
    clip = np.repeat(_glide()[:1], 32, axis=0)  # the first frame, held
    report = drift_report(clip, seams=[16])
    assert report["colour_kept"] and report["direction_kept"] and report["seam_ok"]
    assert report["max_colour_distance"] == 0 and report["max_size_change"] == 0 and report["max_speed_change"] == 0
    assert [s["direction"] for s in report["segments"]] == ["static", "static"]
    assert report["seams"]["seam_warping_error"] == 0 and report["seams"]["inside_warping_error"] == 0


def test_a_steady_glide_keeps_colour_size_speed_and_direction():
    report = drift_report(_glide(), seams=[16])
    assert report["colour_kept"] and report["direction_kept"]
    assert [s["direction"] for s in report["segments"]] == ["right", "right"]
    assert report["max_size_change"] < 0.05 and report["max_speed_change"] < 0.05
    assert report["segments"][0]["speed"] == pytest.approx(0.5 * 32 / 31, rel=0.05)  # fast: half the canvas
    assert report["seam_ok"]


def test_a_colour_change_halfway_is_flagged():
    clip = _glide()
    recoloured = _glide(colour="blue")
    clip[16:] = recoloured[16:]
    report = drift_report(clip, seams=[16])
    assert not report["colour_kept"]
    assert [s["colour"] for s in report["segments"]] == ["red", "blue"]
    assert report["max_colour_distance"] == pytest.approx(np.linalg.norm(np.subtract(COLOURS["red"], COLOURS["blue"])),
                                                          rel=0.05)
    assert report["max_size_change"] < 0.05  # only the colour drifted


def test_a_jump_at_a_seam_is_found_and_a_smooth_boundary_is_not():
    smooth = _glide()
    jumped = smooth.copy()
    jumped[16:] = np.roll(smooth[16:], 8, axis=1)  # the object leaps 8 px down at frame 16
    bad, good = drift_report(jumped, seams=[16]), drift_report(smooth, seams=[16])
    assert bad["seams"]["seam_ratio"] > 2 and not bad["seam_ok"]
    assert good["seams"]["seam_ratio"] < 1.5 and good["seam_ok"]
    assert bad["seams"]["per_seam"][0] > 2 * good["seams"]["per_seam"][0]
    # a seam somewhere else does not see the jump: it is scored where it is
    assert drift_report(jumped, seams=[8])["seams"]["seam_ratio"] < bad["seams"]["seam_ratio"]


def test_size_and_speed_drift_are_measured():
    clip = _glide(frames=32)
    slow = _glide(frames=64)[:32]  # the same path over 64 frames: half the speed
    clip[16:] = slow[16:]
    report = drift_report(clip, seams=[16])
    assert report["segments"][1]["speed_change"] == pytest.approx(-0.5 * report["segments"][0]["speed"], rel=0.1)
    world = ShapesWorld(size=32, frames=32, p_two=0.0)
    big, small = (world.render(labels_from_attributes("red", "square", "static", size=s)) for s in (0.4, 0.2))
    grown = np.concatenate([small[:16], big[16:]])
    assert drift_report(grown, seams=[16])["segments"][1]["size_change"] == pytest.approx(3.0, rel=0.2)  # 4x area


def test_a_vanished_object_is_not_kept():
    clip = _glide()
    clip[20:] = 0
    report = drift_report(clip, seams=[16])
    assert report["segments"][1]["visible"] == pytest.approx(4 / 16)
    assert not report["direction_kept"]  # the probe reads no direction for an object that vanished


def test_room_says_whether_the_first_velocity_still_fits_the_canvas():
    glide = _glide(frames=32)  # the world keeps the whole path on the canvas: every segment has room
    assert [s["room"] for s in drift_report(glide, seams=[16])["segments"]] == [True, True]
    short = _glide(frames=16)  # the same path in 16 frames, then held where it ended, at the right
    stuck = np.concatenate([short, np.repeat(short[-1:], 16, axis=0)])
    report = drift_report(stuck, seams=[16])
    assert [s["room"] for s in report["segments"]] == [True, False]
    assert report["segments"][1]["direction"] == "static"
    again = np.concatenate([short, short])  # back at the left: room, and it goes right again
    still = ShapesWorld(size=32, frames=16, p_two=0.0).render(
        labels_from_attributes("red", "square", "static", start=(0.2, 0.5)))
    stopped = np.concatenate([short, still])  # room to go on, but it stands still
    reports = [report, drift_report(again, seams=[16]), drift_report(stopped, seams=[16])]
    summary = summarize(reports, ["red"] * 3, ["right"] * 3)
    assert summary["later_windows_with_room"] == pytest.approx(2 / 3) and summary["direction_kept_with_room"] == 0.5


def test_non_black_backgrounds_read_like_black():
    report = drift_report(_glide(background="gradient"), seams=[16])
    assert report["colour_kept"] and report["direction_kept"]
    assert [s["colour"] for s in report["segments"]] == ["red", "red"]


def test_segments_follow_the_seams_or_the_window():
    assert segment_bounds(64, None, 16) == [(0, 16), (16, 32), (32, 48), (48, 64)]
    assert segment_bounds(64, [16, 28, 40, 52]) == [(0, 16), (16, 28), (28, 40), (40, 52), (52, 64)]
    for bad in ([0], [63], [16, 17]):
        with pytest.raises(ValueError, match="seams"):
            segment_bounds(64, bad)


def test_summary_counts_against_the_asked_colour_and_direction():
    right, left = drift_report(_glide(), seams=[16]), drift_report(_glide(motion="left"), seams=[16])
    s = summarize([right, left], ["red", "red"], ["right", "right"])
    assert s["n"] == 2 and s["colour_kept_every_window"] == 1.0
    assert s["direction_kept"] == 0.5 and s["direction_kept_every_window"] == 0.5
    assert [w["direction_ok"] for w in s["per_window"]] == [0.5, 0.5]
    assert s["seam_ok"] == 1.0 and math.isfinite(s["seam_ratio"])
    assert summarize([right], ["blue"], ["right"])["colour_kept_every_window"] == 0.0


def test_evaluate_drift_command(tmp_path):
    clip = _glide()
    clip[16:] = np.roll(clip[16:], 8, axis=1)
    write_video(tmp_path / "long.gif", clip, fps=10)  # 100 ms a frame: GIF timing is in 10 ms steps
    r = subprocess.run([sys.executable, "-m", "stillmotion.cli", "evaluate", "--drift", str(tmp_path / "long.gif"),
                        "--seams", "16", "--out", str(tmp_path / "eval")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "frames  16-31   colour red" in r.stdout and "over the 1.5x bar" in r.stdout
    assert (tmp_path / "eval" / "drift.json").is_file()
    assert drift_lines(drift_report(clip, seams=[16]))[-1].startswith("seams: warping error")


@pytest.mark.parametrize("args, message", [
    (["--drift", "missing.mp4"], "missing.mp4"),
    (["--drift", "long.gif", "--seams", "16,x"], "--seams '16,x'"),
    (["--drift", "long.gif", "--seams", "31"], "seams must lie in 2 .. 30"),
])
def test_evaluate_drift_bad_inputs(tmp_path, monkeypatch, capsys, args, message):
    from stillmotion.cli import main

    monkeypatch.chdir(tmp_path)
    write_video(tmp_path / "long.gif", _glide(), fps=10)
    assert main(["evaluate", *args, "--out", "eval"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("stillmotion: error:") and message in err
    assert not (tmp_path / "eval" / "drift.json").exists()
