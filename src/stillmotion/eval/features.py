"""A small video feature network per synthetic world: an attribute classifier whose pooled features embed clips.

One network per world. It reads clips (B, 3, F, H, W) in [-1, 1] and predicts the world's exact labels with one
linear head per attribute:

    shapes   colour (8), shape (3), motion (13: 8 directions, static, bouncing, growing, shrinking, rotating),
             speed (none / slow / fast), objects (1 / 2)
    digits   digit (10), colour (8), motion (10: 8 directions, static, bouncing), speed, objects

Attribute heads learn from single-object clips only (a two-object clip has no single colour); the `objects` head
learns from every clip, so two-object clips still shape the features. The embedding is the penultimate layer:
the last stage's features pooled over space and over each half of the clip (256-d), exactly the vector the
heads read. Motion and speed must be read from it, so it sees time; it is what "FVD-shapes" / "FVD-digits"
(eval/fvd.py) compare.

Architecture: five factorized (2+1)D stages (Tran et al. 2018, "A Closer Look at Spatiotemporal Convolutions"),
each a spatial 3x3 convolution (stride 2 after the first) and a temporal 3-tap convolution, with GroupNorm and
SiLU. Two coordinate channels join the pixels (CoordConv, Liu et al. 2018); spatial max pooling reads an
object's features wherever it is and whatever its size (a mean would scale them with its area and confuse
shape and speed with size); the embedding keeps the first and second half of the clip apart. So "where is
the object early, where late" -- direction, bounce, growth, speed -- is easy to read:

    (B, 3 + 2, F, 32, 32) -> (B, 8, F, 32, 32) -> (B, 16, F, 16, 16) -> (B, 32, F, 8, 8) -> (B, 64, F/2, 4, 4)
    -> (B, 128, F/4, 2, 2) -> max over (H, W), mean over each half of time -> (B, 2 x 128) -> one Linear per head

GroupNorm (not BatchNorm) keeps every clip's features independent of the rest of its batch. Any frame count
works (the temporal pooling is global); other frame sizes are resized to `size` first. Training is in
eval/features_train.py; the trained networks ship in stillmotion/assets/features-<world>/.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stillmotion.data.digits import DIGIT_MOTIONS
from stillmotion.data.shapes import COLOURS, DEFAULT_SHAPES, MOTIONS, SceneLabels

FORMAT = "stillmotion-features/1"
ASSETS = Path(__file__).resolve().parent.parent / "assets"
SPEED_CLASSES = ["none", "slow", "fast"]
OBJECT_CLASSES = ["1", "2"]
IGNORE = -100  # target of a head that has no answer for a clip (cross_entropy's ignore_index)


def world_heads(world: str) -> dict[str, list[str]]:
    """The attribute heads of a world's feature network: head name -> class names (the order of its logits)."""
    if world == "shapes":
        return {"colour": list(COLOURS), "shape": list(DEFAULT_SHAPES), "motion": list(MOTIONS),
                "speed": SPEED_CLASSES, "objects": OBJECT_CLASSES}
    if world == "digits":
        return {"digit": [str(d) for d in range(10)], "colour": list(COLOURS), "motion": list(DIGIT_MOTIONS),
                "speed": SPEED_CLASSES, "objects": OBJECT_CLASSES}
    raise ValueError(f"no feature network for world {world!r}; expected one of: shapes, digits")


def label_targets(labels: list[SceneLabels], heads: dict[str, list[str]]) -> dict[str, Tensor]:
    """Class indices (B,) per head from exact labels; IGNORE where a head has no answer.

    `objects` is the number of objects (every clip); every other head reads the clip's only object and is
    IGNORE on two-object clips.

    Raises:
        ValueError: a label value that is not one of the head's classes (a world the network was not made for).
    """
    out = {name: [] for name in heads}
    for scene in labels:
        for name, classes in heads.items():
            if name == "objects":
                value = str(len(scene.objects))
            elif len(scene.objects) != 1:
                out[name].append(IGNORE)
                continue
            else:
                value = str(getattr(scene.objects[0], name))
            if value not in classes:
                raise ValueError(f"label {name}={value!r} is not a class of this feature network ({classes}); "
                                 "was the clip drawn from another world or with other options?")
            out[name].append(classes.index(value))
    return {name: torch.tensor(v, dtype=torch.long) for name, v in out.items()}


