"""The web page of `stillmotion demo`: Gradio components around `demo/jobs.py`.

One tab per way of making a clip. A tab whose frame task the model was not trained for says so instead of
offering it. Every tab ends in the same outputs: the clip (an MP4 the browser plays), a download button, and the
settings with the `stillmotion generate` line that makes the same clip. Bad inputs become one message on the
page (gr.Error), never a traceback.
"""

from __future__ import annotations

import itertools
import random
import shutil
import socket
import tempfile
from dataclasses import replace
from pathlib import Path

import gradio as gr

from stillmotion.demo.jobs import (
    DEFAULT_LIMITS,
    EXAMPLES,
    MAX_DEMO_SEED,
    SHOWN_SIZE,
    Limits,
    Request,
    check,
    make_clip,
)
from stillmotion.pipelines.known_frames import untrained_task
from stillmotion.pipelines.text_to_video import TextToVideo

EDITING_NOTE = ("Editing a video (changing what a clip shows while keeping its motion) runs from the command line "
                "for now: `stillmotion edit clip.mp4 \"a blue square moving left\" --strength 0.6 --out edited.mp4` "
                "(docs/applications.md); this page does not offer it yet.")


def _settings(pipe: TextToVideo, limits: Limits, tab: str) -> list:
    """Prompt, negative prompt, seed (with a random-seed button), steps, guidance, frames: one tab's inputs."""
    prompt = gr.Textbox(label="Prompt", placeholder=EXAMPLES["shapes"][0], lines=2, elem_id=f"{tab}-prompt")
    negative = gr.Textbox(label="Negative prompt", placeholder="what to steer away from (optional)")
    with gr.Row():
        seed = gr.Number(label="Seed", value=0, precision=0, minimum=0, maximum=MAX_DEMO_SEED, elem_id=f"{tab}-seed")
        dice = gr.Button("Random seed", size="sm", scale=0)
    dice.click(lambda: random.randrange(2**32), outputs=seed, queue=False)
    with gr.Row():
        steps = gr.Slider(1, limits.steps, value=20, step=1, label="Steps")
        guidance = gr.Slider(0, limits.guidance, value=4.0, step=0.5, label="Guidance",
                             info="1 turns guidance off; 3-5 is usual")
        frames = gr.Slider(1, limits.frames, value=pipe.frames, step=1, label="Frames",
                           info=f"trained on {pipe.frames}")
    return [prompt, negative, seed, steps, guidance, frames]


def _outputs(tab: str) -> list:
    """The clip, a download button, and the settings that made it."""
    video = gr.Video(label="Clip", autoplay=True, loop=True, interactive=False, height=SHOWN_SIZE + 40,
                     elem_id=f"{tab}-video")
    download = gr.DownloadButton("Download the MP4", visible=False, elem_id=f"{tab}-download")
    settings = gr.Markdown(elem_id=f"{tab}-settings")
    command = gr.Textbox(label="The same clip from the command line", interactive=False, buttons=["copy"],
                         elem_id=f"{tab}-command")
    return [video, download, settings, command]


def _runner(pipe: TextToVideo, folder: Path, model: str | None, limits: Limits):
    """run(request, progress) -> the outputs of `_outputs`; any bad input is raised as one gr.Error message."""

    def run(request: Request, progress: gr.Progress):
        try:
            request = check(pipe, request, limits)
            total = request.steps * pipe.passes(request.frames, known=request.frames_from is not None)
            done = itertools.count(1)
            progress((0, total), desc="sampling", unit="steps")
            clip = make_clip(pipe, request, folder, model=model,
                             on_step=lambda info: progress((next(done), total), desc="sampling", unit="steps"))
        except (ValueError, OSError) as e:  # bad input or an unreadable upload: the message, not a traceback
            raise gr.Error(" ".join(str(e).split()), duration=None, print_exception=False) from None
        settings = (f"seed {request.seed} · {request.steps} steps · guidance {request.guidance:g} · "
                    f"{request.frames} frames · made in {clip.seconds:.1f} s")
        return str(clip.path), gr.DownloadButton(value=str(clip.path), visible=True), settings, clip.command

    return run


