"""Training configuration: one dataclass, named presets, type-checked overrides.

The config is saved as `config.json` beside every checkpoint, so a run can always be reproduced and resumed
from its folder alone.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path

from stillmotion.atomic import write_atomic
from stillmotion.fieldtypes import type_name
from stillmotion.models.registry import UNET_PRESETS, unet_preset
from stillmotion.models.unet import UNetConfig, drop_retired
from stillmotion.pipelines.sampling import SamplingConfig
from stillmotion.train.tasks import check_task_weights

RENDERS = ("host", "device")           # where a synthetic world's clips are drawn (TrainConfig.render)
RENDER_DTYPES = ("float32", "float64")  # render="device": the per-pixel arithmetic (data/render_torch.py)
IMAGE_FRAMES = ("all", "first")         # which frames of its clips an image step trains on (train/batches.py)
# options of earlier versions, and the value that made them do nothing (a config that has them at that value loads)
RETIRED_OPTIONS = {"sample_trajectory_sigma": 0.0, "sample_colour_sigma": 0.0}


@dataclass
class TrainConfig:
    # data
    world: str = "shapes"               # synthetic world: shapes | digits
    data: str | None = None             # a folder of videos with captions instead of a world
    frames: int = 16
    size: int = 32
    p_two: float = 0.3                  # shapes world: probability of two objects in a clip
    world_options: dict = field(default_factory=dict)  # more keyword arguments of the world, e.g.
    #                                     {"motions": ["left", "right"], "background": "mixed"}
    render: str = "host"                # where a world's pixels are drawn: "host" (numpy, in the loop or in
    #                                     DataLoader workers) or "device" (labels and captions drawn on the host,
    #                                     pixels by data/render_torch.py on the training device; no optical
    #                                     flows, so not with motion hints, noise_warp or flow_consistency)
    render_dtype: str = "float32"       # render="device": per-pixel precision; float64 is numpy's arithmetic
    #                                     (the host's clips exactly), float32 is the fast one (1 level off on
    #                                     ~1e-6 of the values)
    # model and diffusion
    model: UNetConfig = field(default_factory=lambda: replace(UNET_PRESETS["cpu"]))  # the U-Net: a preset of
    #                                     models/registry.py by name (--model cpu-m), any field changed by
    #                                     --set model.FIELD=VALUE (e.g. model.motion_cond=true); its flags are
    #                                     checked together by UNetConfig. text_dim follows the text encoder
    init_from: str | None = None        # start from these weights (a checkpoint or run folder) instead of init
    parameterization: str = "v"         # eps | v | x0 | edm | flow
    sigma_data: float = 0.5
    data_mean: float = 0.0              # the denoiser works on x - data_mean (diffusion/denoiser.py); shapes: ~-0.9
    train_sigmas: str = "lognormal"     # training noise-level distribution
    p_mean: float = -0.4                # lognormal noise levels: log(sigma) ~ N(p_mean, p_std^2). Wider and higher
    p_std: float = 1.6                  # than EDM's (-1.2, 1.2): small mostly-empty clips are decided at high
    #                                     noise, but the low levels must still be trained (p_mean 0.4, std 1.4
    #                                     left visible residual noise after 15 min)
    clip_pool: int | None = None        # train on only this many distinct clips (example i shows clip i mod K), to
    #                                     measure what less video data does; None: a fresh clip every example
    image_every: int = 0                # joint image-video training: every N-th step trains on the batch's frames
    #                                     as single images (F = 1, spatial layers only); 0: videos only
    image_frames: str = "all"           # what an image step trains on: "all" frames of its clips, or each clip's
    #                                     "first" frame (what the "keyframe" sampling strategy draws at F = 1)
    image_minutes: float = 0.0          # first train an image model (F = 1, no temporal layers) this long, in
    #                                     <out>/image, then inflate it and train on videos for the rest of the
    #                                     budget (Make-A-Video): colour and shape come from cheap image steps
    image_batch_size: int = 32          # the image stage's batch (single frames)
    image_p_mean: float | None = None   # the image stage's noise levels (None: p_mean, p_std): a single frame's
    image_p_std: float | None = None    # colour and shape are settled at lower noise than a clip's motion
    short_frames: int = 0               # a clip-length curriculum: the video stage first trains on clips this many
    short_minutes: float = 0.0          # frames long for this many minutes (part of the budget, in <out>/short):
    #                                     the world's motion spans the clip, so each frame moves farther and the
    #                                     direction shows sooner (docs/motion.md, experiment 13); then `frames`-
    #                                     frame clips from those weights. 0 frames: no curriculum
    planner_fit_clips: int = 0          # fresh planners are first fitted alone on this many clips (their flow,
    planner_fit_steps: int = 500        # colour; train/planner_fit.py) for this many steps, replacing any that
                                        # init_from brings; 0 clips: no fit. A fitted planner, here or in a run
                                        # init_from leads back to, is not trained further
    motion_dropout: float = 0.5         # models with motion_cond: probability of training without the motion hint
    flow_consistency: float = 0.0       # weight of the optical-flow consistency term (train/flow_consistency.py)
    planner_weight: float = 0.1         # models with motion_planner: weight of the planner's loss (models/planner.py)
    noise_warp: float = 0.0             # warp each clip's training noise along its motion measured from its flow
    #                                     (diffusion/noise_warp.py): 0 independent noise per frame, 1 frame 0's noise
    #                                     moved; saved with the model, so sampling warps by the asked motion too
    min_snr_gamma: float | None = None  # Min-SNR-gamma loss weighting (diffusion/denoiser.py); None: the native one
    text_encoder: str = "minilm"        # "minilm" or a local Hugging Face folder
    cfg_dropout: float = 0.1            # probability of training with the empty prompt
    tasks: dict = field(default_factory=lambda: {"t2v": 1.0})  # frame tasks and their weights (train/tasks.py):
    #                                     t2v, i2v (frame 0 known), predict (the past known), interpolate (keyframes)
    # optimisation
    batch_size: int = 16                # global batch (all processes, all accumulation steps)
    grad_accum: int = 1
    lr: float = 1e-3
    new_lr: float | None = None         # with init_from: the learning rate of the tensors it does not bring (a
    #                                     grown level, models/grow.py; new temporal layers), which start from
    #                                     their initialisation; None: lr, like the rest
    warmup_steps: int = 50
    cooldown: float = 0.0               # the last this fraction of the budget (steps, or minutes when those end it
    #                                     first) decays the learning rate linearly to lr x cooldown_to (a
    #                                     warmup-stable-decay schedule; a resume with a larger budget stretches
    #                                     it); 0: constant after warmup
    cooldown_to: float = 0.05
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.995
    ema_warmup: float = 10.0            # EMA decay_t = min(ema_decay, (1 + t) / (ema_warmup + t)) (train/ema.py):
    #                                     in a short run the warmup, not ema_decay, sets the averaging length
    bf16: bool = False
    # budget and bookkeeping
    steps: int | None = None            # stop after this many optimizer steps (0 with planner_fit_clips: only
    #                                     fit a fresh planner on a model from init_from, nothing else changes) ...
    minutes: float | None = None        # ... or after this much wall-clock, whichever comes first
    seed: int = 0
    threads: int | None = None          # torch CPU threads (None: torch's default; with workers, the cores left)
    workers: int = 0                    # DataLoader processes decoding clips (and measuring their flows) ahead
    #                                     of the step (0: in the loop); on a GPU machine most of its cores
    log_every: int = 20
    ckpt_minutes: float = 3.0           # checkpoint this often (and at the end)
    sample_every: int = 0               # preview samples every N steps (0: only at the end)
    sample_prompts: list = field(default_factory=lambda: [
        "a red circle moving left", "a blue square moving up", "a green triangle moving right",
        "a yellow circle moving down"])
    probe_every: int = 0                # log the high-noise direction probe (diffusion/direction_probe.py) of the
    #                                     EMA weights to probe.csv every N steps; 0: off
    sampling: SamplingConfig = field(default_factory=SamplingConfig)  # how the model samples by default
    #                                     (pipelines/sampling.py): saved whole in config.json, read by `generate`,
    #                                     `evaluate` and the previews; --set sampling.FIELD=VALUE (e.g.
    #                                     sampling.steps=10). Strategies "keyframe" / "first-frame" need the i2v
    #                                     task; its noise_warp is always the run's noise_warp
    tensorboard: bool = False
    out: str = "runs/shapes"

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "model": self.model.to_dict(), "sampling": self.sampling.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """From `to_dict`'s output (config.json's "train" entry, of this version or an earlier one), or from a
        dict whose model is a preset name or a UNetConfig and whose sampling a SamplingConfig."""
        d = upgrade_saved(drop_retired(d, RETIRED_OPTIONS, "TrainConfig"))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown training option(s) {unknown}; valid options: {sorted(known)}")
        if "model" in d:
            d["model"] = _model(d["model"])
        if "sampling" in d:
            d["sampling"] = _sampling(d["sampling"])
        return cls(**d)


def upgrade_saved(d: dict) -> dict:
    """A "train" entry saved by an earlier version, in this version's form: there `model` named a preset and
    `model_overrides` changed its fields (here `model` is the U-Net's config itself), and `sample_steps` /
    `sample_strategy` were `sampling.steps` / `sampling.strategy`. Anything else is returned as it is."""
    d = dict(d)
    changes = d.pop("model_overrides", None) or {}
    if isinstance(d.get("model"), str) or changes:
        d["model"] = {**_model(d.get("model", "cpu")).to_dict(), **changes}
    old = {k: d.pop(f"sample_{k}") for k in ("steps", "strategy") if f"sample_{k}" in d}
    if old:
        d["sampling"] = {**_sampling(d.get("sampling", {})).to_dict(), **old}
    return d


def _model(value) -> UNetConfig:
    """The U-Net config of an option's value: a preset name, a UNetConfig, or its dict (config.json)."""
    if isinstance(value, UNetConfig):
        return replace(value)  # a copy: presets are shared
    if isinstance(value, str):
        try:
            return unet_preset(value)
        except ValueError as e:
            raise ValueError(f"option 'model': {e}") from None
    if isinstance(value, dict):
        return UNetConfig.from_dict(value)
    raise ValueError(f"option 'model': expected a preset name or the U-Net's config, got {value!r}")


def _sampling(value) -> SamplingConfig:
    """The sampling config of an option's value: a SamplingConfig or its dict (config.json)."""
    if isinstance(value, SamplingConfig):
        return value
    if isinstance(value, dict):
        return SamplingConfig.from_dict(value)
    raise ValueError(f"option 'sampling': expected the sampling config, got {value!r}")


# text-to-video, image-to-video, prediction and in-betweens in one network (train/tasks.py)
MULTITASK = {"t2v": 0.2, "i2v": 0.5, "predict": 0.15, "interpolate": 0.15}

TRAIN_PRESETS: dict[str, dict] = {
    # a few seconds: for tests and smoke runs
    "shapes-tiny": dict(model="tiny", frames=4, size=16, batch_size=4, steps=3, warmup_steps=1, log_every=1,
                        sampling=SamplingConfig(steps=2), sample_prompts=["a red circle moving left"]),
    "digits-tiny": dict(world="digits", model="tiny", frames=4, size=16, batch_size=4, steps=3, warmup_steps=1,
                        log_every=1, sampling=SamplingConfig(steps=2), sample_prompts=["the digit 3 moving right"]),
    # the CPU model: 2 cores, ~15 minutes
    # data_mean: the clips are ~92% black (mean -0.9); denoising x - mean removed a ~400-step plateau. Noise
    # levels log-normal(1.5, 2.2): motion direction is decided above sigma ~20 (below it the noisy clip itself
    # shows where the object goes), which log-normal(-0.4, 1.6) visits 2% of the time and this one 25%.
    "shapes-s": dict(model="cpu", frames=16, size=32, batch_size=16, minutes=15, p_two=0.2, data_mean=-0.9,
                     p_mean=1.5, p_std=2.2),
    # the CPU model from scratch in an hour (docs/motion.md): an image model first (10 min of single frames),
    # inflated; 8-frame clips for 12 min, where the same motion is twice as large per frame (experiment 13), then
    # 16-frame clips for 38 (experiment 15); videos with the four frame tasks, whose known frames make the
    # prompt's direction decide the loss at every noise level (train/tasks.py). Heads that follow the motion
    # planner's track at the 8x8 level (experiment 4), the planner fitted alone on 24000 clips (experiment 8), the
    # learning rate cooled down over the last 40% of the image and last stages (experiment 5), frame 0 from a joint
    # pass (experiment 10), guidance 6 (experiments 11, 13). Independent noise, plain sampling.
    "shapes-quick": dict(model=replace(UNET_PRESETS["cpu"], moving_rope=True, spacetime_attn_levels=(1, 2, 3),
                                       motion_cond=True, motion_planner=True, planner_heads=4),
                         frames=16, size=32, batch_size=16, minutes=60, p_two=0.2, data_mean=-0.9, p_mean=1.5,
                         p_std=2.2, image_minutes=10, image_batch_size=32, short_frames=8, short_minutes=12,
                         image_every=4, probe_every=100,
                         tasks=MULTITASK, planner_fit_clips=24000, motion_dropout=0.2, cooldown=0.4,
                         sampling=SamplingConfig(strategy="first-frame", guidance=6.0)),
    "digits-s": dict(world="digits", model="cpu", frames=16, size=32, batch_size=16, minutes=15, data_mean=-0.9,
                     p_mean=1.5, p_std=2.2,
                     sample_prompts=["the digit 3 moving right", "the digit 7 moving up"]),
    # GPUs: same world and code path, bigger nets and batches
    "shapes-m": dict(model="cpu-m", frames=16, size=32, batch_size=32, lr=5e-4, minutes=60),
    "shapes-gpu": dict(model="gpu-b", frames=16, size=64, batch_size=64, lr=3e-4, steps=50_000, warmup_steps=1000,
                       ema_decay=0.9995),
}


def _coerce(value: str, typ, name: str):
    """Parse a CLI string into the field's type, with an error that says what was expected."""
    origin = typing.get_origin(typ)
    args = [a for a in typing.get_args(typ) if a is not type(None)]
    if origin in (typing.Union, types.UnionType):
        if value.lower() in ("none", "null"):
            return None
        for arg in args:  # the first reading that fits: int | tuple[int, ...] takes "2" and "[1, 2]"
            try:
                return _coerce(value, arg, name)
            except ValueError:
                pass
    try:
        if typ is bool:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if typ in (int, float, str):
            return typ(value)
        if typ in (dict, list, tuple) or origin in (dict, list, tuple):
            out = json.loads(value)
            if not isinstance(out, dict if (typ is dict or origin is dict) else list):
                raise ValueError
            return tuple(out) if tuple in (typ, origin) else out
    except (ValueError, json.JSONDecodeError):
        pass
    raise ValueError(f"option '{name}': cannot read {value!r} as {type_name(typ)}")


def model_sampling(cfg: TrainConfig) -> SamplingConfig:
    """How this run's checkpoints sample by default (their config.json "sampling", `generate`'s defaults, and the
    training previews): the run's sampling config, with the noise warp it trains with."""
    return replace(cfg.sampling, noise_warp=float(cfg.noise_warp))


SECTIONS = ("model", "sampling")  # typed configs set field by field too: --set model.coords=true


def make_config(preset: str | None = None, overrides: dict | None = None) -> TrainConfig:
    """A preset plus overrides (values may be strings from the CLI: they are parsed and type-checked).

    `model` and `sampling` are typed configs: a preset name (or a whole config) replaces them, and "model.FIELD" /
    "sampling.FIELD" change one field of them, after any whole replacement."""
    base: dict = {}
    if preset is not None:
        if preset not in TRAIN_PRESETS:
            raise ValueError(f"unknown preset '{preset}'; choose one of: {', '.join(TRAIN_PRESETS)}")
        base.update(TRAIN_PRESETS[preset])
    hints = typing.get_type_hints(TrainConfig)
    fields_of: dict[str, dict] = {name: {} for name in SECTIONS}
    for k, v in (overrides or {}).items():
        _refuse_old_option(k, v)
        section, dot, name = k.partition(".")
        if dot and section in SECTIONS:
            fields_of[section][name] = v
        elif k not in hints:
            raise ValueError(f"unknown training option '{k}'; valid options: {', '.join(sorted(hints))}, and "
                             "model.FIELD / sampling.FIELD for one field of the U-Net / sampling config")
        elif isinstance(v, str) and hints[k] is not str and not (k == "model" and not v.lstrip().startswith("{")):
            base[k] = _coerce(v, dict if k in SECTIONS else hints[k], k)  # a preset name stays a name
        else:
            base[k] = v
    cfg = TrainConfig.from_dict(base)
    cfg = replace(cfg, model=_changed(cfg.model, fields_of["model"], "model"),
                  sampling=_changed(cfg.sampling, fields_of["sampling"], "sampling"))
    validate(cfg)
    return cfg


def _changed(config, changes: dict, section: str):
    """`config` (a UNetConfig or SamplingConfig) with the fields in `changes` (CLI strings are parsed), checked by
    the config itself."""
    if not changes:
        return config
    hints = typing.get_type_hints(type(config))
    parsed = {}
    for name, value in changes.items():
        if name not in hints:
            raise ValueError(f"unknown option '{section}.{name}'; {section} fields are {', '.join(hints)}")
        if section == "sampling" and name == "noise_warp":
            raise ValueError("option 'sampling.noise_warp': a model samples with the noise warp it trains with; set "
                             "noise_warp instead (or pass --noise-warp to generate)")
        typ = hints[name]
        parsed[name] = _coerce(value, typ, f"{section}.{name}") if isinstance(value, str) and typ is not str else value
    try:
        return replace(config, **parsed)
    except (TypeError, ValueError) as e:  # SamplingConfig's own message starts "sampling: " already
        message = str(e).removeprefix(f"{section}: ")
        raise ValueError(f"option '{section}': {message}") from None


def _refuse_old_option(key: str, value) -> None:
    """A one-line error for an option an earlier version had, saying what replaced it."""
    if key in RETIRED_OPTIONS:
        raise ValueError(f"training option '{key}' no longer exists: trajectory and colour anchoring were removed "
                         "(the network makes the motion itself; docs/motion.md)")
    if key == "model_overrides":
        try:
            changes = json.loads(value) if isinstance(value, str) else dict(value)
            spelled = " ".join(f"--set model.{k}={json.dumps(v)}" for k, v in changes.items())
        except (ValueError, TypeError):
            spelled = "--set model.FIELD=VALUE"
        raise ValueError(f"training option 'model_overrides' was replaced by the typed model config: {spelled}")
    if key in ("sample_steps", "sample_strategy"):
        raise ValueError(f"training option '{key}' is now sampling.{key.removeprefix('sample_')}: "
                         f"--set sampling.{key.removeprefix('sample_')}={value}")


def validate(cfg: TrainConfig) -> None:
    """Reject impossible settings early, before any work is done (every problem at once, one group of fields
    after another)."""
    problems = [*_shape_problems(cfg), *_budget_problems(cfg), *_optimisation_problems(cfg),
                *_image_problems(cfg), *_short_problems(cfg), *_motion_problems(cfg), *_task_problems(cfg),
                *render_problems(cfg)]
    if problems:
        raise ValueError("invalid training config: " + "; ".join(problems))


def _shape_problems(cfg: TrainConfig) -> list[str]:
    """Clips and batches."""
    problems = []
    if cfg.frames < 1:
        problems.append(f"frames must be >= 1 (got {cfg.frames})")
    if cfg.size < 8 or cfg.size % 8:
        problems.append(f"size must be a multiple of 8 and >= 8 (got {cfg.size})")
    if cfg.batch_size < 1 or cfg.grad_accum < 1:
        problems.append("batch_size and grad_accum must be >= 1")
    if cfg.batch_size % cfg.grad_accum:
        problems.append(f"batch_size ({cfg.batch_size}) must be divisible by grad_accum ({cfg.grad_accum})")
    if cfg.clip_pool is not None and cfg.clip_pool < 1:
        problems.append(f"clip_pool must be >= 1 or none (got {cfg.clip_pool})")
    return problems


def _budget_problems(cfg: TrainConfig) -> list[str]:
    """Budget and bookkeeping."""
    problems = []
    if cfg.steps is not None and cfg.steps < (0 if cfg.planner_fit_clips > 0 else 1):
        problems.append(f"steps must be >= 1, or 0 to only fit a planner (planner_fit_clips) (got {cfg.steps})")
    if cfg.minutes is not None and cfg.minutes <= 0:
        problems.append(f"minutes must be > 0 (got {cfg.minutes})")
    if cfg.steps is None and cfg.minutes is None:
        problems.append("give a budget: --steps N or --minutes M")
    staged = cfg.image_minutes + cfg.short_minutes  # the stages before the last (train/loop.py `stages`)
    if staged > 0 and (cfg.minutes is None or cfg.minutes <= staged):
        problems.append(f"image_minutes + short_minutes ({staged:g}) are part of the budget: give --minutes larger "
                        f"than them (got {cfg.minutes})")
    if cfg.probe_every < 0:
        problems.append(f"probe_every must be >= 0 (got {cfg.probe_every})")
    if cfg.workers < 0:
        problems.append(f"workers must be >= 0 (got {cfg.workers})")
    return problems


def _optimisation_problems(cfg: TrainConfig) -> list[str]:
    """Noise levels, loss weighting, optimizer and EMA."""
    problems = []
    if not 0 <= cfg.cfg_dropout < 1:
        problems.append(f"cfg_dropout must be in [0, 1) (got {cfg.cfg_dropout})")
    if cfg.min_snr_gamma is not None and cfg.min_snr_gamma <= 0:
        problems.append(f"min_snr_gamma must be > 0 or none (got {cfg.min_snr_gamma})")
    if cfg.p_std <= 0:
        problems.append(f"p_std must be > 0 (got {cfg.p_std})")
    if not 0 <= cfg.ema_decay < 1:
        problems.append(f"ema_decay must be in [0, 1) (got {cfg.ema_decay})")
    if cfg.ema_warmup <= 1:
        problems.append(f"ema_warmup must be > 1 (got {cfg.ema_warmup}); 10 is the usual warmup")
    if cfg.lr <= 0:
        problems.append(f"lr must be > 0 (got {cfg.lr})")
    if cfg.new_lr is not None and (cfg.new_lr <= 0 or not cfg.init_from):
        problems.append(f"new_lr (got {cfg.new_lr}) must be > 0 and needs init_from: it is the learning rate of "
                        "the tensors init_from does not bring")
    if not 0 <= cfg.cooldown <= 1:
        problems.append(f"cooldown must be in [0, 1], a fraction of the budget (got {cfg.cooldown}); 0.4 is usual")
    if not 0 <= cfg.cooldown_to <= 1:
        problems.append(f"cooldown_to must be in [0, 1], a fraction of lr (got {cfg.cooldown_to})")
    return problems


def _image_problems(cfg: TrainConfig) -> list[str]:
    """Joint image-video training and the image stage (image_minutes)."""
    problems = []
    if cfg.image_every < 0:
        problems.append(f"image_every must be >= 0 (got {cfg.image_every})")
    if cfg.image_frames not in IMAGE_FRAMES:
        problems.append(f"image_frames must be one of {IMAGE_FRAMES} (got '{cfg.image_frames}')")
    if cfg.image_minutes < 0:
        problems.append(f"image_minutes must be >= 0 (got {cfg.image_minutes})")
    elif cfg.image_minutes > 0:
        if cfg.frames < 2:
            problems.append("image_minutes trains an image model before a video model: frames must be >= 2")
        if cfg.init_from:
            problems.append("image_minutes trains the image model a run starts from; with init_from the run "
                            "starts from those weights instead: drop one of the two")
    if cfg.image_p_std is not None and cfg.image_p_std <= 0:
        problems.append(f"image_p_std must be > 0 or none (got {cfg.image_p_std})")
    if cfg.image_batch_size < 1:
        problems.append(f"image_batch_size must be >= 1 (got {cfg.image_batch_size})")
    return problems


def _short_problems(cfg: TrainConfig) -> list[str]:
    """The clip-length curriculum (short_frames, short_minutes)."""
    if cfg.short_frames == 0 and cfg.short_minutes == 0:
        return []
    if not 2 <= cfg.short_frames < cfg.frames:
        return [f"short_frames must be from 2 to frames - 1 ({cfg.frames - 1}), the length of the curriculum's "
                f"first clips (got {cfg.short_frames}); 0 turns the curriculum off"]
    if cfg.short_minutes <= 0:
        return [f"short_frames needs short_minutes > 0, how long to train on them (got {cfg.short_minutes})"]
    return []


def _motion_problems(cfg: TrainConfig) -> list[str]:
    """Motion hints, the planner, warped noise and flow consistency."""
    problems = []
    if cfg.planner_fit_clips < 0 or cfg.planner_fit_steps < 0:
        problems.append("planner_fit_clips and planner_fit_steps must be >= 0")
    if cfg.planner_weight < 0:
        problems.append(f"planner_weight must be >= 0 (got {cfg.planner_weight})")
    if not 0 <= cfg.motion_dropout <= 1:
        problems.append(f"motion_dropout must be in [0, 1] (got {cfg.motion_dropout})")
    if not 0 <= cfg.noise_warp <= 1:
        problems.append(f"noise_warp must be in [0, 1] (got {cfg.noise_warp})")
    if cfg.flow_consistency < 0:
        problems.append(f"flow_consistency must be >= 0 (got {cfg.flow_consistency})")
    return problems


def _task_problems(cfg: TrainConfig) -> list[str]:
    """Frame tasks, and the sampling strategy that needs one of them."""
    problems = check_task_weights(cfg.tasks)
    if cfg.sampling.strategy != "joint" and not float(cfg.tasks.get("i2v", 0)) > 0:
        problems.append(f"sampling.strategy '{cfg.sampling.strategy}' samples from a first frame, which the model "
                        "only learns with the i2v task: give it a weight, e.g. "
                        "--set 'tasks={\"t2v\": 0.5, \"i2v\": 0.5}'")
    return problems


def render_problems(cfg: TrainConfig, flows: bool | None = None) -> list[str]:
    """Where the clips are drawn: render="device" needs a synthetic world, and a recipe without optical flows.
    `flows`: whether the run's examples need flows (train/batches.py `needs_flows`); None: read from the config
    (flow_consistency, noise_warp, and the model's motion_cond)."""
    if cfg.render not in RENDERS or cfg.render_dtype not in RENDER_DTYPES:
        return [f"render must be one of {RENDERS} and render_dtype one of {RENDER_DTYPES} (got '{cfg.render}', "
                f"'{cfg.render_dtype}')"]
    if cfg.render != "device":
        return []
    problems = []
    if cfg.data is not None:
        problems.append("render 'device' draws the synthetic worlds, and data is a folder of videos decoded on the "
                        "host: drop --set render=device, or --data to train on a world")
    needing = [name for name, on in (("flow_consistency", cfg.flow_consistency > 0), ("noise_warp", cfg.noise_warp > 0),
                                     ("model.motion_cond", cfg.model.motion_cond)) if on]
    if flows is not None:
        needing = needing or (["motion hints"] if flows else [])
    if needing and cfg.frames > 1:
        problems.append(f"render 'device' draws pixels without the optical flows that {', '.join(needing)} "
                        f"need(s): drop --set render=device, or turn off {' and '.join(needing)}")
    return problems


def save_json(path: str | Path, obj: dict) -> None:
    """Atomic JSON write: a reader never sees half a file."""
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
