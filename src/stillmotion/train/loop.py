"""The training loop: `train`, the same from a laptop to `torchrun --nproc_per_node N`.

`_train` reads top to bottom: set up (a fresh network with its model surgery `_init_from` and the parts fitted
before the loop, `_fit_before_loop`; or a checkpoint's state, `_restore`), loop (`_loop`: `_accumulate` over
micro-batches with `batch_loss`, then `_update`), save (`Checkpointer`). What a run shows while it trains is in
train/monitor.py.

The examples of each step, and why a resumed or multi-process run sees exactly the same ones: train/batches.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import os
import platform
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from stillmotion import checkpoint
from stillmotion.diffusion.denoiser import Denoiser
from stillmotion.models.grow import grow_weights
from stillmotion.models.planner import plan_loss
from stillmotion.models.registry import build_unet, count_params
from stillmotion.models.text import TextEncoder
from stillmotion.models.unet import TEMPORAL_KEYS, UNetConfig, add_coord_inputs
from stillmotion.train import dist, run_folder
from stillmotion.train.batches import (
    Batch,
    MicroBatchClips,
    as_images,
    clip_seed,
    is_image_step,
    make_batch,
    make_source,
    needs_flows,
)
from stillmotion.train.config import TrainConfig, model_sampling, save_json
from stillmotion.train.ema import EMA
from stillmotion.train.flow_consistency import flow_consistency_loss, noise_weight
from stillmotion.train.monitor import Log, log_probe, preview
from stillmotion.train.planner_fit import fit_planner
from stillmotion.train.workers import worker_loader
from stillmotion.version import __version__

PLANNER_PREFIXES = ("planner.",)  # the motion planner's weights (models/planner.py)
# parts a model may be built without (motion-hint input, planner; and the colour planner of earlier versions):
# init_from leaves out those it lacks
OPTIONAL_PREFIXES = ("tmotion.", "colour_planner.", *PLANNER_PREFIXES)
def fit_text_whitening(net, text: TextEncoder, source, cfg: TrainConfig, n: int = 2048) -> None:
    """Fit the network's fixed text whitening (models/text.py `whitening`) on the captions of the run's first n
    training examples (of a video folder: its first n captions): the same on every process, and a function of the
    seed like everything else."""
    from stillmotion.models.text import whitening

    if getattr(source, "entries", None):  # a video folder: its captions, without decoding any video
        captions = [c for e in source.entries for c in e.captions][:n]
    else:
        captions = [source.sample(clip_seed(cfg, i)).caption for i in range(n)]
    emb, mask = text.encode_all(captions, 256)  # (N, L, D), (N, L)
    mean, matrix = whitening(emb[mask])  # on the valid tokens (T, D)
    net.set_text_whitening(mean.to(net.text_mean.device), matrix.to(net.text_mean.device))
    dist.print0(f"text whitening fitted on {len(captions)} training captions")


def budget_spent(cfg: TrainConfig, step: int, elapsed: float) -> float:
    """How much of the run's budget is used, 0..1: the larger of steps / `steps` and seconds / `minutes` (either
    ends the run); 0 when it has neither."""
    by_steps = step / cfg.steps if cfg.steps else 0.0
    by_time = elapsed / (cfg.minutes * 60) if cfg.minutes else 0.0
    return min(1.0, max(by_steps, by_time))


def lr_at(cfg: TrainConfig, step: int, spent: float = 0.0) -> float:
    """Linear warmup, constant, then (with `cooldown`) a linear decay to lr x cooldown_to over the last
    `cooldown` of the budget (`spent`: `budget_spent`). Experiment 5 of docs/motion.md: the same weights sampled
    far better after minutes at a fifth and a twentieth of the learning rate."""
    warm = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
    if cfg.cooldown <= 0:
        return cfg.lr * warm
    into = min(1.0, max(0.0, (spent - (1.0 - cfg.cooldown)) / cfg.cooldown))  # 0 before the cooldown, 1 at the end
    return cfg.lr * warm * (1.0 - into * (1.0 - cfg.cooldown_to))


def main_threads(workers: int) -> int | None:
    """torch threads for a training process whose `workers` DataLoader processes keep as many cores busy: the
    cores left to it (None: torch's default, when there are no workers). With torch's default (all cores) the
    main process's parallel regions wait on threads the busy workers keep descheduled: on a 16-core GPU machine
    with 14 workers that cut training to 70 clips/s, against 380 clips/s with 2 threads (H100, shapes-s, batch
    256; docs/benchmarks.md)."""
    if workers <= 0:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    per_process = cores // int(os.environ.get("LOCAL_WORLD_SIZE", 1))  # torchrun: processes on this machine
    return max(1, per_process - workers)


def checkpoint_config(cfg: TrainConfig, net, text: TextEncoder, record: dict) -> dict:
    return {
        "model": {"arch": "spacetime-unet", **net.config.to_dict()},
        "diffusion": {"parameterization": cfg.parameterization, "sigma_data": cfg.sigma_data,
                      "data_mean": cfg.data_mean, "noise_warp": cfg.noise_warp},
        "text_encoder": {"name": cfg.text_encoder, "dim": text.dim},
        "data": {"world": cfg.world, "data": cfg.data, "frames": cfg.frames, "size": cfg.size},
        "sampling": model_sampling(cfg).to_dict(),
        "train": cfg.to_dict(),
        "record": record,
    }


def hardware(device: torch.device) -> str:
    """A one-line description of the machine, for training records and model cards."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} CPU cores"


def stages(cfg: TrainConfig) -> list[TrainConfig]:
    """The runs a config trains, in order, each starting from the one before. With `image_minutes`: an image
    model in <out>/image (single frames, no temporal layers, motion hints or planner), inflated by the next (its
    new temporal layers start at zero). With `short_frames`: a video model on clips that short in <out>/short
    (the motion planner is fitted there and stays as fitted; the learning rate keeps its peak: the cooldown is
    for the last stage). Then the video model for the rest of the budget. Without either: the config alone."""
    out, runs = Path(cfg.out), []
    if cfg.image_minutes > 0:
        runs.append(dataclasses.replace(
            cfg, out=str(out / "image"), frames=1, batch_size=cfg.image_batch_size, grad_accum=1, steps=None,
            p_mean=cfg.p_mean if cfg.image_p_mean is None else cfg.image_p_mean,
            p_std=cfg.p_std if cfg.image_p_std is None else cfg.image_p_std, minutes=cfg.image_minutes,
            image_minutes=0.0, short_frames=0, short_minutes=0.0, image_every=0, noise_warp=0.0,
            flow_consistency=0.0, planner_fit_clips=0, tasks={"t2v": 1.0},
            sampling=dataclasses.replace(cfg.sampling, strategy="joint"),
            model=dataclasses.replace(cfg.model, temporal=False, motion_cond=False, motion_planner=False)))
    if cfg.short_frames > 0:
        runs.append(dataclasses.replace(
            cfg, out=str(out / "short"), frames=cfg.short_frames, steps=None, minutes=cfg.short_minutes,
            image_minutes=0.0, short_frames=0, short_minutes=0.0, cooldown=0.0,
            init_from=runs[-1].out if runs else cfg.init_from))
    if not runs:
        return [cfg]
    video = dataclasses.replace(
        cfg, image_minutes=0.0, short_frames=0, short_minutes=0.0, init_from=runs[-1].out,
        minutes=cfg.minutes - sum(r.minutes for r in runs),
        planner_fit_clips=0 if cfg.short_frames > 0 else cfg.planner_fit_clips)
    return [*runs, video]


def train(cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False, command: str | None = None) -> Path:
    """Train a text-to-video model (each of its `stages`); return the checkpoint folder. Ctrl-C saves a
    checkpoint before exiting; `resume` continues where it stopped (a finished image stage is not trained again).
    The run folder is locked while training, and a folder that holds a run is refused unless `resume` or
    `overwrite` (which moves the old run aside; train/run_folder.py).
    `command`: the command line that asked for this run, kept in the checkpoint's record for model cards (the CLI
    gives its own; a library call records none). `cfg` itself is never changed.
    torch's thread count is the caller's again afterwards (a run may set its own: `threads`, `main_threads`)."""
    main = int(os.environ.get("RANK", "0")) == 0  # dist.init() comes later, in _train
    owner = run_folder.claim(cfg.out, resume=resume, overwrite=overwrite) if main else contextlib.nullcontext()
    with owner:
        return _train_stages(cfg, resume=resume, command=command)


def _train_stages(cfg: TrainConfig, *, resume: bool, command: str | None) -> Path:
    before = torch.get_num_threads()
    runs = stages(cfg)
    if len(runs) > 1 and dist.is_main():  # what `--resume` reads back before the video stage has a checkpoint
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        save_json(Path(cfg.out) / "train_config.json", cfg.to_dict())
    try:
        for run in runs:
            saved = checkpoint.exists(run.out) and resume
            if saved and run is not runs[-1] and checkpoint.load_config(run.out).get("record", {}).get("finished"):
                dist.print0(f"{run.out}: finished already; going on from it")
                continue
            path = _train(run, resume=saved, command=command)
        return path
    finally:
        torch.set_num_threads(before)


def _train(cfg: TrainConfig, *, resume: bool, command: str | None = None) -> Path:
    """One run: set up (a fresh model, surgery and fitted parts; or a checkpoint's state), loop, save."""
    device, micro = _setup_process(cfg)
    out = Path(cfg.out)
    torch.manual_seed(cfg.seed)  # the network's initial weights
    source = make_source(cfg)
    cfg = _with_preview_prompts(cfg, source)  # a copy: the caller's config stays as it was
    text = _text_encoder(cfg, source, device)
    net = build_unet(cfg.model, text_dim=text.dim).to(device)
    origin = {"commands": [command] if command else [], "init_from": None, "planner_fit": None}  # provenance
    if not resume:
        origin["init_from"] = _init_from(net, cfg) if cfg.init_from else None
        origin["planner_fit"] = _fit_before_loop(net, text, source, cfg)
    ema = EMA(net, cfg.ema_decay, cfg.ema_warmup)
    # fused: one kernel over all tensors; torch's CPU default is a loop over the 300-odd tensors (the update alone:
    # 23 ms on one thread for the cpu preset, 4.4 ms fused; a whole shapes-s step, ~1 s, shows no difference)
    fresh = (origin["init_from"] or {}).get("new_lr_tensors", [])
    if resume:  # the same groups as when the run started: the checkpoint's optimizer state is stored by group
        fresh = (checkpoint.load_config(out).get("record", {}).get("init_from") or {}).get("new_lr_tensors", [])
    opt = torch.optim.AdamW(_param_groups(net, cfg, fresh), lr=cfg.lr, betas=(0.9, 0.99),
                            weight_decay=cfg.weight_decay, fused=device.type in ("cpu", "cuda"))
    progress = Progress(elapsed=origin["planner_fit"]["seconds"] if origin["planner_fit"] else 0.0)  # in the budget
    if resume:
        progress, saved = _restore(out, net, opt, ema)
        origin = {"commands": saved.get("commands", []) + origin["commands"],
                  "init_from": saved.get("init_from"), "planner_fit": saved.get("planner_fit")}
    if _planner_fitted(origin) and getattr(net, "planner", None) is not None:  # stays as fitted, also resumed
        net.planner.requires_grad_(False)  # batch-16 steps drifted a fitted planner (0.78 -> 0.54 of 256 prompts)
    run = Training.build(cfg, device, micro, source, text, net, opt, ema)
    save = Checkpointer(run, out, origin)
    if origin["planner_fit"] and not resume:  # the fit's own checkpoint: a run stopped from here on resumes
        save(progress)                        # without fitting it again
    log = Log(cfg, out, progress.step, resume=resume)
    try:
        with _sigterm_interrupts():
            _loop(run, progress, save, log)
    except KeyboardInterrupt:
        dist.print0(f"\ninterrupted at step {progress.step}: saving a checkpoint; continue with --resume")
        save(progress)
        raise
    finally:
        log.close()
    path = save(progress, final=True)
    if dist.is_main():
        preview(cfg, ema.shadow, text, out / "samples" / "final")
        dist.print0(f"done: {progress.step} steps in {progress.elapsed / 60:.1f} min; checkpoint {path}")
    dist.barrier()
    return path


def _setup_process(cfg: TrainConfig) -> tuple[torch.device, int]:
    """Join the process group (under torchrun), set torch's threads, check the run folder can be written;
    return this process's device and its micro-batch size."""
    device = dist.init()
    threads = cfg.threads or main_threads(cfg.workers)
    if threads:
        torch.set_num_threads(threads)
    parts = dist.world_size() * cfg.grad_accum
    if cfg.batch_size % parts:
        raise ValueError(f"batch_size {cfg.batch_size} must be divisible by processes ({dist.world_size()}) x "
                         f"grad_accum ({cfg.grad_accum})")
    if dist.is_main():  # fail now, not at the first checkpoint minutes later
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    return device, cfg.batch_size // parts


def _with_preview_prompts(cfg: TrainConfig, source) -> TrainConfig:
    """A video folder's run previews its own captions, not the default shapes prompts (a copy of `cfg`)."""
    if cfg.data is None or cfg.sample_prompts != TrainConfig().sample_prompts:
        return cfg
    prompts = sorted({c for c in (source.sample(i).caption for i in range(8))})[:4]
    return dataclasses.replace(cfg, sample_prompts=prompts)


def _text_encoder(cfg: TrainConfig, source, device: torch.device) -> TextEncoder:
    text = TextEncoder(cfg.text_encoder, device=device)  # on a GPU, uncached captions cost ~nothing
    if getattr(source, "text_cache", None) is not None:  # a preprocessed folder: its captions are embedded already
        dist.print0(f"text embeddings: {text.load_cache(source.text_cache)} captions from {source.text_cache}")
    return text


def _init_from(net, cfg: TrainConfig) -> dict:
    """Model surgery: start `net` from the weights of `cfg.init_from` (a checkpoint or run folder). Temporal
    layers it lacks start at zero (inflating an image model), coordinate channels are added at zero, parts `net`
    does not build are left out, and with planner_fit_clips its planners give way to the ones fitted next.
    Returns its provenance for the record (model cards follow it back to the first stage)."""
    weights = {k: v.float() for k, v in checkpoint.load_weights(cfg.init_from).items()}
    saved = checkpoint.load_config(cfg.init_from)  # its model section checked by type and by UNetConfig
    replaced = cfg.planner_fit_clips > 0 and any(k.startswith(PLANNER_PREFIXES) for k in weights)
    if cfg.planner_fit_clips > 0:  # its planners (of any shape) give way to the ones fitted later
        weights = {k: v for k, v in weights.items() if not k.startswith(PLANNER_PREFIXES)}
    weights, coords_added = add_coord_inputs(weights, net.config) if hasattr(net.config, "coords") \
        else (weights, False)
    absent = tuple(p for p in OPTIONAL_PREFIXES if getattr(net, p.rstrip("."), None) is None)  # parts it lacks
    dropped = sorted({k.split(".")[0] for k in weights if k.startswith(absent)})
    weights = {k: v for k, v in weights.items() if not k.startswith(absent)}
    weights, stem = _grow(net, weights, checkpoint.model_config(saved))
    new = [k for k in _load_fitting(net, weights, cfg, stem) if not k.startswith(PLANNER_PREFIXES)]
    dist.print0(f"initialised from {checkpoint.resolve(cfg.init_from)}"
                + (f"; grown by a finer level in front ({len(stem)} new tensors)" if stem else "")
                + (f"; {len(new)} new temporal tensors start at zero (inflation)" if new else "")
                + ("; its planners are replaced by ones fitted here (planner_fit_clips)" if replaced else "")
                + ("; its input layer gains the coordinate channels, at zero" if coords_added else "")
                + (f"; its {', '.join(dropped)} weights are left out (this model has none)" if dropped else ""))
    fresh = sorted(set(net.state_dict()) - set(weights)) if cfg.new_lr else []  # what init_from does not bring
    return {"path": str(checkpoint.resolve(cfg.init_from)), **saved.get("record", {}),
            **({"new_lr_tensors": fresh} if fresh else {})}


def _param_groups(net, cfg: TrainConfig, fresh: list[str]) -> list[dict]:
    """The optimizer's groups: with `new_lr`, the tensors `init_from` did not bring (`fresh`: a grown level, new
    temporal layers) learn at new_lr and the trained ones at lr; each group's `lr_scale` follows the schedule."""
    new = set(fresh)
    groups = [{"params": [p for n, p in net.named_parameters() if n not in new], "lr_scale": 1.0}]
    if new:
        groups.append({"params": [p for n, p in net.named_parameters() if n in new], "lr_scale": cfg.new_lr / cfg.lr})
    return groups


def _grow(net, weights: dict, old: UNetConfig | None) -> tuple[dict, list[str]]:
    """`init_from`'s weights (of a network built with `old`) moved one level in when `net` is that network grown
    by a finer level in front (models/grow.py), with the names of the new level's tensors; otherwise the weights as
    they are and [] (without a model config they are loaded as they are, and `_load_fitting` says what misfits)."""
    if old is None or len(old.channels) + 1 != len(net.config.channels):
        return weights, []
    weights = grow_weights(weights, old, net.config)
    return weights, sorted(set(net.state_dict()) - set(weights))


def _load_fitting(net, weights: dict, cfg: TrainConfig, fresh: list[str] = ()) -> list[str]:
    """Load `weights` into `net`, where only temporal tensors (and `fresh`, a grown network's new level) may be
    missing; return the temporal ones (they stay at zero)."""
    fits_not = f"init_from '{cfg.init_from}': its weights do not fit this run's model"
    try:
        result = net.load_state_dict(weights, strict=False)
    except RuntimeError as e:
        raise ValueError(f"{fits_not} ({(str(e).splitlines()[1:] or [str(e)])[0].strip()}); use the same model "
                         "config (--model and --set model.FIELD=...) as the run it comes from") from None
    fresh = set(fresh)
    missing = [k for k in result.missing_keys if k not in fresh]
    new = [k for k in missing if any(p in k for p in TEMPORAL_KEYS)]
    if result.unexpected_keys or len(new) != len(missing):
        raise ValueError(f"{fits_not} (unexpected {result.unexpected_keys[:3]}, missing {result.missing_keys[:3]})")
    return new


def _planner_fitted(record: dict | None) -> bool:
    """Whether a run's planner was fitted alone (`_fit_before_loop`), in this run or in one it started from,
    following init_from back through the stages: such a planner is not trained further."""
    while record:
        if record.get("planner_fit"):
            return True
        record = record.get("init_from")
    return False


def _fit_before_loop(net, text: TextEncoder, source, cfg: TrainConfig) -> dict | None:
    """The parts of a fresh run fitted before the loop and not trained in it: the text whitening of a model
    started from scratch, and a fresh motion planner (planner_fit_clips). Returns the planner fit's record (None
    if there was none); `_train` checkpoints the fit at once."""
    if getattr(net.config, "text_whiten", False) and not cfg.init_from:
        fit_text_whitening(net, text, source, cfg)
    if cfg.planner_fit_clips <= 0 or getattr(net, "planner", None) is None:
        return None
    fit = fit_planner(net, text, source, [clip_seed(cfg, i) for i in range(cfg.planner_fit_clips)],
                      steps=cfg.planner_fit_steps, seed=cfg.seed, workers=max(cfg.workers, 2))
    dist.print0(f"planner fitted on {fit['clips']} clips ({fit['heads']} head(s) x {fit['steps']} steps, "
                f"{fit['seconds']:.0f} s): median spread {fit['motion']['median_spread']:.3f}; it stays as fitted")
    return fit


@dataclass
class Progress:
    """Where a run stands: what its training state holds besides the weights, optimizer, EMA and RNG."""
    step: int = 0
    elapsed: float = 0.0   # seconds of training (a planner fit's included): the budget `minutes` counts these
    history: list[float] = field(default_factory=list)  # the loss of each step


def _restore(out: Path, net, opt, ema: EMA) -> tuple[Progress, dict]:
    """Load the run's last checkpoint into net, optimizer, EMA and torch's RNG; return where it stood and the
    record that checkpoint holds."""
    state = checkpoint.load_training_state(out)
    net.load_state_dict(state["net"])
    opt.load_state_dict(state["optimizer"])
    ema.load_state_dict(state["ema"])
    torch.set_rng_state(state["torch_rng"])
    progress = Progress(state["step"], state["elapsed"], list(state["loss_history"]))
    dist.print0(f"resumed from {checkpoint.resolve(out)} at step {progress.step} ({progress.elapsed / 60:.1f} min "
                "trained)")
    return progress, checkpoint.load_config(out).get("record", {})


@dataclass
class Training:
    """What the loop works with, set up once."""
    cfg: TrainConfig
    device: torch.device
    source: object                  # make_source's world or video folder
    text: TextEncoder
    net: torch.nn.Module            # the network (its state is what is saved)
    train_net: torch.nn.Module      # the same, DDP-wrapped across processes
    denoiser: Denoiser              # around train_net
    opt: torch.optim.Optimizer
    ema: EMA
    micro_batches: MicroBatchClips
    motion_cond: bool               # the network reads motion hints: batches carry them
    train_planner: bool             # a planner not fitted beforehand learns in the loop

    @classmethod
    def build(cls, cfg, device, micro, source, text, net, opt, ema) -> Training:
        world_size = dist.world_size()
        planner = getattr(net, "planner", None) is not None  # networks from elsewhere (bench peers) have none
        if world_size > 1 and cfg.image_every > 0 and planner:
            raise ValueError("image_every with a motion_planner is not supported across processes (the planner is "
                             "trained outside the DDP forward); train it in one process or set image_every=0")
        # image steps (F = 1) leave the temporal layers without gradients
        train_net = DDP(net, find_unused_parameters=cfg.image_every > 0) if world_size > 1 else net
        motion_cond = getattr(net.config, "motion_cond", False)
        run = cls(cfg, device, source, text, net, train_net, opt=opt, ema=ema, motion_cond=motion_cond,
                  denoiser=Denoiser(train_net, cfg.parameterization, cfg.sigma_data, cfg.data_mean),
                  micro_batches=MicroBatchClips(cfg, source, micro, world_size, dist.rank(),
                                                with_flows=needs_flows(cfg, motion_cond)),
                  train_planner=planner and any(p.requires_grad for p in net.planner.parameters()))
        dist.print0(f"stillmotion {__version__}: training a U-Net ({count_params(net) / 1e6:.2f}M params) on "
                    f"{cfg.data or cfg.world} {cfg.frames}x{cfg.size}x{cfg.size}, batch {cfg.batch_size} "
                    f"({world_size} process(es) x {cfg.grad_accum} accum x {micro}), device {device}")
        return run


class Checkpointer:
    """Saves the run's checkpoint (rank 0 writes, every process waits): the EMA weights to sample with, the
    training state to resume from, and the record model cards read (progress, machine, provenance)."""

    def __init__(self, run: Training, out: Path, origin: dict):
        self.run, self.out, self.origin = run, out, origin
        self.n_params = count_params(run.net)

    def record(self, progress: Progress, final: bool) -> dict:
        cfg, device, origin = self.run.cfg, self.run.device, self.origin
        return {"step": progress.step, "clips_seen": progress.step * cfg.batch_size,
                "wall_clock_s": round(progress.elapsed, 1), "processes": dist.world_size(), "device": str(device),
                "hardware": hardware(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
                "params": self.n_params, "commands": origin["commands"],
                **({"init_from": origin["init_from"]} if origin["init_from"] else {}),
                **({"planner_fit": origin["planner_fit"]} if origin["planner_fit"] else {}),
                "final_loss": progress.history[-1] if progress.history else None, "finished": final}

    def __call__(self, progress: Progress, *, final: bool = False) -> Path:
        run, path = self.run, self.out / "checkpoint"
        if dist.is_main():
            state = {"net": run.net.state_dict(), "optimizer": run.opt.state_dict(), "ema": run.ema.state_dict(),
                     "step": progress.step, "elapsed": progress.elapsed, "torch_rng": torch.get_rng_state(),
                     "loss_history": progress.history}
            config = checkpoint_config(run.cfg, run.net, run.text, self.record(progress, final))
            path = checkpoint.save(self.out, weights=run.ema.shadow, config=config, training_state=state)
            save_json(self.out / "train_config.json", run.cfg.to_dict())
        dist.barrier()
        return path


def _loop(run: Training, progress: Progress, save: Checkpointer, log: Log) -> None:
    """Optimizer steps until the budget (steps or minutes) is spent; checkpoints every ckpt_minutes, and the
    direction probe and previews when asked."""
    cfg, out = run.cfg, save.out
    clips = _clip_stream(run, progress.step)
    budget_s, last_ckpt = cfg.minutes * 60 if cfg.minutes else math.inf, time.time()
    while (cfg.steps is None or progress.step < cfg.steps) and progress.elapsed < budget_s:
        t0 = time.time()
        lr = lr_at(cfg, progress.step, budget_spent(cfg, progress.step, progress.elapsed))
        for group in run.opt.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)  # a checkpoint from before new_lr: one group, no scale
        run.opt.zero_grad(set_to_none=True)
        loss = _accumulate(run, progress.step, clips)
        grad_norm = _update(run, progress.step)
        progress.step += 1
        progress.history.append(dist.all_reduce_mean(loss).item())
        dt = time.time() - t0
        # every process must agree on the wall clock to stop together
        progress.elapsed = float(dist.broadcast_object(progress.elapsed + dt))
        log.step(progress.step, progress.history[-1], lr=lr, grad_norm=grad_norm,
                 seconds=dt, elapsed=progress.elapsed)
        if dist.broadcast_object(time.time() - last_ckpt > cfg.ckpt_minutes * 60):
            save(progress)
            last_ckpt = time.time()
        if cfg.probe_every and progress.step % cfg.probe_every == 0 and dist.is_main():
            log_probe(cfg, run.ema.shadow, run.text, progress.step, progress.elapsed, out / "probe.csv")
        if cfg.sample_every and progress.step % cfg.sample_every == 0 and dist.is_main():
            preview(cfg, run.ema.shadow, run.text, out / "samples" / f"step{progress.step:06d}")


def _clip_stream(run: Training, step: int):
    """The decoded clips (and flows) of each micro-batch from `step` on, in order: from DataLoader workers that
    decode ahead while this process trains (cfg.workers > 0), or None (make_batch decodes them in place)."""
    cfg = run.cfg
    if cfg.workers <= 0:
        return None
    return iter(worker_loader(run.micro_batches, cfg.workers, sampler=itertools.count(step * cfg.grad_accum),
                              prefetch_factor=2, persistent_workers=False))


def _accumulate(run: Training, step: int, clips) -> torch.Tensor:
    """Forward and backward over this process's grad_accum micro-batches of `step`; return their mean loss."""
    cfg, ddp = run.cfg, run.train_net is not run.net
    autocast = torch.autocast(run.device.type, dtype=torch.bfloat16) if cfg.bf16 else contextlib.nullcontext()
    loss_sum = torch.zeros((), device=run.device)
    for a in range(cfg.grad_accum):
        decoded, flows = next(clips) if clips is not None else (None, None)
        batch = make_batch(cfg, run.source, run.text, run.micro_batches.indices(step * cfg.grad_accum + a),
                           run.device, decoded, flows, motion_cond=run.motion_cond)
        if is_image_step(cfg, step):
            batch = as_images(batch, cfg.image_frames)
        # DDP averages the gradients across processes once, in the backward of the last micro-batch
        sync = run.train_net.no_sync() if ddp and a < cfg.grad_accum - 1 else contextlib.nullcontext()
        with sync, autocast:
            loss = batch_loss(cfg, run.denoiser, run.net, batch, train_planner=run.train_planner)
            (loss / cfg.grad_accum).backward()
        loss_sum += loss.detach() / cfg.grad_accum
    return loss_sum


def batch_loss(cfg: TrainConfig, denoiser: Denoiser, net, batch: Batch, *, train_planner: bool) -> torch.Tensor:
    """The loss of one micro-batch (a scalar): denoising on the frames to predict (diffusion/denoiser.py), plus
    the flow consistency of the clean estimate (train/flow_consistency.py), plus the planner's loss on each
    clip's measured motion (models/planner.py; videos only, and only for a planner that learns in the loop)."""
    loss, x0_hat = denoiser.loss(batch.x0, batch.sigma, batch.cond, noise=batch.noise, mask=batch.loss_mask,
                                 min_snr_gamma=cfg.min_snr_gamma, return_x0=True)  # (B,), (B, C, F, H, W)
    if batch.flow is not None:
        flow_term = flow_consistency_loss(x0_hat, batch.flow, batch.seen) * noise_weight(batch.sigma)  # (B,)
        loss = loss + cfg.flow_consistency * flow_term.to(loss.dtype)
    loss = loss.mean()
    if train_planner and batch.x0.shape[2] > 1:  # learn the prompt's motion (not from dropped captions)
        plan = net.plan_motion(batch.cond.text, batch.cond.text_mask)
        spoken = torch.tensor([c != "" for c in batch.captions], dtype=plan.dtype, device=plan.device)
        loss = loss + cfg.planner_weight * plan_loss(plan, batch.motion[:, :2], spoken)
    return loss


def _update(run: Training, step: int) -> torch.Tensor:
    """Clip the gradient norm and take the optimizer step and the EMA update; a non-finite norm skips both.
    Returns the norm."""
    grad_norm = torch.nn.utils.clip_grad_norm_(run.net.parameters(), run.cfg.grad_clip)
    if torch.isfinite(grad_norm):
        run.opt.step()
        run.ema.update(run.net)
    else:
        dist.print0(f"step {step}: non-finite gradient norm, skipping the update")
        run.opt.zero_grad(set_to_none=True)
    return grad_norm


@contextlib.contextmanager
def _sigterm_interrupts():
    """A scheduler's SIGTERM (preemption, `kill`) saves a checkpoint like Ctrl-C does, while the loop runs; the
    process's own handler is back afterwards (signals can only be set from the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if before is None else before)  # None: set outside Python


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt
