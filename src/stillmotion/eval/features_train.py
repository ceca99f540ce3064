"""Train a world's feature network (eval/features.py) on freshly drawn clips with exact labels, and measure it.

Every training clip is `world.sample(train_seed(seed, i))` for example index i = step * batch_size + k, so a run
is a function of its config; held-out clips use seeds from HELDOUT_SEED up, which no training run reaches
(training seeds are below (seed + 1) * 2**32). A preset may mix world variants (e.g. white and coloured digits):
the clip of seed s is drawn from variant s mod len(variants).

Training may come in stages: `init_from` continues from a saved network (give the later stage another seed, so
it sees fresh clips), or starts from another world's network (its backbone and the heads of matching size);
the record lists every stage's exact command and wall clock.

Loss: the sum over heads of the cross-entropy, each head averaged over the clips that have its label (see
`features.label_targets`). Light Gaussian pixel noise (sigma uniform in [0, noise_aug] per clip) keeps the
network from relying on exact pixel levels, which generated clips do not have.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from stillmotion.data.video_io import to_float
from stillmotion.data.worlds import get_world
from stillmotion.eval.features import (
    IGNORE,
    FeatureNet,
    FeatureNetConfig,
    label_targets,
    load_feature_net,
    save_feature_net,
)
from stillmotion.train.loop import hardware  # the same machine line as training records
from stillmotion.version import __version__

HELDOUT_SEED = 10**15  # held-out clips: seeds HELDOUT_SEED + i


def train_seed(seed: int, index: int) -> int:
    """The world seed of training example `index` of a run with `seed` (below (seed + 1) * 2**32)."""
    return seed * 2**32 + index


@dataclass
class FeatureTrainConfig:
    world: str = "shapes"
    variants: list = field(default_factory=lambda: [{}])  # world keyword arguments; seed s uses s mod len
    frames: int = 16
    size: int = 32
    steps: int = 1500
    batch_size: int = 32
    lr: float = 3e-3                                       # peak of a one-cycle (warm-up, cosine) schedule
    warmup: float = 0.1                                    # fraction of steps warming up
    weight_decay: float = 0.01
    noise_aug: float = 0.05                                # max std of the added pixel noise ([-1, 1] units)
    seed: int = 0
    init_from: str | None = None                           # continue from this feature network (a later stage)
    eval_clips: int = 1024                                 # held-out clips measured at the end
    threads: int | None = None
    log_every: int = 100
    out: str = "runs/features-shapes"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


FEATURE_PRESETS: dict[str, dict] = {
    # the shapes world as the text-to-video presets train on it (black background, up to two objects)
    "shapes": dict(world="shapes", variants=[{"p_two": 0.3}]),
    # white digits (the world's default) and coloured ones, so the colour head means something
    "digits": dict(world="digits", variants=[{"p_two": 0.2}, {"p_two": 0.2, "coloured": True}]),
}


def make_train_config(world: str, **overrides) -> FeatureTrainConfig:
    """The preset of a world with fields overridden (None values are ignored)."""
    if world not in FEATURE_PRESETS:
        raise ValueError(f"no feature-network preset for world {world!r}; expected one of: "
                         f"{', '.join(FEATURE_PRESETS)}")
    fields = {f.name for f in dataclasses.fields(FeatureTrainConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown feature-training option(s) {unknown}; valid: {sorted(fields)}")
    return FeatureTrainConfig(**{**FEATURE_PRESETS[world], **{k: v for k, v in overrides.items() if v is not None}})


def make_worlds(cfg: FeatureTrainConfig, **extra) -> list:
    """One world per variant of the config (frames and size from the config; `extra` overrides every variant)."""
    return [get_world(cfg.world, frames=cfg.frames, size=cfg.size, **{**v, **extra}) for v in cfg.variants]


def preset_worlds(world: str, **extra) -> list:
    """The world variants the feature network of `world` is trained on (FEATURE_PRESETS), e.g. for real clips."""
    return make_worlds(make_train_config(world), **extra)


def draw(worlds: list, seeds: list[int]) -> tuple[torch.Tensor, list[str], list]:
    """Clips (B, 3, F, H, W) in [-1, 1], captions and labels; the clip of seed s comes from worlds[s mod len]."""
    clips = [worlds[s % len(worlds)].sample(s) for s in seeds]
    if not clips:
        raise ValueError("draw needs at least one seed")
    videos = torch.stack([to_float(c.video) for c in clips])  # B x (3, F, H, W) -> (B, 3, F, H, W)
    return videos, [c.caption for c in clips], [c.labels for c in clips]


def heldout_seeds(n: int, offset: int = 0) -> list[int]:
    return [HELDOUT_SEED + offset + i for i in range(n)]


@torch.no_grad()
def accuracy(net: FeatureNet, worlds: list, seeds: list[int], *, batch: int = 128) -> dict[str, float]:
    """Fraction of clips whose label each head predicts (over the clips that have that label)."""
    net.eval()
    hits = {name: 0 for name in net.config.heads}
    counts = dict(hits)
    for i in range(0, len(seeds), batch):
        videos, _, labels = draw(worlds, seeds[i:i + batch])
        targets = label_targets(labels, net.config.heads)
        _, logits = net(videos)
        for name, lg in logits.items():
            known = targets[name] != IGNORE
            hits[name] += int((lg.argmax(-1)[known] == targets[name][known]).sum())
            counts[name] += int(known.sum())
    return {name: hits[name] / counts[name] for name in hits if counts[name]}


def train_feature_net(cfg: FeatureTrainConfig, *, command: str | None = None, progress: bool = True) -> Path:
    """Train, measure held-out accuracy after the float16 round trip, and save into cfg.out; returns the folder.

    Args:
        cfg: the training config (see FEATURE_PRESETS and make_train_config).
        command: the command line to record (the CLI passes its own).
        progress: print a loss line every cfg.log_every steps.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.steps < 1 or cfg.batch_size < 1:
        raise ValueError(f"need steps >= 1 and batch_size >= 1; got {cfg.steps}, {cfg.batch_size}")
    torch.manual_seed(cfg.seed)
    worlds = make_worlds(cfg)
    net = FeatureNet(FeatureNetConfig(world=cfg.world, frames=cfg.frames, size=cfg.size))
    earlier = []  # the stages this run continues, oldest first
    if cfg.init_from:
        start_net = load_feature_net(cfg.init_from)
        body = lambda c: {k: v for k, v in c.to_dict().items() if k not in ("world", "heads")}
        if body(start_net.config) != body(net.config):
            raise ValueError(f"--init-from {cfg.init_from}: its network ({body(start_net.config)}) differs from the "
                             f"one this config trains ({body(net.config)})")
        # the whole network, or (another world's network) the backbone and every head of the same size
        own = net.state_dict()
        net.load_state_dict({k: v for k, v in start_net.state_dict().items() if k in own and v.shape == own[k].shape},
                            strict=False)
        earlier = start_net.info.get("record", {}).get("stages", [])
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, int(cfg.warmup * cfg.steps))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warm if s < warm else
                                              0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, cfg.steps - warm))))
    noise = torch.Generator().manual_seed(cfg.seed)
    start, losses, head_losses = time.time(), [], {}
    net.train()
    for step in range(cfg.steps):
        first = step * cfg.batch_size
        videos, _, labels = draw(worlds, [train_seed(cfg.seed, first + k) for k in range(cfg.batch_size)])
        targets = label_targets(labels, net.config.heads)
        sigma = torch.rand(len(videos), 1, 1, 1, 1, generator=noise) * cfg.noise_aug         # (B, 1, 1, 1, 1)
        videos = videos + sigma * torch.randn(videos.shape, generator=noise)
        _, logits = net(videos)
        per_head = {n: F.cross_entropy(logits[n], targets[n], ignore_index=IGNORE) for n in logits
                    if (targets[n] != IGNORE).any()}
        loss = sum(per_head.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.detach().item())
        for n, v in per_head.items():
            head_losses.setdefault(n, []).append(v.detach().item())
        if progress and (step % cfg.log_every == 0 or step == cfg.steps - 1):
            recent = lambda xs: sum(xs[-cfg.log_every:]) / len(xs[-cfg.log_every:])
            print(f"step {step:5d}  loss {recent(losses):.4f} ("
                  + " ".join(f"{n} {recent(v):.3f}" for n, v in head_losses.items())
                  + f")  {time.time() - start:.0f}s", flush=True)
    wall = time.time() - start
    net.load_state_dict({k: v.half().float() for k, v in net.state_dict().items()})  # measure what ships
    acc = accuracy(net, worlds, heldout_seeds(cfg.eval_clips)) if cfg.eval_clips else {}
    stage = {"command": command, "steps": cfg.steps, "clips_seen": cfg.steps * cfg.batch_size,
             "wall_clock_s": round(wall, 1), "final_loss": sum(losses[-50:]) / len(losses[-50:]),
             "hardware": hardware(torch.device("cpu")), "threads": torch.get_num_threads(), "torch": torch.__version__}
    stages = [*earlier, stage]
    record = {
        "step": sum(s["steps"] for s in stages), "clips_seen": sum(s["clips_seen"] for s in stages),
        "wall_clock_s": round(sum(s["wall_clock_s"] for s in stages), 1),
        "params": sum(p.numel() for p in net.parameters()), "stillmotion": __version__,
        "commands": [s["command"] for s in stages if s["command"]], "stages": stages,
        "heldout": {"clips": cfg.eval_clips, "seeds": f"{HELDOUT_SEED} + i, i < {cfg.eval_clips}",
                    "variants": cfg.variants, "accuracy": acc},
    }
    out = save_feature_net(net, cfg.out, train=cfg.to_dict(), record=record)
    if progress:
        print(f"held-out accuracy ({cfg.eval_clips} clips): "
              + ", ".join(f"{k} {v:.4f}" for k, v in acc.items()))
    return out
