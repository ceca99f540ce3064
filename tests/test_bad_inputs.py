"""Inputs checked at the door (issue 27): each bad input gives one `stillmotion: error:` line and exit status 2,
never a traceback or a silently wrong result. The CLI runs in-process on a tiny untrained checkpoint (built, not
trained); one row runs as a user does, through a subprocess."""

import json
import os
import shutil
import stat
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from stillmotion import checkpoint
from stillmotion.cli import main
from stillmotion.data.images import image_to_rgb, read_image
from stillmotion.models.registry import build_unet
from stillmotion.pipelines.known_frames import load_known_frames


def _config(net, tasks: dict) -> dict:
    return {"model": {"arch": "spacetime-unet", **net.config.to_dict()},
            "diffusion": {"parameterization": "v", "sigma_data": 0.5, "data_mean": 0.0, "noise_warp": 0.0},
            "text_encoder": {"name": "minilm", "dim": 384},
            "data": {"world": "shapes", "data": None, "frames": 4, "size": 16},
            "sampling": {"strategy": "joint"}, "train": {"tasks": tasks}, "record": {}}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A text-to-video-only tiny checkpoint ("t2v") and one whose config says it learned image-to-video ("i2v")."""
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    net = build_unet("tiny")
    return {name: checkpoint.save(root / name, weights=net, config=_config(net, tasks))
            for name, tasks in (("t2v", {"t2v": 1.0}), ("i2v", {"t2v": 0.5, "i2v": 0.5}))}


def _damaged(models, tmp_path, edit) -> str:
    """A copy of the t2v checkpoint with `edit(folder)` applied."""
    folder = tmp_path / "damaged"
    shutil.copytree(models["t2v"], folder)
    edit(folder)
    return str(folder)


def _edit_config(drop: bool = False, **sections):
    """An edit of config.json: fields merged into sections, a section replaced (or dropped)."""
    def edit(folder):
        config = json.loads((folder / "config.json").read_text())
        for name, fields in sections.items():
            config[name] = {**config[name], **fields} if isinstance(fields, dict) else fields
            if drop:
                del config[name]
        (folder / "config.json").write_text(json.dumps(config))
    return edit


def _truncate(folder):
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])


def _image(tmp_path, mode: str) -> str:
    path = tmp_path / f"frame-{mode.replace(';', '')}.png"
    Image.new("RGB", (16, 16), (200, 40, 40)).convert(mode).save(path)
    return str(path)


def _cli(capsys, args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


GEN = ["generate", "a red circle moving left", "--steps", "1", "--frames", "2", "--quiet"]

# (name, arguments given tmp_path and the models, words the one error line must hold)
BAD_INPUTS = [
    ("truncated weights", lambda t, m: ["info", "--model", _damaged(m, t, _truncate)],
     ["model.safetensors", "does not load", "damaged", "export it again"]),
    ("weights of another size",
     lambda t, m: [*GEN, "--model", _damaged(m, t, _edit_config(model={"channels": [8, 24]}))],
     ["model.safetensors does not fit its config.json", "size mismatch"]),
    ("float head_dim", lambda t, m: [*GEN, "--model", _damaged(m, t, _edit_config(model={"head_dim": 8.0}))],
     ["config.json", "model.head_dim: expected an integer, got 8.0"]),
    ("string sigma_data",
     lambda t, m: ["info", "--model", _damaged(m, t, _edit_config(diffusion={"sigma_data": "0.5"}))],
     ["config.json", "diffusion.sigma_data: expected a number, got '0.5'"]),
    ("list for a section", lambda t, m: ["info", "--model", _damaged(m, t, _edit_config(data=[4, 16]))],
     ["config.json", "'data' must be an object"]),
    ("missing section", lambda t, m: [*GEN, "--model", _damaged(m, t, _edit_config(diffusion=None, drop=True))],
     ["config.json", "the 'diffusion' section is missing"]),
    ("list of floats", lambda t, m: ["info", "--model", _damaged(m, t, _edit_config(model={"channels": [8, 16.5]}))],
     ["model.channels: expected a list of integers"]),
    ("unknown field", lambda t, m: ["info", "--model", _damaged(m, t, _edit_config(diffusion={"sigma": 1}))],
     ["diffusion: unknown field(s) ['sigma']"]),
    ("seed overflow", lambda t, m: [*GEN, "--seed", "99999999999999999999"], ["--seed", "2**63 - 1"]),
    ("negative seed", lambda t, m: ["evaluate", "--seed", "-1"], ["--seed", "from 0 to"]),
    ("nan guidance", lambda t, m: [*GEN, "--guidance", "nan"], ["--guidance", "finite"]),
    ("inf guidance", lambda t, m: ["evaluate", "--guidance", "inf"], ["--guidance", "finite"]),
    ("nan motion", lambda t, m: [*GEN, "--model", m["t2v"], "--noise-warp", "1", "--motion", "nan,0", "--out",
                                 t / "clip.gif"], ["motion hint 'nan,0'", "finite"]),
    ("zero fps", lambda t, m: [*GEN, "--fps", "0"], ["--fps", "> 0"]),
    ("negative fvd-n", lambda t, m: ["evaluate", "--fvd-n", "-3"], ["--fvd-n", ">= 0"]),
    ("image to a t2v model", lambda t, m: [*GEN, "--model", m["t2v"], "--frames-from", _image(t, "RGB"),
                                           "--out", t / "out" / "clip.gif"],
     ["not trained for image-to-video", "--allow-untrained-task"]),
    ("evaluate --out report.json", lambda t, m: ["evaluate", "--model", m["t2v"], "--out", t / "report.json"],
     ["looks like a file name", "give a folder"]),
    ("evaluate --out an existing file", lambda t, m: ["evaluate", "--out", _image(t, "L")], ["is a file"]),
    ("two checkpoints to info", lambda t, m: ["info", m["t2v"], "--model", m["i2v"]], ["two checkpoints"]),
]


@pytest.mark.parametrize("make_args, words", [row[1:] for row in BAD_INPUTS], ids=[row[0] for row in BAD_INPUTS])
def test_bad_input_is_one_line_and_status_2(make_args, words, models, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("STILLMOTION_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    code, err = _cli(capsys, make_args(tmp_path, models))
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stillmotion: error: "), err
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert "Traceback" not in err


def test_failed_commands_leave_no_empty_folder(models, tmp_path, capsys):
    out = tmp_path / "new" / "deeper"
    code, _ = _cli(capsys, [*GEN, "--model", models["t2v"], "--frames-from", _image(tmp_path, "RGB"),
                            "--out", out / "clip.gif"])
    assert code == 2 and not (tmp_path / "new").exists()  # refused before the folder was needed
    code, _ = _cli(capsys, ["evaluate", "--model", tmp_path / "missing", "--out", out])
    assert code == 2 and not (tmp_path / "new").exists()  # made for the run, removed when it failed
    code, _ = _cli(capsys, ["export", tmp_path / "missing", out])
    assert code == 2 and not (tmp_path / "new").exists()


def test_image_to_video_on_a_model_trained_for_it_and_on_request(models, tmp_path, capsys):
    image = _image(tmp_path, "RGBA")
    code, err = _cli(capsys, [*GEN, "--model", models["i2v"], "--frames-from", image, "--out", tmp_path / "a.gif"])
    assert code == 0, err
    code, err = _cli(capsys, [*GEN, "--model", models["t2v"], "--frames-from", image, "--allow-untrained-task",
                              "--out", tmp_path / "b.gif"])
    assert code == 0, err


def test_a_long_prompt_warns_with_what_was_cut(models, tmp_path, capsys):
    prompt = ("in a quiet dark room, on a plain black background, under soft light, with nothing else around it at "
              "all, slowly and steadily, a red circle moving up")
    code, err = _cli(capsys, ["generate", prompt, "--steps", "1", "--frames", "2", "--quiet", "--model",
                              models["t2v"], "--out", tmp_path / "clip.gif"])
    assert code == 0, err
    assert "stillmotion: warning: the prompt is longer than the text encoder's 32 tokens" in err
    assert "never sees 'circle moving up'" in err and len(err.strip().splitlines()) == 1
    code, err = _cli(capsys, ["generate", "a red circle moving up", "--steps", "1", "--frames", "2", "--quiet",
                              "--model", models["t2v"], "--out", tmp_path / "short.gif"])
    assert code == 0 and err == ""


def test_written_weights_honour_the_umask(models, tmp_path, capsys):
    old = os.umask(0o022)
    try:
        code, err = _cli(capsys, ["export", models["t2v"], tmp_path / "release"])
    finally:
        os.umask(old)
    assert code == 0, err
    assert stat.S_IMODE((tmp_path / "release" / "model.safetensors").stat().st_mode) == 0o644


def test_help_prints_each_default_once(capsys):
    import re

    for command in (["generate"], ["evaluate"], ["curate"], ["features", "train"]):
        assert main([*command, "--help"]) == 0
        text = " ".join(capsys.readouterr().out.split())
        assert not re.search(r"\(default[^)]*\)\s*\(default", text), command
        assert "(default: None)" not in text
    main(["evaluate", "--help"])
    assert "FVD" in capsys.readouterr().out  # evaluate says it does more than prompt following


def test_bad_option_through_a_subprocess(tmp_path):
    r = subprocess.run([sys.executable, "-m", "stillmotion.cli", "generate", "a red circle", "--seed", "2" * 20],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith("stillmotion: error: ")
    assert "Traceback" not in r.stderr


# ------------------------------------------------------------------------------------------------ images

def test_16_bit_grey_png_is_mid_grey_not_white(tmp_path):
    path = tmp_path / "grey16.png"
    Image.fromarray(np.full((8, 8), 32768, np.uint16)).save(path)
    with Image.open(path) as im:
        assert im.mode.startswith("I")  # what Pillow makes of a 16-bit PNG
    rgb = read_image(path)
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8
    assert np.all(rgb == 128)
    known, _ = load_known_frames(path, "first", 4, 8)  # what --frames-from gives the model: grey is ~0 in [-1, 1]
    assert known[0, :, 0].abs().max() < 0.01


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGB", "CMYK", "YCbCr", "LA", "PA", "RGBA", "RGBa", "I;16",
                                  "I;16B", "I", "F"])
def test_every_mode_becomes_8_bit_rgb(mode):
    red = Image.new("RGB", (4, 4), (200, 40, 40))
    im = red.convert(mode) if mode not in ("1", "I;16", "I;16B", "I", "F") else None
    if mode == "1":
        im = Image.new("1", (4, 4), 1)
    elif mode in ("I;16", "I;16B"):
        im = Image.new(mode, (4, 4), 40000)
    elif mode == "I":
        im = Image.new("I", (4, 4), 65535)
    elif mode == "F":
        im = Image.new("F", (4, 4), 0.5)
    rgb = image_to_rgb(im)
    assert rgb.shape == (4, 4, 3) and rgb.dtype == np.uint8
    expected = {"1": 255, "I;16": 156, "I;16B": 156, "I": 255, "F": 128}  # grey levels, scaled not clipped
    if mode in expected:
        assert np.all(rgb == expected[mode]), (mode, rgb[0, 0])
    elif mode not in ("L", "LA"):  # the web palette of P and PA has steps of 51
        tolerance = 12 if mode.startswith("P") else 3
        assert np.abs(rgb[0, 0].astype(int) - [200, 40, 40]).max() <= tolerance, (mode, rgb[0, 0])


def test_transparency_is_composited_on_black_with_a_warning():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., :3] = 255  # white where hidden
    rgba[0, 0, 3] = 255  # one opaque pixel
    rgba[0, 1, 3] = 128  # one half-transparent
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rgb = image_to_rgb(Image.fromarray(rgba, "RGBA"), name="x.png")
    assert rgb[0, 0].tolist() == [255] * 3 and rgb[1, 1].tolist() == [0] * 3 and rgb[0, 1].tolist() == [128] * 3
    assert any("composited on black" in str(w.message) for w in caught)
    palette = Image.new("P", (2, 2), 0)
    palette.putpalette([255, 255, 255] * 256)
    palette.info["transparency"] = 0  # a GIF-style transparent palette index
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert not image_to_rgb(palette).any()


def test_an_unreadable_image_is_named(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match="broken.png' is not an image"):
        read_image(path)
