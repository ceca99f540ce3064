"""Long videos (pipelines/extend.py, `stillmotion extend`, `generate --frames` past the model's length) with a
tiny untrained 8-frame model: window layout, given frames kept exactly, exact lengths, bad inputs at the door."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import tiny_checkpoint
from stillmotion.cli import main
from stillmotion.data.video_io import read_video, to_float, to_uint8, write_video
from stillmotion.pipelines.extend import check_extend, extend, seams, window_plan, window_seed
from stillmotion.pipelines.text_to_video import load

PROMPT = "a red circle moving left"


@pytest.fixture(scope="module")
def pipe(tiny_multitask):
    torch.set_num_threads(1)
    return load(tiny_multitask)


class Recorder:
    """A pipeline that records what every call was given (and passes it on)."""

    def __init__(self, pipe):
        self.pipe, self.calls = pipe, []

    def __getattr__(self, name):
        return getattr(self.pipe, name)

    def __call__(self, prompts, **kwargs):
        self.calls.append(kwargs)
        return self.pipe(prompts, **kwargs)


def _input(frames: int = 5, size: int = 16) -> np.ndarray:
    """(F, size, size, 3) uint8 of few colours (a GIF keeps them exactly): a red square stepping right."""
    video = np.zeros((frames, size, size, 3), np.uint8)
    for i in range(frames):
        video[i, 5:10, 1 + i:6 + i] = (220, 40, 40)
    return video


@pytest.mark.parametrize("given, frames, window, context", [(16, 64, 16, 4), (16, 64, 16, 8), (5, 20, 8, 4),
                                                             (3, 20, 8, 4), (8, 9, 8, 1)])
def test_windows_tile_the_new_frames(given, frames, window, context):
    plan = window_plan(given, frames, window, context)
    made = given
    for start, known in plan:
        assert start + known == made  # each window knows the last `known` frames made so far ...
        assert known == min(context, made)
        made += window - known        # ... and adds the rest of its full-length window
    assert made >= frames > made - (window - plan[-1][1])  # the last window is the one that reaches `frames`
    assert seams(given, frames, window, context) == [s + k for s, k in plan]


def test_given_frames_come_back_exactly_and_the_length_is_exact(pipe):
    video = to_float(_input())[None]  # (1, 3, 5, 16, 16)
    rec = Recorder(pipe)
    clip = extend(rec, PROMPT, 20, video=video, context=4, sampling=pipe.sampling.merged(steps=2), seed=3,
                  progress=False)
    assert clip.shape == (1, 3, 20, 16, 16)
    assert torch.equal(clip[:, :, :5], video)
    assert len(rec.calls) == len(seams(5, 20, 8, 4))
    for call, (start, known) in zip(rec.calls, window_plan(5, 20, 8, 4)):  # each window knew the frames before it
        assert call["frames"] == 8 and call["frame_mask"][0].tolist() == [1.0] * known + [0.0] * (8 - known)
        assert torch.equal(call["known_frames"][:, :, :known], clip[:, :, start:start + known])


def test_a_longer_clip_starts_with_the_shorter_one(pipe):
    video = to_float(_input())[None]
    short = extend(pipe, PROMPT, 12, video=video, sampling=pipe.sampling.merged(steps=2), seed=1, progress=False)
    long = extend(pipe, PROMPT, 20, video=video, sampling=pipe.sampling.merged(steps=2), seed=1, progress=False)
    assert torch.equal(long[:, :, :12], short)


def test_text_to_video_starts_with_the_plain_clip(pipe):
    first = pipe(PROMPT, sampling=pipe.sampling.merged(steps=2), seed=7, progress=False)  # (1, 3, 8, 16, 16)
    long = extend(pipe, PROMPT, 20, sampling=pipe.sampling.merged(steps=2), seed=7, progress=False)
    assert long.shape[2] == 20 and torch.equal(long[:, :, :8], first)
    within = extend(pipe, PROMPT, 6, sampling=pipe.sampling.merged(steps=2), seed=7, progress=False)
    assert within.shape[2] == 6  # within the window: one call


def test_joint_keeps_the_given_frames(pipe):
    video = to_float(_input())[None]
    clip = extend(pipe, PROMPT, 12, video=video, method="joint", sampling=pipe.sampling.merged(steps=2), progress=False)
    assert clip.shape[2] == 12 and torch.equal(clip[:, :, :5], video)


def test_window_seeds_are_distinct_and_valid():
    seeds = [window_seed(2**63 - 1, w) for w in range(6)]
    assert window_seed(5, 0) == 5 and len(set(seeds)) == 6 and all(0 <= s < 2**63 for s in seeds)


def test_models_without_the_predict_task_are_refused(tmp_path):
    t2v = load(tiny_checkpoint(tmp_path / "t2v", tasks={"t2v": 1.0}))
    with pytest.raises(ValueError, match="not trained to continue a video"):
        check_extend(t2v, 20, 0, 4)
    check_extend(t2v, 8, 0, 4)  # within its own length nothing needs the predict task


def _run(*args):
    return subprocess.run([sys.executable, "-m", "stillmotion.cli", *map(str, args)], capture_output=True, text=True)


def test_extend_command_end_to_end(tiny_multitask, tmp_path):
    given = _input()
    write_video(tmp_path / "in.gif", given, fps=10)
    r = _run("extend", tmp_path / "in.gif", PROMPT, "--frames", 20, "--out", tmp_path / "long.gif", "--model",
             tiny_multitask, "--steps", 2, "--scale", 1, "--fps", 10, "--threads", 1, "--quiet")
    assert r.returncode == 0, r.stderr
    assert "'in.gif': 5 frames, 16x16 (the model's canvas already)" in r.stdout
    assert "Seams at frames 5,11,17" in r.stdout  # the default context, 2: six new frames a window
    out = read_video(tmp_path / "long.gif")
    assert out.shape == (20, 16, 16, 3)
    assert np.array_equal(out[:5], given)  # a 16x16 GIF frame has at most 256 colours: stored exactly


def test_generate_past_the_model_length_goes_through_the_windows(tiny_multitask, tmp_path):
    r = _run("generate", PROMPT, "--frames", 20, "--out", tmp_path / "long.gif", "--model", tiny_multitask,
             "--steps", 2, "--scale", 1, "--fps", 10, "--seed", 4, "--threads", 1, "--quiet")
    assert r.returncode == 0, r.stderr
    out = read_video(tmp_path / "long.gif")
    assert out.shape == (20, 16, 16, 3)
    pipe = load(tiny_multitask)
    expected = to_uint8(extend(pipe, PROMPT, 20, sampling=pipe.sampling.merged(steps=2), seed=4, progress=False)[0])
    assert np.array_equal(out, expected)


def _corrupt(tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    return path


BAD = [
    ("missing file", lambda t: [t / "nope.mp4", PROMPT], "no such file"),
    ("corrupt video", lambda t: [_corrupt(t), PROMPT], "broken.mp4"),
    ("an image", lambda t: [t / "in.png", PROMPT], "is an image"),
    ("--frames shorter than the video", lambda t: [t / "in.gif", PROMPT, "--frames", "4"], "not longer than"),
    ("--frames as long as the video", lambda t: [t / "in.gif", PROMPT, "--frames", "5"], "not longer than"),
    ("--context 0", lambda t: [t / "in.gif", PROMPT, "--context", "0"], "--context"),
    ("--context past half the window", lambda t: [t / "in.gif", PROMPT, "--context", "5"], "context must be 1 .. 4"),
    ("unwritable output", lambda t: [t / "in.gif", PROMPT, "--out", t / "out.txt"], "cannot write"),
]


@pytest.mark.parametrize("name, args, message", BAD, ids=[b[0] for b in BAD])
def test_bad_inputs_stop_with_one_line(tiny_multitask, tmp_path, capsys, monkeypatch, name, args, message):
    from PIL import Image

    write_video(tmp_path / "in.gif", _input(), fps=10)
    Image.fromarray(_input()[0]).save(tmp_path / "in.png")
    called = []
    monkeypatch.setattr("stillmotion.pipelines.extend.extend", lambda *a, **k: called.append(1))  # no sampling
    argv = ["extend", *map(str, args(tmp_path)), "--model", tiny_multitask, "--steps", "2", "--quiet",
            *(["--out", str(tmp_path / "long.mp4")] if "--out" not in map(str, args(tmp_path)) else [])]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("stillmotion: error:") and err.count("\n") == 1 and "Traceback" not in err, err
    assert message in err
    assert not called and not (tmp_path / "long.mp4").exists()


def test_a_t2v_model_makes_long_clips_in_one_pass_and_says_so(tmp_path, capsys):
    model = tiny_checkpoint(tmp_path / "t2v", tasks={"t2v": 1.0})
    assert main(["generate", PROMPT, "--frames", "12", "--model", str(model), "--steps", "2", "--quiet",
                 "--scale", "1", "--fps", "10", "--out", str(tmp_path / "a.gif")]) == 0
    assert "not trained to continue a video (no 'predict' task), so the 12 frames are made in one pass" in \
        capsys.readouterr().err
    assert read_video(tmp_path / "a.gif").shape[0] == 12
    assert main(["extend", str(tmp_path / "a.gif"), PROMPT, "--frames", "20", "--model", str(model),
                 "--out", str(tmp_path / "b.gif")]) == 2  # continuing a given video is refused
    assert "not trained to continue a video" in capsys.readouterr().err


def test_experiment_writes_its_report(tiny_multitask, tmp_path):
    out = tmp_path / "exp"
    r = _run("experiment", "extend", "--n", 2, "--frames", 12, "--model", tiny_multitask, "--steps", 2,
             "--sets", "black", "--methods", "windows", "--contexts", 2, 4, "--out", out, "--threads", 1)
    assert r.returncode == 0, r.stderr
    import json

    report = json.loads((out / "report.json").read_text())
    assert set(report["sets"]) == {"black"}
    arms = report["sets"]["black"]["arms"]
    assert set(arms) == {"windows K=2", "windows K=4"}
    assert arms["windows K=2"]["colour_kept_every_window"] in (0.0, 0.5, 1.0)
    assert len(arms["windows K=2"]["per_window"]) == 1 + len(seams(8, 12, 8, 2))
    assert "| black | windows K=4 |" in (out / "README.md").read_text() and (out / "gallery.gif").is_file()
