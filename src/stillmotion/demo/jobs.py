"""What the web demo runs, without the web: a request checked against the demo's caps, one pipeline call (the
same call `stillmotion generate` makes), an MP4 that a browser plays, and the `stillmotion generate` line that
makes the same clip from a shell.

Nothing here imports Gradio, so the caps and the reproduction line are tested without a browser.
"""

from __future__ import annotations

import math
import shlex
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stillmotion.data.video_io import write_video
from stillmotion.pipelines.known_frames import IMAGE_SUFFIXES, load_known_frames, untrained_task
from stillmotion.pipelines.text_to_video import TextToVideo

MAX_DEMO_SEED = 2**53 - 1  # the largest whole number a browser's number field holds exactly
FPS = 8                    # the frame rate of `stillmotion generate`'s files
SHOWN_SIZE = 256           # pixels: clips are upscaled (nearest neighbour) to about this size to be seen

# Prompts worded as the training captions are, per synthetic world (the model card says what it learned).
EXAMPLES = {
    "shapes": ["a red circle moving left", "a blue square moving up", "a yellow circle moving down",
               "an orange triangle moving up-left", "a green square moving right",
               "a cyan square moving right and a white circle moving down"],
    "digits": ["a handwritten three moving left", "the digit 7 moving up", "a handwritten five moving down-right"],
}


class DemoInputError(ValueError):
    """An input outside the demo's caps; the message says what was wrong and what is allowed."""


@dataclass(frozen=True)
class Limits:
    """Caps on what one request may ask of a shared CPU (`stillmotion demo` can raise them)."""

    prompt_chars: int = 300
    frames: int = 32
    steps: int = 50
    guidance: float = 20.0
    upload_mb: int = 20
    upload_seconds: float = 30.0
    upload_pixels: int = 4096 * 4096


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Request:
    """One clip's settings; `frames_from` + `keep` give known frames (pipelines/known_frames.py)."""

    prompt: str
    negative: str = ""
    seed: int = 0
    steps: int = 20
    guidance: float = 4.0
    frames: int = 16
    frames_from: str | None = None
    keep: str = "first"


@dataclass(frozen=True)
class Clip:
    """A made clip: the MP4, the shell line that makes it again, and the seconds it took."""

    path: Path
    command: str
    seconds: float


def _whole(name: str, value, low: int, high: int) -> int:
    """A whole number in [low, high] from a form field (which may hand over 4.0, or None when left empty)."""
    if value is None or not math.isfinite(float(value)) or float(value) != int(float(value)):
        raise DemoInputError(f"{name} must be a whole number from {low} to {high} (got {value})")
    if not low <= int(float(value)) <= high:
        raise DemoInputError(f"{name} must be from {low} to {high} (got {int(float(value))})")
    return int(float(value))


def _text(pipe: TextToVideo, name: str, text: str | None, limit: int) -> str:
    text = (text or "").strip()
    if len(text) > limit:
        raise DemoInputError(f"the {name} is {len(text)} characters long; keep it under {limit} (this model reads "
                             f"{pipe.text.max_length} tokens, about {pipe.text.max_length * 4} characters)")
    cut = pipe.text.cut_text(text)
    if cut:
        cut = cut if len(cut) <= 60 else cut[:57] + "..."
        raise DemoInputError(f"the {name} is longer than the {pipe.text.max_length} tokens the text encoder reads, "
                             f"so it would never see '{cut}'; shorten it (say the motion early)")
    return text


def _check_upload(path: str, limits: Limits) -> None:
    from PIL import Image

    from stillmotion.data.video_io import probe_video

    size_mb = Path(path).stat().st_size / 2**20
    if size_mb > limits.upload_mb:
        raise DemoInputError(f"the file is {size_mb:.0f} MB; upload one under {limits.upload_mb} MB")
    if Path(path).suffix.lower() in IMAGE_SUFFIXES:
        with Image.open(path) as image:  # reads the header only
            width, height = image.size
        if width * height > limits.upload_pixels:
            raise DemoInputError(f"the image is {width}x{height}; upload one of at most "
                                 f"{limits.upload_pixels // 10**6} megapixels (it is shrunk to a few dozen pixels)")
        return
    seconds = probe_video(path).duration
    if seconds > limits.upload_seconds:
        raise DemoInputError(f"the video lasts {seconds:.0f} s; upload one of at most {limits.upload_seconds:g} s "
                             "(only its first frames are used)")


