"""Scoring in-betweens: fill the frames between a clip's keyframes, compare with the true frames (PSNR / SSIM).

Held-out shapes-world clips (seeds 10^9 + seed + i, never training examples), keyframes every `every` frames plus
the last one (0, 5, 10, 15 of 16). Three ways to fill the rest, scored only on the frames that were not given:
  diffusion   a model's own interpolation: known keyframes through Cond, the clip's caption as the prompt (the
              model must have been trained with the "interpolate" frame task)
  flow        OpenCV optical flow between neighbouring keyframes, bidirectional warping and blending
              (pipelines/flow_interpolation.py)
  crossfade   a linear blend of the two neighbouring keyframes
"""

from __future__ import annotations

import numpy as np
import torch

from stillmotion.data.video_io import to_float, to_uint8
from stillmotion.data.worlds import get_world
from stillmotion.eval.reconstruction import psnr, ssim
from stillmotion.flow import require_cv2
from stillmotion.pipelines.flow_interpolation import flow_interpolate
from stillmotion.pipelines.interpolate import crossfade, fill_diffusion, interpolate, interpolation_sampling

HELDOUT_SEED = 10**9
GROUPS = {"black": ("black",), "other": ("gray", "gradient", "noise")}  # "other": never seen by the shipped model


def keyframe_mask(frames: int, every: int) -> np.ndarray:
    """(F,) bool: every `every`-th frame and the last one."""
    known = np.zeros(frames, bool)
    known[::every] = True
    known[-1] = True
    return known


def score_interpolation(pipe=None, *, n: int = 32, every: int = 5, steps: int = 20, seed: int = 0,
                        frames: int = 16, size: int = 32) -> dict:
    """PSNR (pooled over all filled frames) and mean SSIM of each way of filling in; `pipe` None skips diffusion."""
    if pipe is not None:
        frames, size = pipe.frames, pipe.size
    world = get_world("shapes", size=size, frames=frames, p_two=0.0)
    clips = [world.sample(HELDOUT_SEED + seed + i) for i in range(n)]
    known = keyframe_mask(frames, every)
    ways = {"flow": [flow_interpolate(c.video, known) for c in clips],
            "crossfade": [crossfade(c.video, known) for c in clips]}
    if pipe is not None:
        videos = torch.stack([to_float(c.video) for c in clips])  # (N, C, F, H, W)
        mask = torch.from_numpy(known).float().expand(n, -1)
        made = [pipe([c.caption for c in clips[i:i + 16]], known_frames=videos[i:i + 16], frame_mask=mask[i:i + 16],
                     sampling=pipe.sampling.merged(steps=steps), seed=seed + i, progress=False)
                for i in range(0, n, 16)]
        ways = {"diffusion": list(to_uint8(torch.cat(made))), **ways}
    truth = np.concatenate([c.video[~known] for c in clips])
    return {"protocol": {"n": n, "keyframes": np.flatnonzero(known).tolist(), "seeds": f"{HELDOUT_SEED + seed} + i",
                         "steps": steps, "scored": "the frames that were not given"},
            **{name: {"psnr": float(psnr(np.concatenate([o[~known] for o in outs]), truth)),
                      "ssim": float(np.mean([ssim(o[~known], c.video[~known]) for o, c in zip(outs, clips)]))}
               for name, outs in ways.items()}}


# ------------------------------------------------------------------------------------- `stillmotion interpolate`

