"""`stillmotion experiment approaches` end to end on the tiny preset: every arm trains with its own settings, is
judged, and the report holds what judging its saved run gives."""

import json

import pytest

pytest.importorskip("cv2")


def _saved(train: dict, key: str):
    """An option as config.json's "train" entry keeps it: model.FIELD is a field of the saved U-Net config."""
    section, dot, name = key.partition(".")
    return train[section][name] if dot else train.get(key)


def test_every_arm_trains_and_lands_in_the_report(tmp_path):
    from stillmotion import checkpoint
    from stillmotion.cli import main
    from stillmotion.eval.prompt_following import evaluate_prompt_following
    from stillmotion.experiments.approaches import _run_name, make_arms
    from stillmotion.pipelines.text_to_video import load
    from stillmotion.train.config import make_config

    out = tmp_path / "approaches"
    code = main(["experiment", "approaches", "--preset", "shapes-tiny", "--steps", "2", "--n", "4", "--n-curve", "2",
                 "--points", "2", "--pools", "8", "--sample-steps", "2", "--threads", "1", "--out", str(out)])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert list(report["arms"]) == ["spacetime", "flow-consistency", "motion-hint", "motion-planner",
                                    "joint-image-video", "keyframes", "inflated (8)", "scratch (8)"]
    for name, arm in report["arms"].items():
        colour, direction, both = (arm[f"{k}_accuracy"] for k in ("colour", "direction", "colour_and_direction"))
        assert both <= min(colour, direction) and arm["fvd"] >= 0 and arm["fjd"] >= 0, name
        assert all((x * 4).is_integer() for x in (colour, direction, both)), name  # hits out of n = 4 clips
    # each arm's run got its own settings (overrides, and the image model the inflated arm starts from) ...
    for arm in make_arms([8], frames=make_config("shapes-tiny").frames):
        for stage in arm.stages:
            config = checkpoint.load_config(out / "runs" / _run_name(arm, stage))
            assert config["record"]["finished"], (arm.name, stage.name)
            assert all(_saved(config["train"], k) == v for k, v in stage.overrides.items()), (arm.name, stage.name)
            start = str(out / "runs" / "image") if stage.init_from else None
            assert config["train"]["init_from"] == start, (arm.name, stage.name)
    # ... and the report holds what judging its saved run gives again
    saved = load(out / "runs" / "spacetime-video")
    again = evaluate_prompt_following(saved, n=4, seed=0, split="canonical", sampling=saved.sampling.merged(steps=2),
                                      progress=False)
    for key in ("colour_accuracy", "direction_accuracy", "colour_and_direction_accuracy"):
        assert report["arms"]["spacetime"][key] == again[key], key
    assert len(report["arms"]["spacetime"]["curve"]) == 2  # judged after each of the 2 segments
    assert report["arms"]["inflated (8)"]["distinct_clips"] == 8
    keyframes = report["arms"]["keyframes"]
    assert {"diffusion", "flow", "crossfade"} <= set(keyframes["interpolator on real keyframes"])
    assert "colour_accuracy" in keyframes["keyframes + flow in-betweens"]
    assert "colour_accuracy" in report["arms"]["motion-hint"]["with the direction as hint"]
    for name in ("README.md", "time.png", "data.png", "grid.gif", "grid.png"):
        assert (out / name).is_file(), name
    assert "| inflated (8) |" in (out / "README.md").read_text()
    readme = (out / "README.md").read_text()
    assert "stillmotion experiment approaches --preset shapes-tiny" in readme  # the command that made it

    # --merge: redo one arm, keep the others (and a reading written beside the report)
    (out / "reading.md").write_text("## Reading\n\nWhat the numbers say.")
    report["arms"]["spacetime"]["colour_accuracy"] = -1.0  # a marker: a kept arm keeps its numbers
    (out / "report.json").write_text(json.dumps(report))
    args = ["experiment", "approaches", "--preset", "shapes-tiny", "--steps", "2", "--n", "4", "--n-curve", "2",
            "--points", "2", "--pools", "8", "--sample-steps", "2", "--threads", "1", "--out", str(out)]
    assert main([*args, "--arms", "motion-planner", "--merge"]) == 0
    merged = json.loads((out / "report.json").read_text())
    assert list(merged["arms"]) == list(report["arms"])
    assert merged["arms"]["spacetime"]["colour_accuracy"] == -1.0
    assert len(merged["commands"]) == 2
    assert "What the numbers say." in (out / "README.md").read_text()
    assert main([*args, "--arms", "motion-planner", "--merge", "--seed", "1"]) == 2  # another protocol: an error
    assert json.loads((out / "report.json").read_text()) == merged  # and the report is untouched
