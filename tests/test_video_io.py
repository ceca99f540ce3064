"""Video files in and out: round trips, frame selection, and errors that name the file."""

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from stillmotion.data.video_io import (
    VideoReadError,
    VideoWriteError,
    contact_sheet,
    probe_video,
    read_video,
    to_float,
    to_uint8,
    video_grid,
    write_video,
)


def smooth_clip(frames=16, h=32, w=48):
    """A smooth moving colour pattern (F, H, W, 3) uint8; frame i has mean brightness rising with i."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    out = []
    for i in range(frames):
        r = 128 + 90 * np.sin(x / 9 + i / 3)
        g = 128 + 90 * np.cos(y / 7 - i / 4)
        b = np.full_like(x, 20 + 12 * i)
        out.append(np.stack([r, g, b], -1))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def test_float_uint8_round_trip_is_exact():
    frames = np.arange(256, dtype=np.uint8).repeat(3).reshape(1, 16, 16, 3)
    x = to_float(frames)
    assert x.shape == (3, 1, 16, 16) and x.dtype == torch.float32
    assert x.min() == -1 and x.max() == 1
    assert np.array_equal(to_uint8(x), frames)
    out = to_uint8(torch.stack([x, -x]))                               # a batch (B, C, F, H, W)
    assert out.shape == (2, 1, 16, 16, 3) and out.dtype == np.uint8
    assert np.array_equal(out[1], 255 - frames)
    loud = torch.tensor([-5.0, -1.0, 0.0, 1.0, 5.0]).view(1, 1, 1, 5)  # (C=1, F, H, W): clamped, grey -> RGB
    assert to_uint8(loud)[0, 0, :, 0].tolist() == [0, 0, 128, 255, 255]


@pytest.mark.parametrize("suffix, mean_err", [(".mp4", 4.0), (".gif", 6.0)])
def test_round_trip(tmp_path, suffix, mean_err):
    clip = smooth_clip()
    path = write_video(tmp_path / f"clip{suffix}", clip, fps=8)
    back = read_video(path)
    assert back.shape == clip.shape
    err = np.abs(back.astype(int) - clip.astype(int))
    assert err.mean() < mean_err and np.percentile(err, 99) < 40
    info = probe_video(path)
    assert (info.width, info.height, info.num_frames) == (48, 32, 16)
    assert abs(info.fps - 8) < 0.5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left behind


def test_write_float_tensor_scale_and_odd_size(tmp_path):
    video = to_float(smooth_clip(4, 15, 17))                         # (3, 4, 15, 17) in [-1, 1]
    back = read_video(write_video(tmp_path / "odd.mp4", video, fps=8, scale=3))
    assert back.shape == (4, 46, 52, 3)                              # 45x51 padded to even for yuv420p
    back = read_video(write_video(tmp_path / "odd.gif", video, fps=8, scale=2))
    assert back.shape == (4, 30, 34, 3)


def test_frame_selection(tmp_path):
    clip = np.zeros((16, 32, 32, 3), np.uint8)
    clip[..., 2] = (np.arange(16) * 15)[:, None, None]                # frame i has blue level 15 * i
    path = write_video(tmp_path / "ramp.mp4", clip, fps=8)           # 2 seconds
    index = lambda v: np.rint(v[..., 2].mean(axis=(1, 2)) / 15).astype(int)
    assert list(index(read_video(path))) == list(range(16))
    assert list(index(read_video(path, fps=4))) == list(range(0, 16, 2))
    assert list(index(read_video(path, fps=16))) == [i // 2 for i in range(32)]
    assert list(index(read_video(path, stride=3))) == list(range(0, 16, 3))
    assert list(index(read_video(path, num_frames=5))) == list(range(5))
    assert list(index(read_video(path, start=1.0))) == list(range(8, 16))
    assert list(index(read_video(path, fps=4, stride=2, num_frames=3))) == [0, 4, 8]


def test_bad_files_raise_naming_the_file(tmp_path):
    missing = tmp_path / "missing.mp4"
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    good = write_video(tmp_path / "good.mp4", smooth_clip(), fps=8).read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good[: len(good) * 6 // 10])
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    zero = tmp_path / "zero_frames.mp4"                               # a valid container with no frames
    with av.open(str(zero), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        container.start_encoding()
    for bad in (missing, text, truncated, empty, zero):
        with pytest.raises(VideoReadError, match=bad.name):
            read_video(bad)
    with pytest.raises(VideoReadError, match="not found"):
        probe_video(missing)


def test_write_errors(tmp_path):
    with pytest.raises(VideoWriteError, match="use one of"):
        write_video(tmp_path / "clip.avi", smooth_clip(2), fps=8)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(VideoWriteError, match="folder"):
        write_video(blocker / "clip.mp4", smooth_clip(2), fps=8)


def test_grid_and_contact_sheet():
    clips = [smooth_clip(16), smooth_clip(8)]
    grid = video_grid(clips, ncols=2, pad=1)
    assert grid.shape == (16, 32, 97, 3)
    assert np.array_equal(grid[12, :, 49:], clips[1][-1])             # the short clip holds its last frame
    sheet = contact_sheet(clips, ["first", "second"], scale=2, pad=2)
    assert sheet.width == 16 * (96 + 2) + 2 and sheet.height > 2 * 64
    batch = torch.stack([to_float(c) for c in (clips[0], clips[0])])  # (B, C, F, H, W) works too
    assert contact_sheet(batch, scale=1, max_frames=4).width == 4 * (48 + 2) + 2


def test_read_gif_written_elsewhere(tmp_path):
    from PIL import Image

    path = Path(tmp_path) / "pil.gif"
    images = [Image.fromarray(f) for f in smooth_clip(5)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)
    assert read_video(path).shape == (5, 32, 48, 3)
    assert read_video(path, fps=20).shape[0] == 10


def test_gif_keeps_still_frames(tmp_path):
    """GIF encoders merge identical neighbouring frames; reading must give back every frame of a still stretch."""
    video = np.zeros((8, 16, 16, 3), np.uint8)
    video[:, 4:12, 4:12] = 200
    video[5:, 0, 0] = 90  # frames 0-4 identical, 5-7 identical
    write_video(tmp_path / "still.gif", video)
    back = read_video(tmp_path / "still.gif")
    assert back.shape == video.shape and np.array_equal(back, video)