def world_clips(n: int, *, seed: int = 0, group: str = "black", factor: int = 4, frames: int = 16, size: int = 32,
                p_two: float = 0.2) -> list[tuple[np.ndarray, str]]:
    """n held-out shapes-world clips cut to end on a keyframe: [(video (T, H, W, 3) uint8, caption)].

    Clip i is the world's clip of seed 10^9 + seed + i (never a training seed), `frames` long as in training, cut
    to its first (frames - 1) // factor * factor + 1 frames (13 of 16 at factor 4: keyframes 0, 4, 8, 12). The
    "other" group draws the same scenes on gray, gradient and noise backgrounds in turn (the same seed gives the
    same objects and motion), so the two groups differ only in the background.
    """
    if group not in GROUPS:
        raise ValueError(f"unknown background group '{group}'; choose one of {', '.join(GROUPS)}")
    keep = (frames - 1) // factor * factor + 1
    worlds = [get_world("shapes", size=size, frames=frames, p_two=p_two, background=b, caption_split="heldout")
              for b in GROUPS[group]]
    clips = [worlds[i % len(worlds)].sample(HELDOUT_SEED + seed + i) for i in range(n)]
    return [(c.video[:keep], c.caption) for c in clips]


def score_filled(outs: list[np.ndarray], truths: list[np.ndarray], factor: int) -> dict:
    """PSNR and SSIM of the filled frames (every frame but each factor-th) of `outs` against `truths`.

    Returns:
        psnr: pooled over every filled frame of every clip (one MSE); psnr_clip: the mean of per-clip PSNRs;
        ssim: the mean over clips of each clip's mean per-frame SSIM; frames: filled frames scored.
    """
    filled = np.ones(len(truths[0]), bool)
    filled[::factor] = False
    pairs = [(o[filled], t[filled]) for o, t in zip(outs, truths)]
    clip_psnr = [psnr(o, t) for o, t in pairs]
    return {"psnr": float(psnr(np.concatenate([o for o, _ in pairs]), np.concatenate([t for _, t in pairs]))),
            "psnr_clip": float(np.mean(np.minimum(clip_psnr, 100.0))),  # an exact clip counts as 100 dB, not inf
            "ssim": float(np.mean([ssim(o, t) for o, t in pairs])),
            "frames": int(filled.sum() * len(pairs))}


def fill_all(truths: list[np.ndarray], factor: int, ways: dict, pipe=None) -> dict:
    """Fill every clip's in-betweens from its keyframes (every factor-th frame), each way.

    Args:
        truths: [(T, H, W, 3) uint8] full-rate clips, T = (N - 1) * factor + 1.
        ways: {name: (method, options)}: a pipelines.interpolate method and its options; diffusion's options
            go to fill_diffusion (prompts: one per clip, or None for none).

    Returns:
        {name: ([(T, H, W, 3) uint8] filled clips, seconds)}, after checking that the given frames came back exactly.
    """
    import time

    given = [truth[::factor] for truth in truths]
    results = {}
    for name, (method, options) in ways.items():
        start = time.time()
        if method == "diffusion":
            outs = fill_diffusion(pipe, given, factor, **options)
        else:
            outs = [interpolate(frames, factor, method, **options) for frames in given]
        if not all(np.array_equal(o[::factor], g) for o, g in zip(outs, given)):
            raise AssertionError(f"{name}: the given frames did not come back exactly")
        results[name] = (outs, time.time() - start)
    return results


def scores(filled: dict, truths: list[np.ndarray], factor: int) -> dict:
    """{name: score_filled + seconds (None where not timed)} for fill_all's result."""
    return {name: {**score_filled(outs, truths, factor), "seconds": None if sec is None else round(sec, 1)}
            for name, (outs, sec) in filled.items()}


# ------------------------------------------------------------------------------------------- procedural footage

FOOTAGE = ("pan", "zoom", "rotate", "ball", "parallax")


