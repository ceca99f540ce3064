"""In-betweens: a video made `factor` times smoother, every given frame kept exactly.

N given frames become (N - 1) * factor + 1: given frame j lands at output frame j * factor, and `factor - 1` new
frames fill each gap. Three ways to fill them:

  diffusion  the model's own interpolation task (train/tasks.py "interpolate": k evenly spaced keyframes, first and
             last included, known through Cond; the network draws the frames in between). The video is cut into
             windows of up to `window_keys` given frames, (k - 1) * factor + 1 output frames each, so that the given
             frames of a window sit exactly at linspace(0, F - 1, k), the spacing the model was trained on;
             neighbouring windows share their boundary frame, which both keep, so they join without a seam in the
             given frames. Windows are sampled independently (batched) and the given frames are pasted back
             exactly, as TextToVideo does for every known frame.
  flow       OpenCV optical flow between neighbouring given frames, warped both ways and blended
             (pipelines/flow_interpolation.py); no model.
  blend      a crossfade of the two neighbouring given frames (`crossfade`); no model.

All three work on the same frames, the input already fitted to the model's canvas (pipelines/inputs.py).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from stillmotion.data.video_io import to_float, to_uint8
from stillmotion.pipelines.flow_interpolation import flow_interpolate
from stillmotion.pipelines.sampling import SamplingConfig

METHODS = ("diffusion", "flow", "blend")
WINDOW_KEYS = 4  # given frames per window: 13 frames at factor 4 (measured: docs/applications.md)
SAMPLER = "ddpm"  # stochastic; measured above the deterministic dpmpp-2m here (docs/applications.md)
GUIDANCE = 1.0  # the keyframes decide; guidance above 1 measured worse (the same doc)
MAX_OUTPUT_FRAMES = 4096  # an output longer than this is refused before any work


def crossfade(video: np.ndarray, known: np.ndarray) -> np.ndarray:
    """(F, H, W, 3) uint8 with each unknown frame between two known ones a linear blend of those two."""
    out = video.copy()
    keys = np.flatnonzero(known)
    for a, b in zip(keys[:-1], keys[1:]):
        for i in range(a + 1, b):
            t = (i - a) / (b - a)
            out[i] = np.rint((1 - t) * video[a] + t * video[b])
    return out


def output_length(frames: int, factor: int) -> int:
    """Output frames for `frames` given frames made `factor` times smoother: (frames - 1) * factor + 1."""
    return (frames - 1) * factor + 1


def check_request(frames: int, factor: int, *, max_frames: int = MAX_OUTPUT_FRAMES) -> None:
    """Refuse, with a one-line reason, what cannot be interpolated: under 2 given frames, factor < 2, too long."""
    if factor < 2:
        raise ValueError(f"factor must be >= 2 (the output has factor - 1 new frames between each pair of given "
                         f"frames); got {factor}")
    if frames < 2:
        raise ValueError(f"in-betweens need at least 2 frames; got {frames}")
    total = output_length(frames, factor)
    if total > max_frames:
        raise ValueError(f"{frames} frames at factor {factor} would make {total} frames, over the limit of "
                         f"{max_frames}; cut the video shorter or lower the factor")


def spread(frames: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Place the given frames on the output timeline.

    Args:
        frames: (N, H, W, 3) uint8 given frames.

    Returns:
        video (T, H, W, 3) uint8 with frame j at j * factor and zeros between, and known (T,) bool;
        T = (N - 1) * factor + 1.
    """
    n = len(frames)
    check_request(n, factor, max_frames=math.inf)
    video = np.zeros((output_length(n, factor), *frames.shape[1:]), np.uint8)
    video[::factor] = frames
    known = np.zeros(len(video), bool)
    known[::factor] = True
    return video, known


def windows(frames: int, window_keys: int) -> list[tuple[int, int]]:
    """Split `frames` given frames into windows of at most `window_keys` that share their boundary frame.

    The gaps (frames - 1 of them) are spread as evenly as possible over the fewest windows, so a 5-frame video with
    window_keys 4 gives windows of 3 and 3 frames, not 4 and 2.

    Returns:
        [(first, last)] given-frame indices of each window, inclusive; last of one is first of the next.
    """
    if window_keys < 2:
        raise ValueError(f"window_keys must be >= 2 (a window needs two given frames); got {window_keys}")
    gaps = frames - 1
    count = max(1, math.ceil(gaps / (window_keys - 1)))
    bounds = [round(i * gaps / count) for i in range(count + 1)]  # 0 = b0 < b1 < ... < b_count = gaps
    return list(zip(bounds[:-1], bounds[1:]))


def interpolation_sampling(pipe) -> SamplingConfig:
    """The model's sampling settings with the in-betweens' sampler and guidance (SAMPLER, GUIDANCE)."""
    return pipe.sampling.merged(sampler=SAMPLER, guidance=GUIDANCE)


def fill_diffusion(pipe, clips: list[np.ndarray], factor: int, *, prompts: list[str] | None = None,
                   window_keys: int = WINDOW_KEYS, sampling: SamplingConfig | None = None, seed: int = 0,
                   batch: int = 16, progress: bool = False) -> list[np.ndarray]:
    """The model's in-betweens of several videos, window by window (see the module docstring).

    Args:
        pipe: a TextToVideo whose model was trained with the interpolate frame task.
        clips: [(N_i, H, W, 3) uint8] given frames at the model's size, N_i >= 2.
        prompts: what each video shows (None or "": no prompt, the given frames alone decide the motion).
        sampling: None: `interpolation_sampling(pipe)`.
        batch: windows per sampler call; windows of the same length (from any video) share calls, the k-th call
            sampling with seed + k.

    Returns:
        [(T_i, H, W, 3) uint8], T_i = (N_i - 1) * factor + 1, the given frames exactly as given.
    """
    prompts = [""] * len(clips) if prompts is None else list(prompts)
    sampling = sampling or interpolation_sampling(pipe)
    placed = [spread(frames, factor) for frames in clips]  # [(video (T, H, W, 3), known (T,))]
    spans = [(c, a * factor, b * factor + 1) for c, frames in enumerate(clips)
             for a, b in windows(len(frames), window_keys)]  # (video, first, end) output frame ranges
    calls = 0
    for length in sorted({b - a for _, a, b in spans}):
        same = [s for s in spans if s[2] - s[1] == length]
        for i in range(0, len(same), batch):
            chunk = same[i:i + batch]
            known = torch.stack([to_float(placed[c][0][a:b]) for c, a, b in chunk])  # (B, C, length, H, W)
            mask = torch.stack([torch.from_numpy(placed[c][1][a:b]).float() for c, a, b in chunk])  # (B, length)
            made = pipe([prompts[c] for c, _, _ in chunk], known_frames=known, frame_mask=mask, frames=length,
                        sampling=sampling, seed=seed + calls, progress=progress)
            calls += 1
            for (c, a, b), out in zip(chunk, to_uint8(made)):  # out (length, H, W, 3)
                video, given = placed[c]
                video[a:b] = np.where(given[a:b, None, None, None], video[a:b], out)
    return [video for video, _ in placed]


def interpolate(frames: np.ndarray, factor: int, method: str = "diffusion", pipe=None, **options) -> np.ndarray:
    """Fill `factor - 1` frames between each pair of given frames.

    Args:
        frames: (N, H, W, 3) uint8, N >= 2.
        factor: >= 2.
        method: "diffusion" (needs `pipe`; `options`, and `prompt` for this video, go to `fill_diffusion`),
            "flow" or "blend".

    Returns:
        (T, H, W, 3) uint8, T = (N - 1) * factor + 1; output frame j * factor is given frame j, bit for bit.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method '{method}'; choose one of: {', '.join(METHODS)}")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"interpolate: frames must be (N, H, W, 3) uint8; got {frames.shape} {frames.dtype}")
    if method == "diffusion":
        if pipe is None:
            raise ValueError("method 'diffusion' needs a model (pipe)")
        prompt = options.pop("prompt", "")
        return fill_diffusion(pipe, [frames], factor, prompts=[prompt], **options)[0]
    video, known = spread(frames, factor)
    return flow_interpolate(video, known) if method == "flow" else crossfade(video, known)
