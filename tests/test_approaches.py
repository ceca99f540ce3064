"""`stillmotion experiment approaches` end to end on the tiny preset: every arm trains, is judged and reported."""

import json

import pytest

pytest.importorskip("cv2")


def test_every_arm_trains_and_lands_in_the_report(tmp_path):
    from stillmotion.cli import main

    out = tmp_path / "approaches"
    code = main(["experiment", "approaches", "--preset", "shapes-tiny", "--steps", "2", "--n", "4", "--n-curve", "2",
                 "--points", "2", "--pools", "8", "--sample-steps", "2", "--threads", "1", "--out", str(out)])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert list(report["arms"]) == ["spacetime", "flow-consistency", "motion-hint", "joint-image-video", "keyframes",
                                    "inflated (8)", "scratch (8)"]
    for name, arm in report["arms"].items():
        assert 0 <= arm["colour_and_direction_accuracy"] <= 1 and arm["fvd"] >= 0 and arm["fjd"] >= 0, name
    assert len(report["arms"]["spacetime"]["curve"]) == 2  # judged after each of the 2 segments
    assert report["arms"]["inflated (8)"]["distinct_clips"] == 8
    keyframes = report["arms"]["keyframes"]
    assert {"diffusion", "flow", "crossfade"} <= set(keyframes["interpolator on real keyframes"])
    assert "colour_accuracy" in keyframes["keyframes + flow in-betweens"]
    assert "colour_accuracy" in report["arms"]["motion-hint"]["with the direction as hint"]
    for name in ("README.md", "time.png", "data.png", "grid.gif", "grid.png"):
        assert (out / name).is_file(), name
    assert "| inflated (8) |" in (out / "README.md").read_text()
