"""Factorized space-time U-Net for video diffusion.

An ADM-style image U-Net applied to every frame (per-frame 3x3 convs, GroupNorm, spatial self-attention
and text cross-attention), interleaved with temporal layers that mix frames at each pixel: 3x1x1
convolutions and self-attention over frames with rotary positions (VDM, Ho et al. 2022;
Make-A-Video, Singer et al. 2022). Every temporal layer is a zero-initialised residual and is skipped
when F == 1 or when switched off, so the network is then exactly an image model applied per frame;
this is what lets `inflate` start a video model from an image model's weights.

The input is concat([x, frames * mask, mask]) along channels: known frames (image-to-video,
interpolation, prediction) enter through the same network as text-to-video, where they are zeros.

    net = SpaceTimeUNet(UNetConfig(channels=(32, 64), attn_levels=(1,)))
    out = net(x, noise_level, cond)   # x: (B, C, F, H, W); noise_level: (B,) = log(sigma) / 4
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from stillmotion.cond import Cond
from stillmotion.fieldtypes import field_problem
from stillmotion.models.layers import (
    CrossAttention,
    Downsample,
    ResBlock,
    SpaceTimeAttention,
    SpatialAttention,
    TemporalAttention,
    TemporalConv,
    Upsample,
    group_norm,
    noise_embedding,
)
from stillmotion.models.planner import MotionPlanner, PlannerEnsemble

# parameter-name parts of the layers only a video model has (inflation adds them, zero-initialised or new)
TEMPORAL_KEYS = ("tconv", "tattn", "tpos", "ttext", "tmotion", "planner")
FRAME_FEATURES = 16  # Fourier features of a frame's position in the clip


def add_coord_inputs(weights: dict[str, Tensor], config: UNetConfig) -> tuple[dict[str, Tensor], bool]:
    """Weights of a network built without `coords`, for one built with them (same config otherwise).

    pixel_unshuffle orders conv_in's input channels channel-major, so the coordinate channels, appended last, are
    the last 2 * patch_size^2 input channels of conv_in: they start at zero, and the network computes exactly what
    it computed without them until training finds a use for them.

    Returns:
        (weights, grown): grown is True when conv_in was widened (False: the weights already fit, or do not
        come from such a network and are returned unchanged).
    """
    w = weights.get("conv_in.weight")
    extra = 2 * config.patch_size ** 2
    if not config.coords or w is None or w.shape[1] != (2 * config.in_channels + 1) * config.patch_size ** 2:
        return weights, False
    grown = torch.cat([w, w.new_zeros(w.shape[0], extra, *w.shape[2:])], dim=1)  # (C0, in + extra, 3, 3)
    return {**weights, "conv_in.weight": grown}, True


def frame_position_features(frames: int, device=None) -> Tensor:
    """Where each frame sits in the clip, as (F, FRAME_FEATURES) Fourier features of u = f / (F - 1) in [0, 1].

    Temporal attention (RoPE) and temporal convolutions only see relative offsets, so a middle frame cannot
    tell how far along the clip it is; yet "moving left" means x decreases with the frame's position. The
    position is normalised, so a clip sampled with a different F still runs from start (0) to end (1).
    """
    u = torch.linspace(0, 1, frames, device=device)[:, None]  # (F, 1)
    k = torch.arange(1, FRAME_FEATURES // 2 + 1, device=device)[None] * torch.pi / 2  # (1, FRAME_FEATURES/2)
    return torch.cat([torch.cos(k * u), torch.sin(k * u)], dim=-1)  # (F, FRAME_FEATURES)


# fields of earlier versions, and the value that made them do nothing: a config that has them at that value loads
RETIRED_FIELDS = {"colour_planner": False}


def drop_retired(d: dict, retired: dict, what: str) -> dict:
    """`d` without the retired fields that hold their inert value; an error for any that asked for more."""
    active = {k: d[k] for k in retired if k in d and d[k] != retired[k]}
    if active:
        raise ValueError(f"{what}: {active} asks for something this version no longer has (colour and trajectory "
                         "anchoring were removed: the network makes the motion itself, docs/motion.md); set it to "
                         f"{ {k: retired[k] for k in active} } or use the version that made it")
    return {k: v for k, v in d.items() if k not in retired}


@dataclass
class UNetConfig:
    """Constructor arguments of `SpaceTimeUNet`; saved as config.json next to the weights.

    Attributes:
        in_channels: channels of x (3 for RGB pixels, 4 for a latent).
        out_channels: channels of the output; None means in_channels.
        channels: width of each resolution level; level l works at (H / 2^l, W / 2^l).
        blocks_per_level: residual blocks per level (an int for all levels, or one per level).
        attn_levels: levels with spatial self-attention and text cross-attention (the middle always has them).
        temporal_attn_levels: levels with temporal self-attention (the middle always has it).
        spacetime_attn_levels: levels (of those with temporal attention) where it attends over all F x H x W
            positions of the clip with 3-axis RoPE instead of over frames at each pixel; meant for the coarse
            levels, where a clip has a few hundred positions. The middle counts as the last level.
        spacetime_window: space-time attention attends within windows of this many frames, cut half a window later
            in every other space-time layer (Video Swin), so its cost grows linearly with the number of frames
            instead of quadratically; a clip of at most this many frames is one window (full attention, as
            trained at 16 frames). 0 attends over the whole clip at any length.
        moving_rope: every space-time attention head attends in a frame of reference moving at a velocity it
            reads from the clip's conditioning (noise level, prompt): models/layers.py `SpaceTimeAttention`.
            Zero-initialised, so a network gains it without changing what it computes. With motion_cond, a motion
            hint also moves every head along the hinted track (a learned per-head gate, starting at 1: a network
            grown this way computes what it did for clips without a hint, not for clips with one). Measured to be
            what made the U-Net learn direction, with space-time attention down to the 8x8 level (docs/motion.md).
        head_dim: channels per attention head.
        text_dim: size D of the text token embeddings (384 for MiniLM); 0 builds no text conditioning.
        emb_dim: size of the noise-level embedding; None means 4 * channels[0].
        dropout: dropout inside residual blocks.
        temporal: build temporal layers; False gives a pure image model (its weights can be inflated).
        grad_checkpoint: recompute activations in the backward pass (saves memory, costs ~30% time).
        coords: feed the network each pixel's (x, y) in [-1, 1] as two extra input channels (CoordConv, Liu et
            al. 2018). Convolutions and relative (RoPE) attention are translation-equivariant, so without them
            the only sense of absolute position is zero padding; but "moving left" from pure noise means putting
            the object at a place that depends on the frame, which needs absolute position (measured: a net
            without them never moved its high-noise prediction with the direction word).
        motion_cond: read a motion hint `Cond.motion` (B, 3) = [dx, dy, given] (how far the content moves over
            the clip): an MLP of (hint, frame position) added to each frame's embedding, zero-initialised, like
            the (prompt, frame position) embedding. Motion-vector conditioning in the spirit of VideoComposer
            (Wang et al. 2023); training derives the hint from the clip's optical flow (train/motion.py).
        motion_planner: with motion_cond, also learn the hint from the prompt (models/planner.py): a small head on
            the text tokens, trained on the hints measured from the clips' flow; sampling without a hint of the
            user's then uses the planned one (`plan_motion`).
        planner_heads: the planner's number of heads; more than one averages them (models/planner.py
            `PlannerEnsemble`: steadier on rarely seen wordings).
        text_whiten: whiten the text token embeddings with a fixed map fitted on the training captions
            (`set_text_whitening`, models/text.py `whitening`) before anything reads them. Sentence encoders put
            antonyms close together (MiniLM: "left" vs "right" tokens at cosine 0.78, "red" vs "blue" 0.36), so the
            word that decides where an object goes is a small difference in the raw features and the network
            learns to read it last; whitening makes every way the captions vary equally large.
        patch_size: fold p x p pixel patches into channels before the first level (pixel unshuffle) and unfold
            them after the last (pixel shuffle), as DiT patchifies: the U-Net then runs at H/p x W/p, which
            removes its costliest, thinnest level. 1 keeps full resolution.
    """

    in_channels: int = 3
    out_channels: int | None = None
    channels: tuple[int, ...] = (32, 64, 128)
    blocks_per_level: int | tuple[int, ...] = 1
    attn_levels: tuple[int, ...] = (2,)
    temporal_attn_levels: tuple[int, ...] = (1, 2)
    spacetime_attn_levels: tuple[int, ...] = ()
    spacetime_window: int = 16
    moving_rope: bool = False
    head_dim: int = 32
    text_dim: int = 384
    emb_dim: int | None = None
    dropout: float = 0.0
    temporal: bool = True
    grad_checkpoint: bool = False
    coords: bool = False
    text_whiten: bool = False
    motion_cond: bool = False
    motion_planner: bool = False
    planner_heads: int = 1
    patch_size: int = 1

    def __post_init__(self):
        self.channels = tuple(self.channels)
        self.attn_levels = tuple(self.attn_levels)
        self.temporal_attn_levels = tuple(self.temporal_attn_levels)
        self.spacetime_attn_levels = tuple(self.spacetime_attn_levels)
        if not isinstance(self.blocks_per_level, int):
            self.blocks_per_level = tuple(self.blocks_per_level)
            if len(self.blocks_per_level) != len(self.channels):
                raise ValueError(f"blocks_per_level {self.blocks_per_level} needs one entry per level "
                                 f"(channels has {len(self.channels)}), or a single int")
        if self.motion_planner and not (self.motion_cond and self.temporal and self.text_dim):
            raise ValueError("motion_planner plans a motion hint from the text: it needs motion_cond=True, "
                             "temporal=True and text_dim > 0")
        if self.planner_heads < 1:
            raise ValueError(f"planner_heads must be >= 1 (got {self.planner_heads})")
        if self.spacetime_window < 0:
            raise ValueError(f"spacetime_window must be >= 0 frames (0 = the whole clip), got {self.spacetime_window}")
        for name in ("attn_levels", "temporal_attn_levels", "spacetime_attn_levels"):
            bad = [lvl for lvl in getattr(self, name) if not 0 <= lvl < len(self.channels)]
            if bad:
                raise ValueError(f"{name} {getattr(self, name)}: levels {bad} do not exist; "
                                 f"valid levels are 0..{len(self.channels) - 1} (one per entry of channels)")

    def blocks(self, level: int) -> int:
        b = self.blocks_per_level
        return b if isinstance(b, int) else b[level]

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> UNetConfig:
        d = drop_retired(d, RETIRED_FIELDS, "UNetConfig")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"UNetConfig: unknown keys {unknown}; known keys are {sorted(known)}")
        problem = field_problem(d, cls)  # JSON types: 32.0 is no head_dim, "0.5" no dropout
        if problem:
            raise ValueError(f"UNetConfig: {problem}")
        return cls(**d)


class Stage(nn.Module):
    """One U-Net block: ResBlock -> temporal conv -> spatial attn -> cross-attn -> temporal attn."""

    def __init__(self, in_ch: int, out_ch: int, cfg: UNetConfig, emb_dim: int, context_dim: int,
                 attn: bool, temporal_attn: bool, spacetime: bool = False):
        super().__init__()
        self.res = ResBlock(in_ch, out_ch, emb_dim, cfg.dropout)
        self.tconv = TemporalConv(out_ch) if cfg.temporal else None
        self.attn = SpatialAttention(out_ch, cfg.head_dim) if attn else None
        self.cross = CrossAttention(out_ch, context_dim, cfg.head_dim) if attn and cfg.text_dim else None
        self.tattn = None
        if temporal_attn and cfg.temporal:
            self.tattn = (SpaceTimeAttention(out_ch, cfg.head_dim, cfg.spacetime_window,
                                             emb_dim=emb_dim if cfg.moving_rope else 0,
                                             follow_hint=cfg.moving_rope and cfg.motion_cond) if spacetime
                          else TemporalAttention(out_ch, cfg.head_dim))

    def forward(self, h: Tensor, emb: Tensor, context: Tensor | None, context_mask: Tensor | None,
                frames: int, temporal: bool, motion: Tensor | None = None) -> Tensor:
        """h: (B*F, C_in, H, W); emb: (B*F, E); motion: (B, 3) hints or None. Returns (B*F, C_out, H, W)."""
        h = self.res(h, emb)
        if temporal and self.tconv is not None:
            h = self.tconv(h, frames)
        if self.attn is not None:
            h = self.attn(h)
        if self.cross is not None:
            h = self.cross(h, context, context_mask, frames)
        if temporal and self.tattn is not None:
            h = self.tattn(h, frames, emb, motion)
        return h


def _planner(cfg: UNetConfig, dims: int) -> nn.Module:
    """A planner head (or `planner_heads` of them) on the text tokens predicting `dims` numbers and a spread."""
    if cfg.planner_heads == 1:
        return MotionPlanner(cfg.text_dim, dims=dims)
    return PlannerEnsemble(cfg.text_dim, cfg.planner_heads, dims=dims)


class SpaceTimeUNet(nn.Module):
    """Factorized space-time U-Net: `forward(x, noise_level, cond) -> (B, C_out, F, H, W)`."""

    def __init__(self, config: UNetConfig | None = None, **kwargs):
        super().__init__()
        cfg = config if config is not None else UNetConfig(**kwargs)
        if config is not None and kwargs:
            raise TypeError("SpaceTimeUNet: pass either a UNetConfig or keyword arguments, not both")
        self.config = cfg
        self.temporal_enabled = cfg.temporal
        ch = cfg.channels
        emb_dim = cfg.emb_dim or 4 * ch[0]
        self.noise_dim = min(128, 2 * (emb_dim // 2))
        self.context_dim = ch[-1]

        self.noise_mlp = nn.Sequential(nn.Linear(self.noise_dim, emb_dim), nn.SiLU(),
                                       nn.Linear(emb_dim, emb_dim))
        # frame position -> embedding: a temporal layer (zero-init, skipped when F == 1 or temporal is off)
        self.tpos = nn.Linear(FRAME_FEATURES, emb_dim) if cfg.temporal else None
        # (frame position, prompt) -> embedding: "moving left" means something different at the first and the last
        # frame, a product of what the text says and when the frame is, which a sum of the two cannot express
        self.ttext = nn.Sequential(nn.Linear(FRAME_FEATURES + emb_dim, emb_dim), nn.SiLU(),
                                   nn.Linear(emb_dim, emb_dim)) if cfg.temporal and cfg.text_dim else None
        # (motion hint, frame position) -> embedding: where the content should be at this frame
        self.tmotion = nn.Sequential(nn.Linear(FRAME_FEATURES + 3, emb_dim), nn.SiLU(),
                                     nn.Linear(emb_dim, emb_dim)) if cfg.temporal and cfg.motion_cond else None
        self.planner = _planner(cfg, dims=2) if cfg.motion_planner else None  # text -> motion hint
        if cfg.text_dim:
            self.text_norm = nn.LayerNorm(cfg.text_dim)
            self.text_proj = nn.Linear(cfg.text_dim, self.context_dim)  # tokens -> cross-attention context
            self.null_token = nn.Parameter(torch.zeros(1, 1, self.context_dim))  # always-visible key
            self.pool_proj = nn.Linear(cfg.text_dim, emb_dim)  # masked-mean prompt -> added to noise emb
            if cfg.text_whiten:  # fitted once (set_text_whitening), saved with the weights; identity until then
                self.register_buffer("text_mean", torch.zeros(cfg.text_dim))
                self.register_buffer("text_whitening", torch.eye(cfg.text_dim))

        # Input: x, known frames * mask, mask.
        p2 = cfg.patch_size ** 2
        self.conv_in = nn.Conv2d((2 * cfg.in_channels + 1 + 2 * cfg.coords) * p2, ch[0], 3, padding=1)

        def stage(i, o, level, attn=None, tattn=None):
            attn = level in cfg.attn_levels if attn is None else attn
            tattn = level in cfg.temporal_attn_levels if tattn is None else tattn
            spacetime = (level if level >= 0 else len(ch) - 1) in cfg.spacetime_attn_levels
            return Stage(i, o, cfg, emb_dim, self.context_dim, attn, tattn, spacetime)

        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        for lvl, c in enumerate(ch):
            self.down.append(nn.ModuleList([stage(c, c, lvl) for _ in range(cfg.blocks(lvl))]))
            if lvl < len(ch) - 1:
                self.downsample.append(Downsample(c, ch[lvl + 1]))
        self.mid = nn.ModuleList([stage(ch[-1], ch[-1], -1, attn=True, tattn=True),
                                  stage(ch[-1], ch[-1], -1, attn=False, tattn=False)])
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for lvl in reversed(range(len(ch))):
            c = ch[lvl]
            self.up.append(nn.ModuleList([stage(2 * c, c, lvl) for _ in range(cfg.blocks(lvl))]))
            if lvl > 0:
                self.upsample.append(Upsample(c, ch[lvl - 1]))
        # every other space-time attention layer, in the order activations pass them, has its windows shifted
        for i, layer in enumerate(m for m in self.modules() if isinstance(m, SpaceTimeAttention)):
            layer.shift = i % 2 == 1
        self.norm_out = group_norm(ch[0])
        self.conv_out = nn.Conv2d(ch[0], (cfg.out_channels or cfg.in_channels) * p2, 3, padding=1)
        self.initialize_weights()

    # ----------------------------------------------------------------------------------------------
    def initialize_weights(self) -> None:
        """All initialisation in one place (DiT / ADM): xavier-uniform linear maps and convs, zero biases,
        N(0, 0.02) noise MLP, and zero-init on every residual branch output and on the final conv, so
        the network starts as the identity on its residual stream and outputs 0."""
        planners = {id(m) for m in self.planner.modules()} if self.planner is not None else set()
        for m in self.modules():
            # the planner heads keep PyTorch's default init (uniform in +-1/sqrt(fan_in), half xavier's width
            # here): fitted on 8000 clips from xavier's, a head overfit (held-out loss -2.1 against -3.3) and
            # read the direction of 0.65-0.84 of plainly worded prompts, against 0.77-0.97 (models/planner.py)
            if isinstance(m, (nn.Linear, nn.Conv2d, nn.Conv3d)) and id(m) not in planners:
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for m in self.noise_mlp:
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
        if self.config.text_dim:
            nn.init.normal_(self.null_token, std=0.02)
        for m in self.modules():
            if hasattr(m, "zero_init"):
                m.zero_init()
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)
        for m in (self.tpos, self.ttext[-1] if self.ttext is not None else None,
                  self.tmotion[-1] if self.tmotion is not None else None):
            if m is not None:
                nn.init.zeros_(m.weight)
                nn.init.zeros_(m.bias)

    def set_temporal(self, enabled: bool) -> SpaceTimeUNet:
        """Switch temporal layers on or off at run time (off: an image model applied per frame)."""
        if enabled and not self.config.temporal:
            raise ValueError("set_temporal(True): this model was built with temporal=False and has no "
                             "temporal layers; build it with UNetConfig(temporal=True) and `inflate` the "
                             "image weights")
        self.temporal_enabled = enabled
        return self

    def inflate(self, image_state_dict: dict[str, Tensor]) -> list[str]:
        """Load the weights of a temporal=False (image) model; temporal layers keep their zero init.

        Returns:
            The parameter names that were not in `image_state_dict` (the new temporal layers).
        """
        result = self.load_state_dict(image_state_dict, strict=False)
        not_temporal = [k for k in result.missing_keys if not any(p in k for p in TEMPORAL_KEYS)]
        if result.unexpected_keys or not_temporal:
            raise ValueError(f"inflate: the image weights do not match this network apart from temporal "
                             f"layers (unexpected {result.unexpected_keys[:5]}, missing non-temporal "
                             f"{not_temporal[:5]}); build the video model with the image model's config "
                             f"and temporal=True")
        return list(result.missing_keys)

    def set_text_whitening(self, mean: Tensor, matrix: Tensor) -> None:
        """Fix the text whitening: tokens t -> (t - mean) @ matrix, mean (D,), matrix (D, D)."""
        if not self.config.text_whiten:
            raise ValueError("set_text_whitening: this network was built with text_whiten=False")
        self.text_mean.copy_(mean)
        self.text_whitening.copy_(matrix)

    def text_tokens(self, text: Tensor, text_mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """Tokens as every layer reads them: whitened (text_whiten), padding zeroed. (B, L, D), (B, L) bool."""
        text_mask = text_mask.bool() if text_mask is not None else \
            torch.ones(text.shape[:2], dtype=torch.bool, device=text.device)  # (B, L)
        text = text.float()
        if self.config.text_whiten:
            text = (text - self.text_mean) @ self.text_whitening  # (B, L, D)
        return torch.where(text_mask[..., None], text, 0.0), text_mask

    def plan_motion(self, text: Tensor, text_mask: Tensor | None = None) -> Tensor:
        """The planner's (B, 3) [mean dx, mean dy, log std] of the motion the prompts ask for (motion_planner);
        `models.planner.plan_hint` turns it into a hint."""
        if self.planner is None:
            raise ValueError("plan_motion: this network was built without motion_planner")
        return self.planner(*self.text_tokens(text, text_mask))

    # ----------------------------------------------------------------------------------------------
    def _embed(self, noise_level: Tensor, text: Tensor | None, text_mask: Tensor | None, batch: int,
               frames: int, temporal: bool, motion: Tensor | None = None) -> Tensor:
        """Noise-level embedding (+ pooled prompt, + motion hint), per frame and passed through SiLU: (B*F, E)."""
        nl = torch.as_tensor(noise_level, dtype=torch.float32, device=self.conv_in.weight.device)
        if nl.dim() == 0:
            nl = nl.expand(batch)  # (B,)
        if nl.shape not in ((batch,), (batch, frames)):
            raise ValueError(f"noise_level has shape {tuple(nl.shape)}; expected ({batch},) or "
                             f"({batch}, {frames}) (one level per clip or per frame)")
        emb = self.noise_mlp(noise_embedding(nl.reshape(-1), self.noise_dim))  # (B, E) or (B*F, E)
        if nl.dim() == 1:
            emb = repeat(emb, "b e -> (b f) e", f=frames)  # (B*F, E)
        prompt = None
        if text is not None:
            pooled = text.sum(1) / text_mask.sum(1, keepdim=True).clamp(min=1)  # (B, D) masked mean
            prompt = self.pool_proj(pooled)  # (B, E)
            emb = emb + repeat(prompt, "b e -> (b f) e", f=frames)  # (B*F, E)
        if temporal and self.tpos is not None:
            feats = frame_position_features(frames, emb.device)  # (F, FRAME_FEATURES)
            emb = emb + repeat(self.tpos(feats), "f e -> (b f) e", b=batch)  # (B*F, E)
            if prompt is not None and self.ttext is not None:
                both = torch.cat([repeat(feats, "f k -> b f k", b=batch),
                                  repeat(prompt, "b e -> b f e", f=frames)], dim=-1)  # (B, F, FRAME_FEATURES + E)
                emb = emb + rearrange(self.ttext(both), "b f e -> (b f) e")  # (B*F, E)
            if self.tmotion is not None:
                hint = motion.to(emb) if motion is not None else emb.new_zeros(batch, 3)  # (B, 3); zeros: no hint
                both = torch.cat([repeat(feats, "f k -> b f k", b=batch),
                                  repeat(hint, "b k -> b f k", f=frames)], dim=-1)  # (B, F, FRAME_FEATURES + 3)
                emb = emb + rearrange(self.tmotion(both), "b f e -> (b f) e")  # (B*F, E)
        return F.silu(emb)

    def _context(self, text: Tensor | None, text_mask: Tensor | None, batch: int) -> tuple[Tensor, Tensor]:
        """Cross-attention keys source: [null, projected tokens] (B, 1+L, Dc) and mask (B, 1+L) bool."""
        null = self.null_token.expand(batch, 1, -1)  # (B, 1, Dc)
        ones = torch.ones(batch, 1, dtype=torch.bool, device=null.device)
        if text is None:
            return null, ones
        ctx = self.text_proj(self.text_norm(text))  # (B, L, Dc)
        ctx = torch.where(text_mask[..., None], ctx, 0.0)  # padding can never leak (even NaN/inf)
        return torch.cat([null, ctx.to(null.dtype)], dim=1), torch.cat([ones, text_mask], dim=1)

    def _check_inputs(self, x: Tensor, cond: Cond) -> None:
        """Errors that say what shape was expected, before anything is computed."""
        cfg = self.config
        b, c, _, height, width = x.shape
        factor = cfg.patch_size * 2 ** (len(cfg.channels) - 1)
        if c != cfg.in_channels or height % factor or width % factor:
            raise ValueError(f"SpaceTimeUNet: x has shape {tuple(x.shape)}; expected "
                             f"(B, {cfg.in_channels}, F, H, W) with H and W divisible by {factor} "
                             f"({len(cfg.channels)} levels, patch size {cfg.patch_size}); crop or pad the frames")
        if cond.text is not None and cond.text.shape[-1] != cfg.text_dim:
            raise ValueError(f"SpaceTimeUNet: cond.text has token size {cond.text.shape[-1]} but the network "
                             f"was built with text_dim={cfg.text_dim} (0 = no text); encode prompts with the "
                             f"matching text encoder (MiniLM-L6: 384) or drop cond.text")
        if cond.motion is not None and cond.motion.shape != (b, 3):
            raise ValueError(f"SpaceTimeUNet: cond.motion has shape {tuple(cond.motion.shape)}; expected ({b}, 3) "
                             "rows [dx, dy, given] (stillmotion.cond.motion_hint makes them)")

    def _input_channels(self, x: Tensor, cond: Cond) -> Tensor:
        """The noisy video, the known frames and their mask (and pixel coordinates with `coords`) as channels:
        (B, 2C+1 (+2), F, H, W)."""
        b, _, frames, height, width = x.shape
        if cond.frames is None:
            known, mask = torch.zeros_like(x), x.new_zeros(b, 1, frames, height, width)
        else:
            fm = cond.frame_mask if cond.frame_mask is not None else x.new_ones(b, frames)
            mask = fm.to(x.dtype)[:, None, :, None, None].expand(b, 1, frames, height, width)  # (B,1,F,H,W)
            known = torch.where(mask > 0, cond.frames.to(x.dtype) * mask, 0.0)  # masked values never matter
        inputs = [x, known, mask]
        if self.config.coords:
            ys, xs = torch.meshgrid(torch.linspace(-1, 1, height, device=x.device, dtype=x.dtype),
                                    torch.linspace(-1, 1, width, device=x.device, dtype=x.dtype), indexing="ij")
            inputs.append(torch.stack([xs, ys]).expand(b, frames, 2, height, width).transpose(1, 2))  # (B,2,F,H,W)
        return torch.cat(inputs, dim=1)  # (B, 2C+1 (+2), F, H, W)

    def forward(self, x: Tensor, noise_level: Tensor, cond: Cond | None = None) -> Tensor:
        """Predict the network output for noisy videos.

        Args:
            x: (B, C, F, H, W) noisy video (an image is F == 1). H and W divisible by 2^(levels-1).
            noise_level: (B,) float, c_noise = log(sigma) / 4; (B, F) gives every frame its own level.
            cond: optional `Cond`: text (B, L, D) + text_mask (B, L) bool; frames (B, C, F, H, W) +
                frame_mask (B, F) in {0, 1} for known frames (frames without a mask count as all known).

        Returns:
            (B, C_out, F, H, W).
        """
        cfg = self.config
        b, frames = x.shape[0], x.shape[2]
        cond = cond if cond is not None else Cond()
        self._check_inputs(x, cond)
        h = self._input_channels(x, cond)  # (B, 2C+1 (+2), F, H, W)
        h = rearrange(h, "b c f h w -> (b f) c h w")  # (B*F, 2C+1 (+2), H, W): spatial layout from here on

        text = text_mask = None
        if cond.text is not None:
            text, text_mask = self.text_tokens(cond.text, cond.text_mask)  # (B, L, D), (B, L)
        temporal = self.temporal_enabled and frames > 1
        emb = self._embed(noise_level, text, text_mask, b, frames, temporal, cond.motion)  # (B*F, E)
        context, context_mask = self._context(text, text_mask, b) if cfg.text_dim else (None, None)

        def run(stage: Stage, h: Tensor) -> Tensor:
            if cfg.grad_checkpoint and self.training and torch.is_grad_enabled():
                return checkpoint(stage, h, emb, context, context_mask, frames, temporal, cond.motion,
                                  use_reentrant=False)
            return stage(h, emb, context, context_mask, frames, temporal, cond.motion)

        if cfg.patch_size > 1:
            h = F.pixel_unshuffle(h, cfg.patch_size)  # (B*F, (2C+1 (+2))*p*p, H/p, W/p)
        h = self.conv_in(h)  # (B*F, ch0, H/p, W/p)
        skips = []
        for lvl, stages in enumerate(self.down):
            for s in stages:
                h = run(s, h)
                skips.append(h)  # (B*F, ch[lvl], H/2^lvl, W/2^lvl)
            if lvl < len(self.downsample):
                h = self.downsample[lvl](h)  # (B*F, ch[lvl+1], H/2^(lvl+1), W/2^(lvl+1))
        for s in self.mid:
            h = run(s, h)
        for i, stages in enumerate(self.up):
            for s in stages:
                h = run(s, torch.cat([h, skips.pop()], dim=1))  # (B*F, 2 ch[lvl], ...) -> (B*F, ch[lvl], ...)
            if i < len(self.upsample):
                h = self.upsample[i](h)  # (B*F, ch[lvl-1], 2x resolution)
        h = self.conv_out(F.silu(self.norm_out(h)))  # (B*F, C_out*p*p, H/p, W/p)
        if cfg.patch_size > 1:
            h = F.pixel_shuffle(h, cfg.patch_size)  # (B*F, C_out, H, W)
        return rearrange(h, "(b f) c h w -> b c f h w", b=b)  # (B, C_out, F, H, W)
