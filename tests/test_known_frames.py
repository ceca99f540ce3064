"""Known frames from files (image-to-video, continuing a video, keyframes): masks, loading, errors, generation."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_checkpoint
from stillmotion.data.shapes import ShapesWorld, labels_from_attributes
from stillmotion.data.video_io import read_video, to_uint8, write_video
from stillmotion.pipelines.known_frames import keep_mask, load_known_frames


@pytest.mark.parametrize("keep, known", [
    ("first", [0]), ("first:3", [0, 1, 2]), ("every:3", [0, 3, 6, 7]), ("every:7", [0, 7]),
])
def test_keep_specs(keep, known):
    assert torch.nonzero(keep_mask(keep, 8)).flatten().tolist() == known


@pytest.mark.parametrize("keep", ["last", "first:0", "first:8", "every:1", "every:x", "every"])
def test_bad_keep_specs(keep):
    with pytest.raises(ValueError, match="is not one of"):
        keep_mask(keep, 8)


@pytest.fixture()
def clip():
    return ShapesWorld(size=32, frames=8).render(labels_from_attributes("red", "square", "right", "fast"))


def test_load_from_a_video_and_an_image(tmp_path, clip):
    write_video(tmp_path / "clip.gif", clip)
    known, mask = load_known_frames(tmp_path / "clip.gif", "every:3", 8, 32)
    assert known.shape == (1, 3, 8, 32, 32) and mask.tolist() == [[1, 0, 0, 1, 0, 0, 1, 1]]
    frames = to_uint8(known[0])
    assert np.array_equal(frames[[0, 3, 6, 7]], clip[[0, 3, 6, 7]])  # a GIF at the model's size is lossless
    assert not frames[[1, 2, 4, 5]].any()  # unknown frames are zeros (-1), never read
    Image.fromarray(np.repeat(np.repeat(clip[2], 4, 0), 4, 1)).save(tmp_path / "big.png")  # 128x128
    known, mask = load_known_frames(tmp_path / "big.png", "first", 8, 32)
    assert mask.tolist() == [[1, 0, 0, 0, 0, 0, 0, 0]]
    assert np.abs(to_uint8(known[0])[0].astype(int) - clip[2]).mean() < 8  # resized back to 32x32


def test_clear_errors(tmp_path, clip):
    write_video(tmp_path / "short.gif", clip[:3])
    with pytest.raises(ValueError, match="has 3 frames; keep 'every:3' needs 8"):
        load_known_frames(tmp_path / "short.gif", "every:3", 8, 32)
    Image.fromarray(clip[0]).save(tmp_path / "a.png")
    with pytest.raises(ValueError, match="can only be the first frame"):
        load_known_frames(tmp_path / "a.png", "first:2", 8, 32)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_known_frames(tmp_path / "missing.mp4", "first", 8, 32)


def test_generate_keeps_the_given_keyframes_from_the_cli(tmp_path):
    # an untrained tiny U-Net (perturbed, so it reads the known frames) whose config says it learned interpolation
    model = tiny_checkpoint(tmp_path / "run", frames=4, size=16, tasks={"t2v": 1, "interpolate": 1}, perturb=0.05)
    small = ShapesWorld(size=16, frames=4).render(labels_from_attributes("red", "square", "right", "fast"))
    write_video(tmp_path / "keys.gif", small)
    r = subprocess.run([sys.executable, "-m", "stillmotion.cli", "generate", "a red square moving right", "--model",
                        str(model), "--frames-from", str(tmp_path / "keys.gif"), "--keep", "every:3", "--steps", "2",
                        "--scale", "1", "--out", str(tmp_path / "out.gif"), "--quiet"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = read_video(tmp_path / "out.gif")
    assert out.shape == (4, 16, 16, 3)
    assert np.array_equal(out[[0, 3]], small[[0, 3]])  # the keyframes come back exactly