@dataclass
class FeatureNetConfig:
    """Everything needed to rebuild a feature network (saved as config.json["net"])."""

    world: str = "shapes"
    heads: dict = field(default_factory=dict)          # head name -> class names; empty: world_heads(world)
    channels: list = field(default_factory=lambda: [8, 16, 32, 64, 128])
    time_strides: list = field(default_factory=lambda: [1, 1, 1, 2, 2])
    segments: int = 2                                  # the embedding concatenates this many time segments
    coords: bool = True                                # x, y coordinate channels beside the pixels (CoordConv)
    frames: int = 16                                   # the clip length it was trained on (any length works)
    size: int = 32                                     # frames of another size are resized to this

    def __post_init__(self):
        if not self.heads:
            self.heads = world_heads(self.world)
        if len(self.channels) != len(self.time_strides):
            raise ValueError(f"channels {self.channels} and time_strides {self.time_strides} need one entry per "
                             "stage each")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FeatureNetConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown feature-network option(s) {unknown}; valid: {sorted(known)}")
        return cls(**d)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels // 2), channels)


class Stage(nn.Sequential):
    """(2+1)D: spatial 3x3 conv -> GroupNorm -> SiLU -> temporal 3-tap conv -> GroupNorm -> SiLU."""

    def __init__(self, c_in: int, c_out: int, time_stride: int, space_stride: int = 2):
        super().__init__(
            nn.Conv3d(c_in, c_out, (1, 3, 3), stride=(1, space_stride, space_stride), padding=(0, 1, 1)),
            _norm(c_out), nn.SiLU(),
            nn.Conv3d(c_out, c_out, (3, 1, 1), stride=(time_stride, 1, 1), padding=(1, 0, 0)), _norm(c_out),
            nn.SiLU(),
        )


