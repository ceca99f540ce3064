"""Image-to-video: `stillmotion animate`, its pipeline and its measurement, on tiny untrained components."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import tiny_checkpoint
from stillmotion.data.video_io import read_video, to_uint8
from stillmotion.eval.animation import animation_scenes, score_animation
from stillmotion.pipelines.animate import animate, first_frame_known
from stillmotion.pipelines.sampling import SamplingConfig
from stillmotion.pipelines.text_to_video import load


def cli(*args):
    return subprocess.run([sys.executable, "-m", "stillmotion.cli", *args], capture_output=True, text=True,
                          timeout=300)


def test_first_frame_known_puts_the_image_at_frame_0_only():
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    known, mask = first_frame_known(image, 2, 5)
    assert known.shape == (2, 3, 5, 16, 16) and mask.shape == (2, 5)
    assert mask[:, 0].eq(1).all() and mask[:, 1:].eq(0).all()
    assert np.array_equal(to_uint8(known[0, :, :1])[0], image)  # (3, 1, H, W) back to the uint8 image
    assert known[:, :, 1:].eq(0).all()


def test_animate_returns_each_image_exactly_as_frame_0(tiny_multitask):
    pipe = load(tiny_multitask)
    images = np.random.default_rng(1).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    video = animate(pipe, images, ["a red circle moving left", "a blue square moving up"],
                    sampling=pipe.sampling.merged(steps=2), progress=False)
    assert video.shape == (2, 3, 8, 16, 16)
    frames = to_uint8(video)  # (2, F, H, W, 3)
    assert np.array_equal(frames[:, 0], images)
    assert not np.array_equal(frames[:, 1], images)  # the rest is drawn, not copied


def test_animate_refuses_mismatched_batches(tiny_multitask):
    pipe = load(tiny_multitask)
    with pytest.raises(ValueError, match="2 images for 1 prompts"):
        animate(pipe, np.zeros((2, 16, 16, 3), np.uint8), ["a red circle"], sampling=pipe.sampling.merged(steps=1),
                progress=False)


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "I;16"])
def test_animate_command_takes_any_image_mode_and_size(tiny_multitask, tmp_path, mode):
    rgb = np.random.default_rng(2).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    image = Image.fromarray(rgb).convert("RGBA" if mode == "RGBA" else "L")
    if mode == "P":
        image = Image.fromarray(rgb).convert("P")
    elif mode == "I;16":
        image = Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
    path = tmp_path / f"in-{mode.replace(';', '')}.png"
    image.save(path)
    out = tmp_path / "clip.gif"
    r = cli("animate", str(path), "a red circle moving left", "--model", tiny_multitask, "--steps", "2",
            "--out", str(out), "--scale", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "50x30 -> centre crop 30x30 -> resized to 16x16" in r.stdout
    assert read_video(out).shape[1:] == (16, 16, 3)


def test_a_model_not_trained_for_image_to_video_is_refused(tmp_path):
    t2v_only = tiny_checkpoint(tmp_path / "t2v", tasks={"t2v": 1.0})
    Image.new("RGB", (16, 16)).save(tmp_path / "in.png")
    r = cli("animate", str(tmp_path / "in.png"), "a red circle", "--model", str(t2v_only), "--steps", "1",
            "--out", str(tmp_path / "x.gif"))
    assert r.returncode == 2 and "not trained for image-to-video" in r.stderr
    assert not (tmp_path / "x.gif").exists()
    r = cli("animate", str(tmp_path / "in.png"), "a red circle", "--model", str(t2v_only), "--steps", "1",
            "--out", str(tmp_path / "x.gif"), "--allow-untrained-task", "--quiet")
    assert r.returncode == 0, r.stderr


BAD = [
    (["missing.png", "a red circle"], "no such file"),
    (["broken.png", "a red circle"], "is not an image Pillow can read"),
    (["in.png", "a red circle", "--n", "0"], "expected a positive integer"),
    (["in.png", "a red circle", "--out", "clip.txt"], "use a .mp4, .gif, .webm or .png"),
    (["in.png", "a red circle", "--frames", "0"], "expected a positive integer"),
]


@pytest.mark.parametrize("args,message", BAD)
def test_bad_inputs_stop_with_one_line(tiny_multitask, tmp_path, args, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (16, 16)).save(tmp_path / "in.png")
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    r = cli("animate", *args, "--model", tiny_multitask, "--steps", "1")
    assert r.returncode == 2
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "clip.mp4").exists()


def test_scenes_cover_every_colour_and_direction_and_repeat_exactly():
    scenes = animation_scenes(64, seed=0, group="other")
    pairs = {(labels.objects[0].colour, labels.objects[0].motion) for labels, _ in scenes}
    assert len(pairs) == 64
    assert {labels.background for labels, _ in scenes} == {"gray", "gradient", "noise"}
    again = animation_scenes(64, seed=0, group="other")
    assert [p for _, p in scenes] == [p for _, p in again] and scenes[5][0] == again[5][0]
    assert [p for _, p in animation_scenes(8, seed=1)] != [p for _, p in animation_scenes(8, seed=0)]


class StillPipe:
    """A stand-in model that holds the given first frame still: it keeps the image and never moves."""
    frames, size, sampling = 16, 32, SamplingConfig()

    def __call__(self, prompts, *, known_frames, frame_mask, **kwargs):
        return known_frames[:, :, :1].expand(-1, -1, self.frames, -1, -1).clone()


def test_the_score_fails_a_model_that_does_not_move():
    report = score_animation(StillPipe(), n=8, progress=False)
    assert report["first_frame_psnr_min"] == float("inf") and report["colour"] == 1.0
    assert report["direction"] == 0.0 and report["probe_on_world_clips"]["direction"] == 1.0
