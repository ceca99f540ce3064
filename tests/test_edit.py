"""Text-guided editing (pipelines/edit.py, `stillmotion edit`): strength -> schedule tail, strength near 0 gives the
input back, an inversion edit with the source prompt reconstructs, the command end to end, bad inputs stop early."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from _videos import encode
from stillmotion.data.video_io import read_video, to_float
from stillmotion.data.worlds import get_world
from stillmotion.diffusion.schedules import get_sigmas
from stillmotion.eval.editing import edit_cases, path_distance, recolour, score_edits
from stillmotion.pipelines.edit import edit_sampling, edit_sigmas, edit_sweep, edit_video
from stillmotion.pipelines.text_to_video import load


@pytest.fixture(scope="module")
def tiny_pipe(tiny_multitask):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and spares a shared machine
    yield load(tiny_multitask)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def clips(tiny_pipe):
    world = get_world("shapes", size=tiny_pipe.size, frames=tiny_pipe.frames, p_two=0.0)
    return [world.sample(10**9 + i) for i in range(2)]


def test_strength_picks_the_tail_of_the_schedule():
    sigmas = get_sigmas("karras", 20)
    assert torch.equal(edit_sigmas(sigmas, 1.0), sigmas)            # from sigma_max
    assert torch.equal(edit_sigmas(sigmas, 0.6), sigmas[8:])        # on the grid: the last 12 steps
    between = edit_sigmas(sigmas, 0.575)                            # position 8.5: halfway (in log) from 8 to 9
    assert torch.equal(between[1:], sigmas[9:])
    assert between[0].item() == pytest.approx((sigmas[8] * sigmas[9]).sqrt().item())
    tiny = edit_sigmas(sigmas, 0.01)                                # below sigma_min: one short step to 0
    assert len(tiny) == 2 and 0 < tiny[0] < sigmas[-2]
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match=r"\(0, 1\]"):
            edit_sigmas(sigmas, bad)


@pytest.mark.parametrize("mode", ["sdedit", "inversion"])
def test_a_sweep_gives_what_single_edits_give(tiny_pipe, clips, mode):
    """The sweep shares the noise or one inversion up the grid; starts between grid levels add their own step."""
    video = to_float(clips[0].video)[None]
    options = dict(mode=mode, sampling=edit_sampling(tiny_pipe, mode).merged(steps=4), source_prompt=clips[0].caption,
                   iterations=1)
    sweep = edit_sweep(tiny_pipe, video, "a blue square", [0.3, 0.5, 1.0], **options)
    for strength, edited in sweep.items():
        alone = edit_video(tiny_pipe, video, "a blue square", strength=strength, **options)
        torch.testing.assert_close(edited, alone, rtol=0, atol=1e-5)


@pytest.mark.parametrize("mode", ["sdedit", "inversion"])
def test_strength_near_zero_returns_the_input(tiny_pipe, clips, mode):
    """One step from sigma_min = 0.002: the output is D(x) at that level, x up to c_out ~ 0.002 times the net."""
    video = torch.stack([to_float(c.video) for c in clips])
    out = edit_video(tiny_pipe, video, "a blue square moving left", strength=0.01, mode=mode,
                     sampling=edit_sampling(tiny_pipe, mode).merged(steps=20))
    assert out.shape == video.shape
    assert (out - video).abs().max() < 0.02
    far = edit_video(tiny_pipe, video, "a blue square moving left", strength=1.0, mode="sdedit",
                     sampling=tiny_pipe.sampling.merged(steps=2))
    assert (far - video).abs().mean() > 0.1  # and the check could fail: a full-strength edit does change it


@torch.no_grad()
def test_inversion_edit_with_the_source_prompt_reconstructs(tiny_pipe, clips):
    """The pipeline's inversion path (schedule tail, trajectory bookkeeping, float32 hand-over) keeps the round trip:
    the same prompt, guidance 1 and 10 fixed-point corrections give the clip back at every strength, on the grid or
    between its levels (0.55 of 10 steps), to 2e-3 (the corrections' convergence; see tests/test_inversion.py)."""
    video = to_float(clips[0].video)[None]
    out = edit_sweep(tiny_pipe, video, clips[0].caption, [0.5, 0.55, 1.0], mode="inversion",
                     source_prompt=clips[0].caption, iterations=10,
                     sampling=edit_sampling(tiny_pipe, "inversion").merged(guidance=1.0, steps=10))
    for strength, edited in out.items():
        assert (edited - video).abs().max() < 2e-3, strength


def test_sdedit_is_seeded(tiny_pipe, clips):
    video = to_float(clips[0].video)[None]
    sampling = tiny_pipe.sampling.merged(steps=4)
    a, b, c = (edit_video(tiny_pipe, video, "a red circle", strength=0.5, mode="sdedit", sampling=sampling, seed=s)
               for s in (0, 0, 1))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_scoring_reads_colour_and_path():
    cases = edit_cases(6, seed=0, group="other", frames=8, size=32)
    assert all(c.new_colour != c.colour and c.new_colour in c.target and c.colour in c.source for c in cases)
    assert {c.background for c in cases} <= {"gray", "gradient", "noise"}
    ideal = score_edits(cases, [recolour(c.video, c.new_colour) for c in cases])
    assert ideal["colour"] == 1.0 and ideal["path_px"] == 0.0 and ideal["success"] == 1.0
    unchanged = score_edits(cases, [c.video for c in cases])
    assert unchanged["colour"] == 0.0 and unchanged["kept_colour"] == 1.0
    moved = np.roll(cases[0].video, 3, axis=2)  # 3 px to the right (the object stays inside the canvas)
    assert path_distance(cases[0].video, moved) == pytest.approx(3.0, abs=0.5)
    assert path_distance(cases[0].video, np.zeros_like(cases[0].video)) == float("inf")


# ------------------------------------------------------------------------------------------------ the command

def _cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "stillmotion.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def source_video(tmp_path_factory):
    """A 24-frame 48x64 world clip (wider than the canvas, longer than the tiny model's 8 frames)."""
    world = get_world("shapes", size=48, frames=24, p_two=0.0)
    video = np.concatenate([world.sample(10**9).video] * 2, axis=2)[:, :, :64]
    return encode(tmp_path_factory.mktemp("edit") / "source.mp4", video)


def test_edit_command_end_to_end(tiny_multitask, source_video, tmp_path):
    out = tmp_path / "edited.mp4"
    r = _cli("edit", source_video, "a blue square moving left", "--strength", "0.6", "--steps", "2", "--model",
             tiny_multitask, "--out", out, "--threads", "1", "--scale", "1")
    assert r.returncode == 0, r.stderr
    assert "8 of its ~24 frames, evenly spaced" in r.stdout and "centre crop 48x48" in r.stdout
    assert read_video(out).shape == (8, 16, 16, 3)
    both = tmp_path / "both.gif"
    r = _cli("edit", source_video, "a red circle", "--mode", "sdedit", "--side-by-side", "--steps", "2", "--model",
             tiny_multitask, "--out", both, "--threads", "1", "--scale", "1")
    assert r.returncode == 0, r.stderr
    assert read_video(both).shape == (8, 16, 33, 3)  # source | edited, 1 px apart
    assert "empty source prompt" not in r.stdout
    sheet = tmp_path / "sheet.png"
    r = _cli("edit", source_video, "a red circle", "--mode", "inversion", "--side-by-side", "--steps", "2",
             "--model", tiny_multitask, "--out", sheet, "--threads", "1", "--scale", "1")
    assert r.returncode == 0 and sheet.stat().st_size > 0, r.stderr
    assert "inverting with the empty source prompt" in r.stdout  # the measured better way is named


def test_a_shorter_video_is_edited_at_its_own_length(tiny_multitask, tmp_path):
    world = get_world("shapes", size=16, frames=5, p_two=0.0)
    short = encode(tmp_path / "short.mp4", world.sample(10**9).video)
    r = _cli("edit", short, "a green circle", "--steps", "2", "--model", tiny_multitask, "--out",
             tmp_path / "e.mp4", "--threads", "1", "--scale", "1")
    assert r.returncode == 0, r.stderr
    assert "edited at its 5 frames" in r.stdout
    assert read_video(tmp_path / "e.mp4").shape[0] == 5


def _corrupt(tmp_path):
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    return bad


BAD_INPUTS = {  # name: (arguments after `edit`, a fragment of the error)
    "missing file": (lambda tmp, video: [tmp / "nope.mp4", "a red circle"], "no such file"),
    "corrupt video": (lambda tmp, video: [_corrupt(tmp), "a red circle"], "corrupt.mp4"),
    "an image": (lambda tmp, video: [_image(tmp), "a red circle"], "is an image"),
    "strength 1.5": (lambda tmp, video: [video, "a red circle", "--strength", "1.5"], "(0, 1]"),
    "strength 0": (lambda tmp, video: [video, "a red circle", "--strength", "0"], "(0, 1]"),
    "empty prompt": (lambda tmp, video: [video, "  "], "prompt is empty"),
    "source prompt to sdedit": (lambda tmp, video: [video, "a blue circle", "--mode", "sdedit", "--source-prompt",
                                                    "a red circle"], "only by --mode inversion"),
    "bad output": (lambda tmp, video: [video, "a red circle", "--out", tmp / "x.txt"], "cannot write"),
}


def _image(tmp_path):
    from PIL import Image
    path = tmp_path / "frame.png"
    Image.new("RGB", (20, 20)).save(path)
    return path


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_stop_with_one_line(case, tiny_multitask, source_video, tmp_path):
    make_args, fragment = BAD_INPUTS[case]
    args = make_args(tmp_path, source_video)
    out = [] if "--out" in args else ["--out", tmp_path / "out.mp4"]
    r = _cli("edit", *args, *out, "--model", tiny_multitask, "--steps", "2", timeout=60)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stillmotion: error:") and fragment in lines[0], r.stderr
    assert "Traceback" not in r.stderr and "sampling" not in r.stderr
    assert not (tmp_path / "out.mp4").exists()


def test_experiment_end_to_end(tiny_multitask, tmp_path):
    out = tmp_path / "exp"
    r = _cli("experiment", "edit", "--n", "2", "--strengths", "0.5", "1.0", "--strength", "0.5", "--steps", "2",
             "--model", tiny_multitask, "--out", out, "--threads", "1", "--quiet", timeout=300)
    assert r.returncode == 0, r.stderr
    import json
    report = json.loads((out / "report.json").read_text())
    assert set(report["groups"]) == {"black", "other"}
    assert set(report["groups"]["black"]["inversion"]) == {"0.5", "1.0"}
    for name in ("README.md", "editing.png", "edit.gif"):
        assert (out / name).stat().st_size > 0