class FeatureNet(nn.Module):
    """Clips (B, 3, F, H, W) in [-1, 1] -> embedding (B, D) and one logit vector per attribute head.

    Args:
        config: a FeatureNetConfig (or its fields as keyword arguments).
    """

    def __init__(self, config: FeatureNetConfig | None = None, **kwargs):
        super().__init__()
        self.config = config or FeatureNetConfig(**kwargs)
        c = self.config
        widths = [5 if c.coords else 3, *c.channels]
        self.stages = nn.Sequential(*[Stage(a, b, s, 1 if i == 0 else 2)  # the first stage keeps full resolution
                                      for i, (a, b, s) in enumerate(zip(widths[:-1], widths[1:], c.time_strides))])
        self.dim = c.channels[-1] * c.segments
        self.heads = nn.ModuleDict({name: nn.Linear(self.dim, len(classes)) for name, classes in c.heads.items()})

    def prepare(self, videos: Tensor) -> Tensor:
        """Check a batch of clips and resize its frames to the trained size: (B, 3, F, H, W) -> (B, 3, F, S, S)."""
        if not isinstance(videos, Tensor) or videos.ndim != 5 or videos.shape[1] != 3:
            shape = tuple(videos.shape) if hasattr(videos, "shape") else type(videos).__name__
            raise ValueError(f"the feature network expects videos (B, 3, F, H, W) float in [-1, 1]; got {shape}. "
                             "Convert uint8 clips (F, H, W, 3) with stillmotion.data.video_io.to_float and stack")
        if not videos.is_floating_point():
            raise ValueError(f"the feature network expects float videos in [-1, 1]; got {videos.dtype}")
        x = videos.to(next(self.parameters()).device, torch.float32)
        b, _, f, h, w = x.shape
        s = self.config.size
        if (h, w) != (s, s):
            frames = x.transpose(1, 2).reshape(b * f, 3, h, w)                            # (B*F, 3, H, W)
            frames = F.interpolate(frames, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
            x = frames.reshape(b, f, 3, s, s).transpose(1, 2)                              # (B, 3, F, S, S)
        return x

    def features(self, videos: Tensor) -> Tensor:
        """The embedding (B, D), D = C * segments: last-stage features, max over space (where the object is,
        whatever its size), averaged over each of `segments` equal spans of time (early vs late), concatenated."""
        x = self.prepare(videos)                                                          # (B, 3, F, S, S)
        if self.config.coords:
            b, _, f, h, w = x.shape
            ys = torch.linspace(-1, 1, h, device=x.device).view(1, 1, 1, h, 1).expand(b, 1, f, h, w)
            xs = torch.linspace(-1, 1, w, device=x.device).view(1, 1, 1, 1, w).expand(b, 1, f, h, w)
            x = torch.cat([x, xs, ys], dim=1)                                             # (B, 5, F, S, S)
        y = self.stages(x).amax(dim=(3, 4))                                               # (B, C, F')
        y = F.adaptive_avg_pool1d(y, self.config.segments)                                # (B, C, segments)
        return y.flatten(1)                                                               # (B, C * segments)

    def forward(self, videos: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Returns (embedding (B, D), {head: logits (B, classes)})."""
        z = self.features(videos)
        return z, {name: head(z) for name, head in self.heads.items()}

    @torch.no_grad()
    def predict(self, videos: Tensor) -> dict[str, list[str]]:
        """The most likely class of every head, as names: {head: [B names]}."""
        _, logits = self(videos)
        return {name: [self.config.heads[name][i] for i in lg.argmax(-1).tolist()] for name, lg in logits.items()}


@torch.no_grad()
def embed(net: FeatureNet, videos, *, batch: int = 64) -> Tensor:
    """Embeddings (N, D) float32 of clips (N, 3, F, H, W) in [-1, 1] (a tensor or a list of (3, F, H, W)), in
    batches; eval mode, so the result does not depend on `batch`."""
    net.eval()
    if isinstance(videos, (list, tuple)):
        videos = torch.stack(list(videos))
    if len(videos) == 0:
        raise ValueError("embed needs at least one clip")
    return torch.cat([net.features(videos[i:i + batch]).cpu() for i in range(0, len(videos), batch)])


# ----------------------------------------------------------------------------------------------- files

def shipped_path(world: str) -> Path:
    """Folder of the feature network shipped for a world: stillmotion/assets/features-<world>."""
    world_heads(world)  # raises on an unknown world
    return ASSETS / f"features-{world}"


def save_feature_net(net: FeatureNet, folder: str | os.PathLike, *, train: dict | None = None,
                     record: dict | None = None, dtype: torch.dtype = torch.float16) -> Path:
    """Write model.safetensors (float16 by default: ~2 bytes per parameter) and config.json into `folder`."""
    from safetensors.torch import save

    from stillmotion.atomic import write_atomic, write_json

    folder = Path(folder)
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in net.state_dict().items()}
    write_atomic(folder / "model.safetensors", save(state))
    config = {"format": FORMAT, "net": net.config.to_dict(), "train": train or {}, "record": record or {}}
    write_json(folder / "config.json", config)
    return folder


def load_feature_net(world_or_path: str | os.PathLike = "shapes", *, device: str | torch.device = "cpu"
                     ) -> FeatureNet:
    """A trained feature network in eval mode: a world name loads the shipped one, anything else is a folder
    holding model.safetensors + config.json (e.g. the --out of `stillmotion features train`)."""
    from safetensors.torch import load_file

    text = str(world_or_path)
    folder = shipped_path(text) if text in ("shapes", "digits") else Path(text)
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(f"no feature network in '{folder}': expected model.safetensors and config.json "
                                "(train one with `stillmotion features train --world shapes --out DIR`, or pass "
                                "a world name, shapes or digits, for the shipped one)")
    config = json.loads((folder / "config.json").read_text())
    if config.get("format") != FORMAT:
        raise ValueError(f"'{folder}' is not a feature network (format {config.get('format')!r}, expected "
                         f"{FORMAT!r})")
    net = FeatureNet(FeatureNetConfig.from_dict(config["net"]))
    net.load_state_dict({k: v.float() for k, v in load_file(str(folder / "model.safetensors")).items()})
    net.info = config  # the training config and record (held-out accuracies, command), for reports
    return net.to(device).eval().requires_grad_(False)
