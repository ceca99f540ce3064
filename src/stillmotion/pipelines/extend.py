"""Long videos: continue a clip past the model's length in overlapping windows, each conditioned on the past.

A model trained on F-frame clips with the prediction task (train/tasks.py: the first k <= F/2 frames known)
continues a video by one window at a time (the autoregressive extension of Video Diffusion Models, Ho et al.
2022, sec. 3.1; MCVD, Voleti et al. 2022):

    window 1   the first F frames: the user's video, or text-to-video with the model's own strategy
    window w   F frames whose first K are the last K frames made so far (known, kept exactly); the network
               makes the other F - K, of which those still needed are appended

so every window is one call of `TextToVideo` with known frames, and each new frame is the network's: nothing is
blended or pasted but the frames a window was given. The frames already made never change. A window is always
the model's full length F (its frame positions and motion hint are per clip), even when fewer frames are still
needed; the surplus at the end is dropped.

`method="joint"` is the alternative: one call over all frames at once (the model's windowed space-time attention,
`UNetConfig.spacetime_window`), with the given frames known. `stillmotion experiment extend` measured both and
the context K; the defaults below are its choice (docs/applications-extend.md).
"""

from __future__ import annotations

import torch
from torch import Tensor

METHODS = ("windows", "joint")
DEFAULT_METHOD = "windows"
DEFAULT_CONTEXT = 2  # chosen on seed 1 from K = 1, 2, 4, 8 (docs/applications-extend.md); trained: 1 .. F/2
SEED_STRIDE = 0x9E3779B97F4A7C15  # window w samples with seed + w * SEED_STRIDE (mod 2**63): distinct per window
MAX_SEED = 2**63 - 1


def window_plan(given: int, frames: int, window: int, context: int) -> list[tuple[int, int]]:
    """Where each continuation window sits: [(first frame of the window, frames it knows)], one per window.

    The window starting at `start` knows frames start .. start + known - 1 (the last `known` frames made so far)
    and makes frames start + known .. start + window - 1; its first new frame, start + known, is a seam.

    Args:
        given: frames there before the first continuation window (the user's video, or the first window).
        frames: the length wanted. window: the model's clip length F. context: K, frames each window knows.
    """
    if given < 1 or window < 2 or not 1 <= context < window:
        raise ValueError(f"window_plan: need given >= 1, window >= 2 and 1 <= context < window; got given={given}, "
                         f"window={window}, context={context}")
    plan, made = [], given
    while made < frames:
        known = min(context, made)
        plan.append((made - known, known))
        made += window - known
    return plan


def seams(given: int, frames: int, window: int, context: int) -> list[int]:
    """The first new frame of every continuation window (the frame after the last one it was given)."""
    return [start + known for start, known in window_plan(given, frames, window, context)]


def window_seed(seed: int, w: int) -> int:
    """The sampling seed of window w (window 0: `seed` itself, so the first window is plain `generate`'s clip)."""
    return (seed + w * SEED_STRIDE) % (MAX_SEED + 1)


def continues(pipe) -> bool:
    """Whether the model was trained to continue a video (the predict task; a config without a training record
    is given the benefit of the doubt) and has a window to continue in (at least 2 frames)."""
    train = pipe.info.get("train")
    tasks = (train.get("tasks") or {"t2v": 1.0}) if isinstance(train, dict) else {"predict": 1.0}  # TrainConfig's
    return pipe.frames >= 2 and float(tasks.get("predict", 0)) > 0


