"""In-betweens: `stillmotion interpolate`, its pipeline and its measurement, on tiny untrained components."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import tiny_checkpoint
from stillmotion.data.video_io import probe_video, write_video
from stillmotion.eval.interpolation import FOOTAGE, footage_clips, make_footage, score_filled, world_clips
from stillmotion.pipelines.inputs import read_input_video
from stillmotion.pipelines.interpolate import (
    METHODS,
    check_request,
    fill_diffusion,
    interpolate,
    interpolation_sampling,
    spread,
    windows,
)
from stillmotion.pipelines.sampling import SamplingConfig
from stillmotion.pipelines.text_to_video import load


def cli(*args):
    return subprocess.run([sys.executable, "-m", "stillmotion.cli", *args], capture_output=True, text=True,
                          timeout=300)


def _frames(n=5, size=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.mark.parametrize("frames, keys, expected", [
    (2, 4, [(0, 1)]), (4, 4, [(0, 3)]), (5, 4, [(0, 2), (2, 4)]), (7, 4, [(0, 3), (3, 6)]),
    (8, 4, [(0, 2), (2, 5), (5, 7)]), (4, 2, [(0, 1), (1, 2), (2, 3)])])
def test_windows_share_their_ends_cover_every_gap_and_hold_at_most_k_frames(frames, keys, expected):
    found = windows(frames, keys)
    assert found == expected
    assert found[0][0] == 0 and found[-1][1] == frames - 1
    assert all(a[1] == b[0] for a, b in zip(found[:-1], found[1:]))
    assert all(1 <= b - a <= keys - 1 for a, b in found)


def test_spread_places_frame_j_at_j_times_factor():
    frames = _frames(3)
    video, known = spread(frames, 4)
    assert video.shape == (9, 16, 16, 3) and known.tolist() == [True, False, False, False] * 2 + [True]
    assert np.array_equal(video[known], frames) and not video[~known].any()


class RecordingPipe:
    """Stands in for TextToVideo: records what each call was given and returns noise (nothing like the truth)."""

    frames, size, sampling = 16, 16, SamplingConfig()

    def __init__(self):
        self.calls = []

    def __call__(self, prompts, *, known_frames, frame_mask, frames, seed, **_):
        self.calls.append((list(prompts), frame_mask.clone(), frames, seed))
        g = torch.Generator().manual_seed(seed)
        return torch.rand(known_frames.shape, generator=g) * 2 - 1


def test_diffusion_windows_are_the_trained_layout_and_given_frames_come_back_exactly():
    pipe = RecordingPipe()
    clips = [_frames(5, seed=1), _frames(4, seed=2), _frames(2, seed=3)]
    outs = fill_diffusion(pipe, clips, 4, prompts=["a", "b", "c"], window_keys=4, batch=2)
    assert [len(o) for o in outs] == [17, 13, 5]
    for out, given in zip(outs, clips):
        assert np.array_equal(out[::4], given)  # bit for bit
        assert not np.array_equal(out[1], given[0])  # the network's frames, not a copy
    for _, mask, length, _ in pipe.calls:
        k = (length - 1) // 4 + 1
        trained = torch.zeros(length)
        trained[torch.linspace(0, length - 1, k).round().long()] = 1  # train/tasks.py's interpolate mask
        assert (mask == trained).all() and mask.shape[0] <= 2
    lengths = sorted(length for _, mask, length, _ in pipe.calls for _ in range(mask.shape[0]))
    assert lengths == [5, 9, 9, 13]  # 5 frames: 3 + 3 keys (not 4 + 2); 4: one window; 2: one
    assert sorted(p for prompts, *_ in pipe.calls for p in prompts) == ["a", "a", "b", "c"]  # each window its video's
    assert len({seed for *_, seed in pipe.calls}) == len(pipe.calls)  # each call its own noise


@pytest.mark.parametrize("method", METHODS)
def test_every_method_keeps_the_given_frames_and_makes_n_minus_1_times_factor_plus_1(tiny_multitask, method):
    frames = _frames(4)
    pipe = load(tiny_multitask) if method == "diffusion" else None
    options = {"sampling": interpolation_sampling(pipe).merged(steps=2)} if method == "diffusion" else {}
    for factor in (2, 3):
        out = interpolate(frames, factor, method, pipe, **options)
        assert out.shape == ((4 - 1) * factor + 1, 16, 16, 3) and out.dtype == np.uint8
        assert np.array_equal(out[::factor], frames)


def test_blend_is_the_crossfade_and_flow_tracks_a_moving_square():
    frames = np.zeros((3, 32, 32, 3), np.uint8)
    for j in range(3):
        frames[j, 10:18, 4 + 4 * j:12 + 4 * j] = 200  # 4 px right per given frame
    blend = interpolate(frames, 4, "blend")
    assert np.array_equal(blend[2], np.rint(0.5 * frames[0].astype(float) + 0.5 * frames[1]).astype(np.uint8))
    flow = interpolate(frames, 4, "flow")
    cx = np.nonzero(flow[2].max(-1) > 100)[1].mean()
    assert abs(cx - (7.5 + 2)) < 1.0  # halfway between the first two positions, where the square really is


@pytest.mark.parametrize("frames, factor, message", [(1, 4, "at least 2 frames"), (5, 1, "factor must be >= 2"),
                                                     (5, 0, "factor must be >= 2"), (2000, 4, "over the limit")])
def test_check_request_refuses(frames, factor, message):
    with pytest.raises(ValueError, match=message):
        check_request(frames, factor)


def test_score_filled_scores_only_the_filled_frames():
    truth = _frames(9, seed=4)
    out = truth.copy()
    out[1] = 255 - truth[1]  # a wrong in-between
    exact = score_filled([truth], [truth], 4)
    assert exact["psnr"] == float("inf") and exact["ssim"] == pytest.approx(1.0) and exact["frames"] == 6
    worse = score_filled([out], [truth], 4)
    assert worse["psnr"] < 20 and worse["ssim"] < 1.0
    keys_wrong = truth.copy()
    keys_wrong[::4] = 0  # the given frames are not scored
    assert score_filled([keys_wrong], [truth], 4)["psnr"] == float("inf")


def test_world_clips_end_on_a_keyframe_and_groups_differ_only_in_the_background():
    black = world_clips(3, group="black", factor=4)
    other = world_clips(3, group="other", factor=4)
    assert [v.shape for v, _ in black] == [(13, 32, 32, 3)] * 3
    for (b, _), (o, _) in zip(black, other):  # the same scenes: the objects cover the same pixels
        fb, fo = b.max(-1) > 150, o.max(-1) > 150  # brighter than any background
        assert fb.any() and (fb & fo).sum() / (fb | fo).sum() > 0.9
    assert all(v[0].reshape(-1, 3).min(0).sum() == 0 for v, _ in black)
    assert any(v[0].reshape(-1, 3).min(0).sum() > 0 for v, _ in other)


def test_footage_is_written_with_pyav_and_read_back_like_a_users_file(tmp_path):
    clip = make_footage("pan", frames=9, seed=0)
    assert clip.shape == (9, 120, 160, 3) and clip.std() > 20  # textured, not flat
    assert np.abs(clip[1].astype(int) - clip[0]).mean() > 2  # it moves
    clips = footage_clips(tmp_path, size=32, frames=9)
    assert [name for name, *_ in clips] == list(FOOTAGE)
    assert all((tmp_path / f"{name}.mp4").is_file() and v.shape == (9, 32, 32, 3) for name, v, _ in clips)
    assert "160x120 -> centre crop 120x120 -> resized to 32x32" in clips[0][2]


# ------------------------------------------------------------------------------------------- the command

def _video(path, n=5, seed=0):
    """A small moving-square clip written with PyAV, 24x20 so the command must crop and resize it."""
    frames = np.zeros((n, 20, 24, 3), np.uint8)
    for j in range(n):
        frames[j, 6:12, 2 + 3 * j:8 + 3 * j] = (220, 40, 40)
    return write_video(path, frames, fps=6)


@pytest.mark.parametrize("method", METHODS)
def test_command_keeps_every_given_frame_bit_for_bit(tiny_multitask, tmp_path, method):
    src = _video(tmp_path / "in.mp4")
    out = tmp_path / "out.npy"
    r = cli("interpolate", str(src), "--factor", "3", "--method", method, "--out", str(out), "--model",
            tiny_multitask, "--steps", "2", "--threads", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "24x20 -> centre crop 20x20 -> resized to 16x16" in r.stdout
    given, _ = read_input_video(src, 16)  # what the command read
    video = np.load(out)
    assert video.shape == ((5 - 1) * 3 + 1, 16, 16, 3) and video.dtype == np.uint8
    assert np.array_equal(video[::3], given)


def test_command_writes_a_video_at_factor_times_the_frame_rate(tiny_multitask, tmp_path):
    src = _video(tmp_path / "in.mp4", n=4)
    out = tmp_path / "smooth.mp4"
    r = cli("interpolate", str(src), "--out", str(out), "--model", tiny_multitask, "--steps", "2", "--scale", "2",
            "--threads", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    info = probe_video(out)
    assert (info.num_frames, info.width, info.fps) == (13, 32, 24)
    assert "13 frames of 16x16 at 24 fps: the 4 given frames kept, 9 filled by diffusion" in r.stdout


def _corrupt(tmp_path):
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    return path


BAD = [  # (name, how to make the input, extra args, what the one line says)
    ("missing file", lambda p: p / "nope.mp4", [], "not found"),
    ("corrupt video", _corrupt, [], "corrupt"),
    ("one-frame video", lambda p: _video(p / "one.mp4", n=1), [], "at least 2 frames"),
    ("factor 0", lambda p: _video(p / "in.mp4"), ["--factor", "0"], "expected a whole number >= 2, got 0"),
    ("factor 1", lambda p: _video(p / "in.mp4"), ["--factor", "1"], "expected a whole number >= 2, got 1"),
    ("too long an output", lambda p: _video(p / "in.mp4"), ["--factor", "2000"], "over the limit"),
    ("an image", lambda p: p / "x.png", [], "is an image"),
    ("window of one frame", lambda p: _video(p / "in.mp4"), ["--window", "1"], "expected a whole number >= 2"),
    ("unwritable output", lambda p: _video(p / "in.mp4"), ["--out", "x.png"], "cannot write"),
]


@pytest.mark.parametrize("name, make, extra, message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_stops_with_one_line_before_any_work(tiny_multitask, tmp_path, name, make, extra, message):
    src = make(tmp_path)
    if name == "an image":
        from PIL import Image

        Image.new("RGB", (16, 16)).save(src)
    out = tmp_path / "out" / "smooth.mp4"
    args = ["--out", str(out), *extra] if "--out" not in extra else extra
    r = cli("interpolate", str(src), "--model", tiny_multitask, "--steps", "2", *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stillmotion: error:") and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr and "sampling" not in r.stderr and r.stdout == ""
    assert not (tmp_path / "out").exists()


def test_a_model_not_trained_for_in_betweens_is_refused_but_flow_needs_no_model_task(tmp_path):
    t2v_only = str(tiny_checkpoint(tmp_path / "t2v", tasks={"t2v": 1.0}))
    src = _video(tmp_path / "in.mp4")
    r = cli("interpolate", str(src), "--model", t2v_only, "--out", str(tmp_path / "x.mp4"))
    assert r.returncode == 2 and "not trained for filling in between keyframes" in r.stderr
    assert not (tmp_path / "x.mp4").exists()
    r = cli("interpolate", str(src), "--model", t2v_only, "--method", "flow", "--out", str(tmp_path / "x.mp4"))
    assert r.returncode == 0, r.stderr


def test_experiment_writes_readme_report_and_gallery(tiny_multitask, tmp_path):
    out = tmp_path / "exp"
    r = cli("experiment", "interpolate", "--model", tiny_multitask, "--n", "2", "--steps", "2", "--threads", "1",
            "--out", str(out))
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "report.json").read_text())
    assert set(report["world"]) == {"black", "other", "pooled"}
    assert set(report["world"]["pooled"]) >= {"diffusion", "diffusion + caption", "flow", "blend"}
    assert set(report["footage"]) == {"clips", "pooled", *FOOTAGE}
    assert report["world"]["black"]["flow"]["frames"] == 2 * 3  # tiny model: 8 frames -> keys 0, 4; 3 filled
    readme = (out / "README.md").read_text()
    assert "| black | diffusion |" in readme and "| pooled | flow |" in readme and "## Protocol" in readme
    assert probe_video(out / "gallery.gif").num_frames == 5