def check(pipe: TextToVideo, request: Request, limits: Limits = DEFAULT_LIMITS) -> Request:
    """The request with form values made whole and text trimmed, or a DemoInputError naming the first problem."""
    prompt = _text(pipe, "prompt", request.prompt, limits.prompt_chars)
    if not prompt:
        raise DemoInputError(f"type a prompt first, e.g. '{EXAMPLES['shapes'][0]}'")
    guidance = float(request.guidance if request.guidance is not None else math.nan)
    if not 0 <= guidance <= limits.guidance:  # also nan
        raise DemoInputError(f"guidance must be from 0 to {limits.guidance:g} (got {request.guidance}); 1 turns it "
                             "off, 3-5 is usual")
    if request.frames_from is not None:
        _check_upload(request.frames_from, limits)
    return Request(prompt=prompt, negative=_text(pipe, "negative prompt", request.negative, limits.prompt_chars),
                   seed=_whole("seed", request.seed, 0, MAX_DEMO_SEED),
                   steps=_whole("steps", request.steps, 1, limits.steps), guidance=guidance,
                   frames=_whole("frames", request.frames, 1, limits.frames),
                   frames_from=request.frames_from, keep=request.keep)


def display_scale(size: int) -> int:
    """The nearest-neighbour factor that shows a size x size clip at about SHOWN_SIZE pixels."""
    return max(1, round(SHOWN_SIZE / size))


def command_line(request: Request, model: str | None, scale: int) -> str:
    """The `stillmotion generate` line that makes the same clip (an uploaded file by its own name)."""
    words = ["stillmotion", "generate", request.prompt]
    if request.negative:
        words += ["--negative", request.negative]
    words += ["--seed", str(request.seed), "--steps", str(request.steps), "--guidance", repr(float(request.guidance)),
              "--frames", str(request.frames)]
    if request.frames_from is not None:
        words += ["--frames-from", Path(request.frames_from).name, "--keep", request.keep]
    if model is not None:
        words += ["--model", str(model)]
    return shlex.join(words + ["--scale", str(scale), "--out", "clip.mp4"])


def make_clip(pipe: TextToVideo, request: Request, folder: Path, *, model: str | None = None,
              on_step: Callable[[dict], None] | None = None) -> Clip:
    """Sample a checked request and write it as a browser-playable MP4 in `folder`.

    Args:
        model: the checkpoint path `pipe` was loaded from (None: the shipped model), for the shell line.
        on_step: called after each sampler step (steps x `pipe.passes(...)` times).
    """
    start = time.time()
    known = {}
    if request.frames_from is not None:  # image-to-video or in-betweens: generate's --frames-from
        problem = untrained_task(pipe.info, request.keep)
        if problem:
            raise DemoInputError(problem)
        frames, mask = load_known_frames(request.frames_from, request.keep, request.frames, pipe.size)
        known = dict(known_frames=frames, frame_mask=mask)
    sampling = pipe.sampling.merged(steps=request.steps, guidance=request.guidance)
    video = pipe(request.prompt, negative=request.negative, frames=request.frames, sampling=sampling,
                 seed=request.seed, progress=False, callback=on_step, **known)
    scale = display_scale(pipe.size)
    # write_video's MP4: H.264, yuv420p, even sides, +faststart (the index first, so playback starts at once)
    path = write_video(Path(folder) / f"clip-{uuid.uuid4().hex[:12]}.mp4", video[0].cpu(), fps=FPS, scale=scale)
    return Clip(path, command_line(request, model, scale), time.time() - start)