def _terrain(rng: np.random.Generator, side: int) -> np.ndarray:
    """(side, side, 3) uint8: a natural-looking aerial texture, 1/f^2 noise heights coloured water..snow."""
    fy, fx = np.meshgrid(np.fft.fftfreq(side), np.fft.fftfreq(side), indexing="ij")
    amp = 1.0 / np.maximum(np.hypot(fx, fy), 1.0 / side) ** 2.0  # a 1/f^2 power spectrum, like natural images
    height = np.fft.ifft2(amp * np.exp(2j * np.pi * rng.random((side, side)))).real
    height = (height - height.mean()) / height.std()
    levels = np.array([-9, -0.6, -0.3, 0.5, 1.2, 9])  # water, sand, grass, forest, rock, snow
    colours = np.array([[40, 70, 140], [200, 190, 140], [90, 150, 60], [40, 90, 40], [120, 110, 100],
                        [240, 240, 245]], np.float64)
    rgb = np.stack([np.interp(height, levels, colours[:, c]) for c in range(3)], -1)
    detail = np.fft.ifft2(np.exp(2j * np.pi * rng.random((side, side))) / np.maximum(np.hypot(fx, fy), 1 / side)).real
    rgb *= 1 + 0.12 * (detail / detail.std())[..., None]  # fine grain, so flat regions are not flat
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _camera(image: np.ndarray, frames: int, shape: tuple[int, int], path) -> np.ndarray:
    """(F, h, w, 3) views of `image` through an affine camera: path(u) -> (centre x, centre y, zoom, degrees)."""
    cv2 = require_cv2("procedural footage")
    h, w = shape
    out = []
    for i in range(frames):
        cx, cy, zoom, degrees = path(i / max(frames - 1, 1))
        m = cv2.getRotationMatrix2D((cx, cy), degrees, zoom)  # image -> view, around (cx, cy)
        m[:, 2] += (w / 2 - cx, h / 2 - cy)  # (cx, cy) lands in the view's centre
        out.append(cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    return np.stack(out)


def _ball(background: np.ndarray, frames: int, rng: np.random.Generator) -> np.ndarray:
    """A shaded ball rolling on a curve across a still textured background: (F, h, w, 3) uint8."""
    h, w, _ = background.shape
    radius = h / 7
    colour = rng.uniform(120, 255, 3)
    y, x = np.mgrid[0:h, 0:w]
    out = []
    for i in range(frames):
        u = i / max(frames - 1, 1)
        cx, cy = w * (0.2 + 0.6 * u), h * (0.65 - 0.3 * np.sin(np.pi * u))
        d = np.hypot(x - cx, y - cy) / radius
        inside = np.clip(1.5 * (1 - d) * radius / 2, 0, 1)[..., None]  # anti-aliased edge
        shade = np.clip(1.1 - 0.6 * np.hypot(x - cx + radius / 3, y - cy + radius / 3) / radius, 0.2, 1.2)[..., None]
        out.append(np.rint(background * (1 - inside) + np.clip(colour * shade, 0, 255) * inside))
    return np.clip(np.stack(out), 0, 255).astype(np.uint8)


def _parallax(rng: np.random.Generator, frames: int, shape: tuple[int, int]) -> np.ndarray:
    """Sky, far hills and a near ridge, panned at three speeds (near moves fastest): (F, h, w, 3) uint8."""
    h, w = shape
    sky = np.linspace([110, 160, 230], [200, 220, 240], h)[:, None, :].repeat(w, 1)  # (h, w, 3)
    x = np.arange(3 * w)
    out = []
    ridges = [(np.cumsum(rng.normal(0, s, 3 * w)), base, np.array(c)) for s, base, c in
              ((0.8, 0.45, (110, 130, 150)), (1.5, 0.7, (50, 80, 40)))]
    grain = rng.normal(0, 8, (h, 3 * w, 3))
    for i in range(frames):
        frame = sky.copy()
        for layer, (walk, base, colour) in enumerate(ridges):
            shift = i * (1.5 + 3.5 * layer)  # px per frame: far 1.5, near 5
            top = h * base + np.interp(x[:w] + shift, x, walk - walk.mean())  # (w,) ridge height
            below = np.arange(h)[:, None] >= top[None, :]
            texture = colour + grain[:, np.clip((x[:w] + shift).astype(int), 0, 3 * w - 1)]
            frame = np.where(below[..., None], texture, frame)
        out.append(frame)
    return np.clip(np.rint(np.stack(out)), 0, 255).astype(np.uint8)


def make_footage(name: str, *, frames: int = 33, shape: tuple[int, int] = (120, 160), seed: int = 0) -> np.ndarray:
    """One procedural natural-looking clip (F, h, w, 3) uint8, a stand-in for camera footage (no real video ships).

    pan: a camera gliding over an aerial landscape; zoom: pushing in on it; rotate: turning over it; ball: a shaded
    ball rolling over a still textured ground; parallax: sky, far hills and near ridge panned at three speeds.
    """
    rng = np.random.default_rng([seed, FOOTAGE.index(name)])
    h, w = shape
    if name == "parallax":
        return _parallax(rng, frames, shape)
    land = _terrain(rng, 512)
    if name == "ball":
        return _ball(_camera(land, 1, shape, lambda u: (256, 256, 1.0, 0.0))[0].astype(np.float64), frames, rng)
    paths = {"pan": lambda u: (120 + 270 * u, 180 + 100 * u, 1.0, 0.0),  # 8 px a frame
             "zoom": lambda u: (256, 256, 1.0 + 1.5 * u, 0.0),
             "rotate": lambda u: (256, 256, 1.2, 120.0 * u)}
    if name not in paths:
        raise ValueError(f"unknown footage '{name}'; choose one of {', '.join(FOOTAGE)}")
    return _camera(land, frames, (h, w), paths[name])


def footage_clips(folder, *, size: int = 32, frames: int = 33, seed: int = 0, fps: float = 24) -> list:
    """Each procedural clip written as an .mp4 (H.264, as a camera would) and read back like a user's file.

    Returns:
        [(name, (frames, size, size, 3) uint8, note)]: the frames as `stillmotion interpolate` sees them
        (pipelines/inputs.read_input_video: centre crop, resized to the canvas) and its note.
    """
    from pathlib import Path

    from stillmotion.data.video_io import write_video
    from stillmotion.pipelines.inputs import read_input_video

    out = []
    for name in FOOTAGE:
        path = write_video(Path(folder) / f"{name}.mp4", make_footage(name, frames=frames, seed=seed), fps=fps)
        video, note = read_input_video(path, size)
        out.append((name, video, note))
    return out


# ------------------------------------------------------------------------------------------- the measurement

PROTOCOL = """\
World clips: n held-out shapes-world clips per background group (seeds 10^9 + seed + i, never training seeds; one
object, or two with probability 0.2, any of the world's motions, as in training; captions in held-out wordings),
at the model's length (16 frames) cut to the first 13 so that the last is a keyframe. Keyframes: every factor-th
frame (0, 4, 8, 12), the clip at 1/factor of its frame rate; those are the input, the other frames the truth.
Groups: "black" (the only background the shipped model saw in training) and "other" (the same scenes on gray,
gradient and noise backgrounds in turn). Footage: procedural natural-looking clips (eval/interpolation.py
make_footage: an aerial landscape panned, zoomed and rotated under the camera, a ball rolling over it, a
three-layer parallax pan), 160x120 at 24 fps, written as H.264 .mp4 with PyAV and read back as a user's file
(centre crop, resized to the canvas); every factor-th frame is the input. Methods, on the same frames in the same
run: diffusion (the command's default: no prompt), diffusion + caption (the world clip's caption as the prompt),
flow (OpenCV Farneback flow, warped both ways and blended), blend (crossfade). Scored on the filled frames only
(the given frames come back bit for bit, checked): PSNR pooled over all filled frames (one MSE), the mean of
per-clip PSNRs, mean SSIM (11x11 Gaussian window), and the share of clips where diffusion's PSNR beats flow's."""


def _held(truth: np.ndarray, factor: int) -> np.ndarray:
    """The clip at 1/factor of its frame rate, each kept frame shown factor times: (T, H, W, 3)."""
    return np.repeat(truth[::factor], factor, axis=0)[:len(truth)]


def _beats(filled: dict, truths: list[np.ndarray], factor: int, a: str = "diffusion", b: str = "flow") -> float:
    """Share of clips where `a`'s PSNR on the filled frames is higher than `b`'s."""
    mask = np.ones(len(truths[0]), bool)
    mask[::factor] = False
    wins = [psnr(x[mask], t[mask]) > psnr(y[mask], t[mask]) for x, y, t in zip(filled[a][0], filled[b][0], truths)]
    return float(np.mean(wins))


def measure_interpolation(pipe, *, n: int = 128, factor: int = 4, seed: int = 0, diffusion: dict | None = None,
                          caption_guidance: float = 1.0, footage_dir=None) -> tuple[dict, list[np.ndarray]]:
    """The three methods on held-out world clips (both background groups, and pooled) and on procedural footage.

    Args:
        pipe: the model (TextToVideo) for the diffusion method.
        diffusion: fill_diffusion options (window_keys, sampling); the seed is `seed`.
        footage_dir: where the footage .mp4 files are written (None: skip footage).

    Returns:
        (report, gallery): report as in PROTOCOL; gallery: [(T, H, W, 3)], three per world clip (two clips per
        group): the clip at 1/factor of its frame rate, diffusion's in-betweens, flow's.
    """
    options = {**(diffusion or {}), "seed": seed}
    options["sampling"] = options.get("sampling") or interpolation_sampling(pipe)
    report = {"protocol": PROTOCOL, "n": n, "factor": factor, "seed": seed,
              "diffusion": {**options, "sampling": options["sampling"].to_dict()},
              "caption_guidance": caption_guidance, "world": {}}
    pooled_truths, pooled = [], {}
    gallery = []
    for group in GROUPS:
        clips = world_clips(n, seed=seed, group=group, factor=factor, frames=pipe.frames, size=pipe.size)
        truths, captions = [v for v, _ in clips], [c for _, c in clips]
        captioned = {**options, "prompts": captions, "sampling": options["sampling"].merged(guidance=caption_guidance)}
        ways = {"diffusion": ("diffusion", options), "diffusion + caption": ("diffusion", captioned),
                "flow": ("flow", {}), "blend": ("blend", {})}
        filled = fill_all(truths, factor, ways, pipe)
        report["world"][group] = {**scores(filled, truths, factor),
                                  "diffusion beats flow (share of clips)": _beats(filled, truths, factor)}
        pooled_truths += truths
        for name, (outs, sec) in filled.items():
            pooled.setdefault(name, ([], 0.0))
            pooled[name] = (pooled[name][0] + outs, pooled[name][1] + sec)
        gallery += [video for i in range(min(2, n)) for video in
                    (_held(truths[i], factor), filled["diffusion"][0][i], filled["flow"][0][i])]
    report["world"]["pooled"] = {**scores(pooled, pooled_truths, factor),
                                 "diffusion beats flow (share of clips)": _beats(pooled, pooled_truths, factor)}
    if footage_dir is not None:
        report["footage"] = measure_footage(pipe, footage_dir, factor=factor, seed=seed, diffusion=options)
    return report, gallery


def measure_footage(pipe, folder, *, factor: int = 4, seed: int = 0, diffusion: dict | None = None) -> dict:
    """diffusion (no prompt), flow and blend on each procedural footage clip (see PROTOCOL), and pooled."""
    clips = footage_clips(folder, size=pipe.size, frames=8 * factor + 1, seed=seed)
    truths = [video for _, video, _ in clips]
    ways = {"diffusion": ("diffusion", diffusion or {}), "flow": ("flow", {}), "blend": ("blend", {})}
    filled = fill_all(truths, factor, ways, pipe)
    report = {"clips": {name: note for name, _, note in clips}}
    for i, (name, _, _) in enumerate(clips):
        report[name] = scores({k: ([outs[i]], None) for k, (outs, _) in filled.items()}, [truths[i]], factor)
    report["pooled"] = scores(filled, truths, factor)
    return report
