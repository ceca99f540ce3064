"""`stillmotion demo` (issue 26): the page is used as a person uses it, in headless Chromium (skipped, with the
reason, where Chromium or Selenium is missing; .ci/run installs both). The caps, the MP4 and the reproducing
`stillmotion generate` line are checked without a browser, on a tiny untrained checkpoint (built, not trained)."""

import contextlib
import shlex
import socket
import sys

import av
import numpy as np
import pytest
import torch

from stillmotion import checkpoint
from stillmotion.cli import main
from stillmotion.data.video_io import read_video
from stillmotion.demo import browser
from stillmotion.demo.jobs import DemoInputError, Request, check, make_clip
from stillmotion.models.registry import build_unet
from stillmotion.pipelines.text_to_video import load

PROMPT = "a red circle moving left"
LONG_PROMPT = "a red circle that moves slowly and steadily towards the left edge of the dark canvas " * 3


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    """A 4-frame 16x16 checkpoint trained (its config says) for text-to-video only."""
    torch.manual_seed(0)
    net = build_unet("tiny")
    config = {"model": {"arch": "spacetime-unet", **net.config.to_dict()},
              "diffusion": {"parameterization": "v", "sigma_data": 0.5, "data_mean": 0.0, "noise_warp": 0.0},
              "text_encoder": {"name": "minilm", "dim": 384},
              "data": {"world": "shapes", "data": None, "frames": 4, "size": 16},
              "sampling": {"strategy": "joint"}, "train": {"tasks": {"t2v": 1.0}}, "record": {}}
    return str(checkpoint.save(tmp_path_factory.mktemp("demo") / "tiny", weights=net, config=config))


@pytest.fixture(scope="module")
def pipe(tiny):
    return load(tiny)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_without_gradio_the_command_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio raises ImportError
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stillmotion: error: the web demo needs Gradio") and "pip install" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("change, message", [
    (dict(prompt=LONG_PROMPT), "longer than the 32 tokens"),
    (dict(prompt="x" * 301), "keep it under 300"),
    (dict(prompt="  "), "type a prompt first"),
    (dict(negative=LONG_PROMPT), "negative prompt is longer"),
    (dict(frames=33), "frames must be from 1 to 32"),
    (dict(frames=2.5), "frames must be a whole number"),
    (dict(steps=0), "steps must be from 1 to 50"),
    (dict(steps=None), "steps must be a whole number"),
    (dict(guidance=float("nan")), "guidance must be from 0 to 20"),
    (dict(seed=-1), "seed must be from 0"),
])
def test_inputs_past_the_caps_are_one_clear_message(pipe, change, message):
    with pytest.raises(DemoInputError, match=message):
        check(pipe, Request(**{**dict(prompt=PROMPT, frames=4, steps=2), **change}))


def test_the_clip_plays_in_a_browser_and_the_shown_command_makes_it_again(pipe, tiny, tmp_path, capsys):
    steps = []
    request = check(pipe, Request(PROMPT, seed=7, steps=2, guidance=3.5, frames=4))
    clip = make_clip(pipe, request, tmp_path, model=tiny, on_step=steps.append)
    assert len(steps) == 2 * pipe.passes(4)
    with av.open(str(clip.path)) as container:  # H.264 in yuv420p, even sides, upscaled to be seen
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert (stream.codec_context.width, stream.codec_context.height) == (256, 256)
    data = clip.path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart: playback starts before the download ends
    argv = shlex.split(clip.command)
    assert argv[:3] == ["stillmotion", "generate", PROMPT] and "--model" in argv
    out = tmp_path / "again.mp4"
    assert main([*argv[1:-2], "--out", str(out), "--quiet"]) == 0, capsys.readouterr().err
    assert np.array_equal(read_video(out), read_video(clip.path))


@pytest.mark.parametrize("strategy, frames", [("joint", 4), ("keyframe", 4), ("first-frame", 3), ("keyframe", 1)])
def test_the_progress_bar_total_is_the_number_of_sampler_steps(pipe, strategy, frames):
    steps = []
    sampling = pipe.sampling.merged(steps=2, strategy=strategy)
    pipe(PROMPT, frames=frames, sampling=sampling, progress=False, callback=steps.append)
    assert len(steps) == 2 * pipe.passes(frames, sampling)


@contextlib.contextmanager
def _served(pipe, tiny):
    from stillmotion.demo.app import build_app, close, launch

    app = build_app(pipe, model=tiny)
    try:
        yield launch(app, port=_free_port())
    finally:
        close(app)  # the server stops even when the test fails


def test_a_busy_port_is_one_line_naming_the_option(tiny, capsys):
    pytest.importorskip("gradio", reason="gradio is not installed (pip install -e '.[test]')")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["demo", "--model", tiny, "--port", str(busy.getsockname()[1])]) == 2
    assert "give another --port" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")  # pandas 3 deprecations inside Gradio
def test_in_a_browser_a_prompt_becomes_a_clip_and_a_long_prompt_a_message(pipe, tiny):
    pytest.importorskip("gradio", reason="gradio is not installed (pip install -e '.[test]')")
    if browser.chromium_problem():
        pytest.skip(f"no browser test: {browser.chromium_problem()}")
    from selenium.webdriver.common.by import By

    with _served(pipe, tiny) as url, browser.chromium() as page:
        browser.open_page(page, url)
        browser.generate(page, PROMPT)
        source, duration = browser.video_duration(page)
        assert duration > 0 and np.isfinite(duration), f"the browser reports a duration of {duration} s"
        assert browser.errors(page) == []
        command = page.find_element(By.CSS_SELECTOR, "#t2v-command textarea").get_attribute("value")
        assert command.startswith(f"stillmotion generate '{PROMPT}' --seed 0")
        browser.generate(page, LONG_PROMPT)
        assert "longer than the 32 tokens the text encoder reads" in browser.wait_for_error(page)
        assert "Traceback" not in page.page_source
        page.find_element(By.XPATH, "//button[@role='tab' and contains(., 'Image to video')]").click()
        assert "not trained for image-to-video" in page.find_element(By.TAG_NAME, "body").text
