"""One conditioning object for every pipeline.

Text-to-video has text and no known frames; image-to-video knows frame 0; interpolation knows the
keyframes; prediction knows the past. All of them are a `Cond`, and the network reads the same fields.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor


@dataclass
class Cond:
    """Conditioning for a batch of B videos.

    Attributes:
        text: (B, L, D) token embeddings of the prompt, or None for no text.
        text_mask: (B, L) bool, True where a token is real (not padding).
        frames: (B, C, F, H, W) known frames in [-1, 1]; values where `frame_mask` is 0 are ignored.
        frame_mask: (B, F) float in {0, 1}: 1 where the frame is known.
        motion: (B, 3) motion hint [dx, dy, given]: how far the content moves over the whole clip, in canvas
            fractions (x right, y down), and 1 where a hint is given (0 rows: no hint). Read by networks built
            with `motion_cond` (models/unet.py); see `motion_hint`.
    """

    text: Tensor | None = None
    text_mask: Tensor | None = None
    frames: Tensor | None = None
    frame_mask: Tensor | None = None
    motion: Tensor | None = None

    @property
    def batch_size(self) -> int | None:
        for f in fields(self):
            v = getattr(self, f.name)
            if v is not None:
                return v.shape[0]
        return None

    def map(self, fn) -> Cond:
        """Apply `fn` to every tensor field (None stays None)."""
        return replace(self, **{f.name: (None if getattr(self, f.name) is None else fn(getattr(self, f.name)))
                                for f in fields(self)})

    def to(self, *args, **kwargs) -> Cond:
        return self.map(lambda t: t.to(*args, **kwargs))

    def __getitem__(self, index) -> Cond:
        return self.map(lambda t: t[index])

    @staticmethod
    def cat(conds: list[Cond]) -> Cond:
        """Concatenate along the batch axis. Text of different lengths is right-padded (mask False)."""
        out = {}
        for f in fields(Cond):
            vals = [getattr(c, f.name) for c in conds]
            if all(v is None for v in vals):
                out[f.name] = None
                continue
            if any(v is None for v in vals):
                raise ValueError(f"Cond.cat: field '{f.name}' is set in some conds and None in others")
            if f.name in ("text", "text_mask"):
                length = max(v.shape[1] for v in vals)
                vals = [torch.nn.functional.pad(v, (0, 0, 0, length - v.shape[1]) if v.dim() == 3
                                                else (0, length - v.shape[1])) for v in vals]
            out[f.name] = torch.cat(vals, dim=0)
        return Cond(**out)


MOTION_WORDS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1), "up-left": (-1, -1),
                "up-right": (1, -1), "down-left": (-1, 1), "down-right": (1, 1), "static": (0, 0)}
HINT_TRAVEL = 0.375  # canvas fractions over the clip for a named direction (the shapes world: 0.25 slow, 0.5 fast)


def motion_hint(hint, batch: int) -> Tensor:
    """A (batch, 3) `Cond.motion` from a user's hint.

    Args:
        hint: None (no hint), a direction name (a key of MOTION_WORDS, moved HINT_TRAVEL per moving axis), or
            (dx, dy) in canvas fractions over the clip (x right, y down), or a string "DX,DY".
    """
    if hint is None:
        return torch.zeros(batch, 3)
    if isinstance(hint, str) and hint in MOTION_WORDS:
        dx, dy = (HINT_TRAVEL * v for v in MOTION_WORDS[hint])
    else:
        try:
            dx, dy = (float(v) for v in (hint.split(",") if isinstance(hint, str) else hint))
        except (TypeError, ValueError):
            raise ValueError(f"motion hint {hint!r}: give a direction ({', '.join(MOTION_WORDS)}) or 'DX,DY' in "
                             "canvas fractions over the clip, e.g. '-0.4,0' for 40% of the width to the left") from None
        if not (math.isfinite(dx) and math.isfinite(dy)):
            raise ValueError(f"motion hint {hint!r}: DX and DY must be finite numbers, e.g. '-0.4,0'")
    return torch.tensor([[dx, dy, 1.0]]).expand(batch, 3).clone()