def _text_to_video_tab(pipe, limits, run) -> None:
    with gr.Row():
        with gr.Column():
            inputs = _settings(pipe, limits, "t2v")
            world = pipe.info.get("data", {}).get("world")
            if world in EXAMPLES:
                gr.Examples([[p] for p in EXAMPLES[world]], inputs=inputs[:1], label="Prompts this model knows")
            button = gr.Button("Generate", variant="primary", elem_id="t2v-generate")
        with gr.Column():
            outputs = _outputs("t2v")

    def text_to_video(prompt, negative, seed, steps, guidance, frames, progress=gr.Progress()):  # noqa: B008
        return run(Request(prompt, negative, seed, steps, guidance, frames), progress)

    button.click(text_to_video, inputs, outputs, show_progress_on=outputs[0])  # the bar over the clip


def _known_frames_tab(pipe, limits, run, tab: str, keep: str) -> None:
    """Image to video (keep 'first' of an image) or in-betweens (keep 'every:N' of a video)."""
    problem = untrained_task(pipe.info, keep)
    if problem:
        gr.Markdown(f"Not available with this model: {problem}.")
        return
    with gr.Row():
        with gr.Column():
            if keep == "first":
                upload = gr.Image(label="First frame", type="filepath", sources=["upload"], elem_id=f"{tab}-upload")
                every = gr.State(None)
            else:
                gr.Markdown("Upload a clip: every N-th of its frames (and the last) is kept as a keyframe, and the "
                            "model draws the frames in between.")
                upload = gr.Video(label="Keyframes from", sources=["upload"], elem_id=f"{tab}-upload")
                every = gr.Slider(2, max(3, pipe.frames - 1), value=min(4, max(2, pipe.frames - 1)), step=1,
                                  label="Keyframe every N frames")
            inputs = [upload, every, *_settings(pipe, limits, tab)]
            button = gr.Button("Generate", variant="primary", elem_id=f"{tab}-generate")
        with gr.Column():
            outputs = _outputs(tab)

    def from_frames(path, n, prompt, negative, seed, steps, guidance, frames, progress=gr.Progress()):  # noqa: B008
        if not path:
            raise gr.Error("upload a file first", print_exception=False)
        spec = keep if n is None else f"every:{int(n)}"
        return run(Request(prompt, negative, seed, steps, guidance, frames, frames_from=path, keep=spec), progress)

    button.click(from_frames, inputs, outputs, show_progress_on=outputs[0])


def build_app(pipe: TextToVideo, *, model: str | None = None, limits: Limits = DEFAULT_LIMITS) -> gr.Blocks:
    """The demo's page for a loaded pipeline; `model` is its checkpoint path (None: the shipped model).

    Jobs run one at a time (a CPU samples one clip at a time best); their MP4s go to a temporary folder that
    `close(app)` removes.
    """
    limits = replace(limits, frames=max(limits.frames, pipe.frames))  # a model's own length is never refused
    folder = Path(tempfile.mkdtemp(prefix="stillmotion-demo-"))
    run = _runner(pipe, folder, model, limits)
    name = "the shipped model" if model is None else f"`{model}`"
    with gr.Blocks(title="stillmotion demo", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown(f"## stillmotion\nText to video with {name}: {pipe.frames} frames of {pipe.size}x{pipe.size}, "
                    "made on this machine, one clip at a time.")
        with gr.Tabs():
            with gr.Tab("Text to video"):
                _text_to_video_tab(pipe, limits, run)
            with gr.Tab("Image to video"):
                _known_frames_tab(pipe, limits, run, "i2v", "first")
            with gr.Tab("Edit a video"):
                gr.Markdown(EDITING_NOTE)
            with gr.Tab("In-betweens"):
                _known_frames_tab(pipe, limits, run, "between", "every:4")
    app.queue(default_concurrency_limit=1, max_size=16)
    app.stillmotion_folder = folder
    return app


def launch(app: gr.Blocks, *, host: str = "127.0.0.1", port: int = 7860, limits: Limits = DEFAULT_LIMITS) -> str:
    """Start serving `app` in the background and return its URL; `close(app)` stops it."""
    with socket.socket() as probe:  # Gradio's own message names its environment variables, not our --port
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: a closed one's port is free
        try:
            probe.bind((host, port))
        except OSError as e:
            raise OSError(f"cannot serve on {host}:{port} ({e.strerror}); is a demo already running there? "
                          "give another --port") from None
    app.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True, ssr_mode=False,
               max_file_size=f"{limits.upload_mb}mb", footer_links=[])
    return f"http://{host}:{port}"


def close(app: gr.Blocks) -> None:
    """Stop the server and remove the clips it wrote."""
    app.close(verbose=False)
    shutil.rmtree(getattr(app, "stillmotion_folder", ""), ignore_errors=True)