def default_context(pipe) -> int:
    """DEFAULT_CONTEXT, or half the model's window where that is less (what the predict task trains)."""
    return max(1, min(DEFAULT_CONTEXT, pipe.frames // 2))


def check_extend(pipe, frames: int, given: int, context: int, method: str = DEFAULT_METHOD) -> None:
    """Refuse, with one line that says what to do, what `extend` cannot do; called before any sampling.

    Args:
        frames: the length asked for. given: frames of the user's video (0: none, text-to-video).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method '{method}'; choose one of: {', '.join(METHODS)}")
    if given and frames <= given:
        raise ValueError(f"asked for {frames} frames but the video has {given} already; ask for more frames than "
                         "that (the given frames are kept as they are)")
    if method == "windows" and not 1 <= context <= pipe.frames // 2:
        raise ValueError(f"context must be 1 .. {pipe.frames // 2} frames (the model continues from at most half "
                         f"of its {pipe.frames}-frame window, as trained); got {context}")
    needs_predict = given > 0 or (method == "windows" and frames > pipe.frames)
    if needs_predict and not continues(pipe):
        raise ValueError("this model was not trained to continue a video (its config.json's train.tasks has no "
                         "'predict' weight), so it cannot continue frames it is given or make clips longer than its "
                         f"{pipe.frames} frames window by window; use a model trained with the predict task")


@torch.inference_mode()
def extend(pipe, prompts: str | list[str], frames: int, *, video: Tensor | None = None,
           context: int | None = None, method: str = DEFAULT_METHOD, seed: int = 0, progress: bool = True,
           **options) -> Tensor:
    """A clip of `frames` frames per prompt: the given video (or a first window from the text) continued.

    Args:
        pipe: a `TextToVideo` whose model was trained with the predict task.
        prompts: a prompt or a list of B prompts.
        frames: the length wanted (more than the given video's).
        video: (B, 3, L, H, W) in [-1, 1], the frames to continue, returned exactly; None: text-to-video, the
            first `pipe.frames` frames made as `pipe(...)` makes them (with its sampling's strategy).
        context: K, the frames each window knows (1 .. pipe.frames // 2; None: `default_context`).
        method: "windows" (see the module docstring) or "joint" (all frames in one call).
        seed: window w samples with `window_seed(seed, w)`.
        options: passed to every `pipe` call (sampling, negative, motion, callback).
    Returns:
        (B, 3, frames, H, W) in [-1, 1]; frames [0, L) are `video` exactly.
    """
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    b, window = len(prompts), pipe.frames
    given = 0 if video is None else video.shape[2]
    context = default_context(pipe) if context is None else context
    check_extend(pipe, frames, given, context, method)
    if video is not None and (video.shape[0] != b or video.shape[1] != 3 or video.shape[3:] != (pipe.size,) * 2):
        raise ValueError(f"video must be ({b}, 3, L, {pipe.size}, {pipe.size}); got {tuple(video.shape)}")
    if method == "joint":
        return _joint(pipe, prompts, frames, video, seed=seed, progress=progress, **options)
    if video is None:  # the first window from the text alone, as the model makes any clip
        video = pipe(prompts, frames=min(frames, window), seed=seed, progress=progress, **options)
    clip = video.to(pipe.device)  # (B, 3, L, H, W), grows by the new frames of each window
    for w, (start, known) in enumerate(window_plan(clip.shape[2], frames, window, context), start=1):
        made = clip[:, :, start:start + known]  # (B, 3, K, H, W): the last K frames so far
        past = torch.zeros(b, 3, window, pipe.size, pipe.size, device=clip.device)
        past[:, :, :known] = made
        mask = torch.zeros(b, window)
        mask[:, :known] = 1
        out = pipe(prompts, frames=window, known_frames=past, frame_mask=mask, seed=window_seed(seed, w),
                   progress=progress, **options)  # (B, 3, F, H, W); its first K frames are `made` exactly
        clip = torch.cat([clip, out[:, :, known:known + frames - clip.shape[2]]], dim=2)
    return clip


def _joint(pipe, prompts: list[str], frames: int, video: Tensor | None, *, seed: int, progress: bool,
           **options) -> Tensor:
    """All frames in one call (the network's attention windows span the clip), the given frames known."""
    if video is None:
        return pipe(prompts, frames=frames, seed=seed, progress=progress, **options)
    b, given = len(prompts), video.shape[2]
    past = torch.zeros(b, 3, frames, pipe.size, pipe.size)
    past[:, :, :given] = video.cpu()
    mask = torch.zeros(b, frames)
    mask[:, :given] = 1
    return pipe(prompts, frames=frames, known_frames=past, frame_mask=mask, seed=seed, progress=progress, **options)
