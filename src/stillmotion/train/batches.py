"""Training examples: which clip, noise, noise level, prompt and frame task each example of each step gets.

Every random choice of a training example (the clip, its noise, its noise level, whether its prompt is dropped
for classifier-free guidance) is a function of (seed, example index), and example indices are a function of the
step. So a run resumed from a checkpoint sees exactly the batches an uninterrupted run would, and N processes
see exactly the global batch one process would: they only split it.

Where a synthetic world's pixels are drawn (`TrainConfig.render`): "host" renders each clip in numpy (in the loop,
or in DataLoader workers ahead of it); "device" draws only the labels and captions on the host (`draw_scenes`, the
same draws `world.sample` makes) and the whole micro-batch's pixels at once on the training device
(data/render_torch.py). Either way `make_batch` builds the same examples from them (with render_dtype float64,
bit for bit), and the loop does not know which.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from stillmotion.cond import Cond
from stillmotion.data.captions import make_caption
from stillmotion.data.render_torch import SceneTensors, labels_to_tensors, render_video
from stillmotion.data.video_io import to_float
from stillmotion.data.worlds import get_world
from stillmotion.diffusion.noise_warp import warped_noise
from stillmotion.diffusion.schedules import sample_training_sigmas
from stillmotion.models.text import TextEncoder
from stillmotion.train import dist
from stillmotion.train.config import TrainConfig, render_problems
from stillmotion.train.flow_consistency import FlowCache
from stillmotion.train.motion import motion_from_flow
from stillmotion.train.tasks import draw_task, task_frame_mask


def example_seed(seed: int, index: int) -> int:
    """The seed of global training example `index` (independent of process count and resumption)."""
    return (seed * 0x9E3779B1 + index * 0x85EBCA77 + 0x632BE5AB) % (2**63 - 1)


def clip_seed(cfg: TrainConfig, index: int) -> int:
    """The seed of the clip that example `index` shows: its own, or with `clip_pool` = K one of K clips (the
    examples cycle through them; noise, noise level and prompt dropout stay the example's own)."""
    return example_seed(cfg.seed, index % cfg.clip_pool if cfg.clip_pool else index)


@dataclass
class Batch:
    x0: torch.Tensor        # (B, C, F, H, W) clean clips in [-1, 1]
    noise: torch.Tensor     # (B, C, F, H, W)
    sigma: torch.Tensor     # (B,) float64 noise levels
    cond: Cond              # text, and known frames (x0 itself) + frame_mask (B, F) when frame tasks are on
    captions: list[str]
    tasks: list[str]        # the frame task of each example (train/tasks.py)
    flow: torch.Tensor | None = None   # (B, F-1, H, W, 2) backward flows of x0, with flow_consistency > 0
    seen: torch.Tensor | None = None   # (B, F-1, H, W) bool: pixels the flow explains (train/flow_consistency.py)
    motion: torch.Tensor | None = None  # (B, 3) each clip's measured hint, never dropped (the planner's target)

    @property
    def loss_mask(self) -> torch.Tensor | None:
        """(B, 1, F, 1, 1): 1 on the frames to predict, 0 on known frames; None when every frame is predicted."""
        if self.cond.frame_mask is None:
            return None
        return (1 - self.cond.frame_mask)[:, None, :, None, None]


FLOW_CACHE = FlowCache()  # per process (and per DataLoader worker); see train/flow_consistency.py


def needs_flows(cfg: TrainConfig, motion_cond: bool) -> bool:
    """Whether training examples need their clips' optical flows (flow consistency, motion hints, warped noise)."""
    return (cfg.flow_consistency > 0 or motion_cond or cfg.noise_warp > 0) and cfg.frames > 1


def clip_flows(cfg: TrainConfig, indices: list[int], clips: list) -> list:
    """The (backward flow, seen) pair of each clip (train/flow_consistency.py), cached per process."""
    return [FLOW_CACHE(clip_seed(cfg, i), clip.video) for i, clip in zip(indices, clips)]


@dataclass
class Scenes:
    """The clips of some examples without their pixels (render="device"): labels packed for the renderer
    (data/render_torch.py) and captions. Small, so DataLoader workers can draw them ahead of the step too."""
    scene: SceneTensors
    captions: list[str]


def draw_scenes(cfg: TrainConfig, source, indices: list[int]) -> Scenes:
    """The labels and captions of examples `indices`, drawn exactly as `source.sample(clip_seed)` draws them
    (labels, then the caption, from one generator), without rendering the pixels."""
    labels, captions = [], []
    for i in indices:
        rng = np.random.default_rng(clip_seed(cfg, i))
        labels.append(source.sample_labels(rng))
        captions.append(make_caption(labels[-1], rng, source.caption_split, p_speed=source.p_speed))
    return Scenes(labels_to_tensors(labels), captions)


def draw_clips(cfg: TrainConfig, source, indices: list[int]) -> list | Scenes:
    """What `make_batch` makes examples `indices` from: their host clips (render="host": rendered or decoded),
    or their `Scenes` (render="device")."""
    if cfg.render == "device":
        return draw_scenes(cfg, source, indices)
    return [source.sample(clip_seed(cfg, i)) for i in indices]


def clean_videos(cfg: TrainConfig, clips: list | Scenes, device) -> tuple[torch.Tensor, list[str]]:
    """The clips as x0 (B, C, F, H, W) float32 in [-1, 1] on `device`, and their captions: host clips converted
    and uploaded, or `Scenes` drawn on the device."""
    if isinstance(clips, Scenes):
        dtype = getattr(torch, cfg.render_dtype)
        return render_video(clips.scene, cfg.frames, cfg.size, device, dtype=dtype), clips.captions
    videos = [to_float(c.video) for c in clips]  # (F, H, W, 3) uint8 -> (C, F, H, W) in [-1, 1]
    return torch.stack(videos).to(device), [c.caption for c in clips]


def check_render(cfg: TrainConfig, flows: bool) -> None:
    """Refuse render="device" where the host must draw the clips (`validate` says so earlier for a config;
    this also covers networks that read motion hints without asking for them in the config)."""
    problems = render_problems(cfg, flows)
    if problems:
        raise ValueError("invalid training config: " + "; ".join(problems))


def make_batch(cfg: TrainConfig, source, text: TextEncoder, indices: list[int], device, clips=None, flows=None,
               *, motion_cond: bool = False) -> Batch:
    """Build the training examples with the given global indices (`clips`: their `draw_clips`, drawn already;
    `flows`: their `clip_flows`, computed already). `motion_cond`: the network reads motion hints; give each
    example its clip's (train/motion.py)."""
    clips = clips if clips is not None else draw_clips(cfg, source, indices)
    if isinstance(clips, Scenes):
        check_render(cfg, needs_flows(cfg, motion_cond))
    x0, clip_captions = clean_videos(cfg, clips, device)  # (B, C, F, H, W)
    with_frames = any(float(w) > 0 for t, w in cfg.tasks.items() if t != "t2v")
    noises, sigmas, captions, tasks, masks, motion_gens = [], [], [], [], [], []
    for i, caption in zip(indices, clip_captions):
        s = example_seed(cfg.seed, i)
        g = torch.Generator().manual_seed(s)
        noises.append(torch.randn(x0.shape[1:], generator=g))  # (C, F, H, W)
        params = {"P_mean": cfg.p_mean, "P_std": cfg.p_std} if cfg.train_sigmas == "lognormal" else {}
        sigmas.append(sample_training_sigmas(1, cfg.train_sigmas, generator=g, **params))
        drop = torch.rand((), generator=g).item() < cfg.cfg_dropout
        captions.append("" if drop else caption)
        tasks.append(draw_task(cfg.tasks, g) if with_frames else "t2v")  # drawn last: t2v-only runs are unchanged
        masks.append(task_frame_mask(tasks[-1], x0.shape[2], g))  # (F,)
        motion_gens.append(g)  # drawn from last (below), so runs without motion hints are unchanged
    emb, mask = text.encode(captions)
    flow = seen = None
    if flows is None and needs_flows(cfg, motion_cond) and x0.shape[2] > 1:
        flows = clip_flows(cfg, indices, clips)
    hints = [motion_from_flow(*f) for f in flows] if flows is not None else [np.zeros(3, np.float32)] * len(indices)
    measured = torch.from_numpy(np.stack(hints)).to(device)  # (B, 3) [dx, dy, 1]: how far each clip moves
    if flows is not None and cfg.flow_consistency > 0:
        flow = torch.from_numpy(np.stack([f for f, _ in flows])).to(device)  # (B, F-1, H, W, 2)
        seen = torch.from_numpy(np.stack([v for _, v in flows])).to(device)  # (B, F-1, H, W)
    if motion_cond:  # the hint from the clip's flow, dropped to "no hint" with probability motion_dropout
        keep = [torch.rand((), generator=g).item() >= cfg.motion_dropout for g in motion_gens]
        motion = measured * torch.tensor(keep, dtype=torch.float32, device=device)[:, None]  # (B, 3)
    noise = torch.stack(noises).to(device)  # (B, C, F, H, W)
    if cfg.noise_warp > 0:  # the noise drifts with the clip's content (diffusion/noise_warp.py)
        noise = warped_noise(noise, measured[:, :2], cfg.noise_warp, generator=motion_gens)
    cond = Cond(text=emb.to(device), text_mask=mask.to(device), motion=motion if motion_cond else None)
    if with_frames:
        cond.frames, cond.frame_mask = x0, torch.stack(masks).to(device)  # known frames are the clip's own
    return Batch(x0=x0, noise=noise, sigma=torch.cat(sigmas).to(device), cond=cond,
                 captions=captions, tasks=tasks, flow=flow, seen=seen, motion=measured if motion_cond else None)


def as_images(batch: Batch, frames: str = "all") -> Batch:
    """The same examples as single-frame images (F = 1): joint image-video training (Ho et al. 2022, VDM).

    Each frame keeps its clip's caption, noise and noise level; the network skips its temporal layers at F = 1,
    so an image step trains only the spatial (image) part. Frame tasks do not apply to images (all t2v).

    frames: "all" gives B*F images, every frame of every clip (a caption then describes any frame of its clip);
        "first" gives B images, each clip's frame 0: the image a keyframe sampler draws at F = 1 (strategy
        "keyframe"), where a clip "moving left" starts right of centre.
    """
    if frames == "first":
        batch = replace(batch, x0=batch.x0[:, :, :1], noise=batch.noise[:, :, :1])
    b, c, f, h, w = batch.x0.shape
    flat = lambda t: t.transpose(1, 2).reshape(b * f, c, 1, h, w)  # (B, C, F, H, W) -> (B*F, C, 1, H, W)
    text = batch.cond.text.repeat_interleave(f, 0) if batch.cond.text is not None else None
    mask = batch.cond.text_mask.repeat_interleave(f, 0) if batch.cond.text_mask is not None else None
    return Batch(x0=flat(batch.x0), noise=flat(batch.noise), sigma=batch.sigma.repeat_interleave(f),
                 cond=Cond(text=text, text_mask=mask), captions=[c_ for c_ in batch.captions for _ in range(f)],
                 tasks=["image"] * (b * f))


def is_image_step(cfg: TrainConfig, step: int) -> bool:
    """Joint image-video training: every `image_every`-th optimizer step trains on single frames (0: never)."""
    return cfg.image_every > 0 and (step + 1) % cfg.image_every == 0


class MicroBatchClips(torch.utils.data.Dataset):
    """Item k = (clips, flows) of micro-batch k of this process (k = step * grad_accum + accumulation round), so
    DataLoader workers can decode them, and measure their optical flows when `with_flows` (the costliest CPU work
    of a step: 12-14 ms a 16-frame clip on one core), ahead of the step that needs them; the same as computing
    them in place. With render="device" the clips are `Scenes` (labels and captions; no flows)."""

    def __init__(self, cfg: TrainConfig, source, micro: int, world_size: int, rank: int, with_flows: bool = False):
        check_render(cfg, with_flows)  # before the loop starts
        self.cfg, self.source, self.micro, self.world_size, self.rank = cfg, source, micro, world_size, rank
        self.with_flows = with_flows

    def indices(self, k: int) -> list[int]:
        step, a = divmod(k, self.cfg.grad_accum)
        first = step * self.cfg.batch_size + (a * self.world_size + self.rank) * self.micro
        return list(range(first, first + self.micro))

    def __getitem__(self, k: int) -> tuple[list | Scenes, list | None]:
        indices = self.indices(k)
        clips = draw_clips(self.cfg, self.source, indices)
        return clips, (clip_flows(self.cfg, indices, clips) if self.with_flows else None)


def make_source(cfg: TrainConfig):
    """What `make_batch` samples clips from: a synthetic world, or a folder of videos (anything
    `open_video_dataset` opens: a captioned folder, UCF-101, Kinetics, curate's kept.jsonl, a preprocess cache)."""
    if cfg.data is not None:
        from stillmotion.data.folder import open_video_dataset
        from stillmotion.data.skips import SKIP_LIST

        return open_video_dataset(cfg.data, frames=cfg.frames, size=cfg.size, seed=cfg.seed,
                                  skip_list=Path(cfg.out) / SKIP_LIST if dist.is_main() else None)
    kwargs = dict(size=cfg.size, frames=cfg.frames)
    if cfg.world == "shapes":
        kwargs["p_two"] = cfg.p_two
    return get_world(cfg.world, **{**kwargs, **cfg.world_options})  # world_options win
