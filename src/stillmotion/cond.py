"""One conditioning object for every pipeline.

Text-to-video has text and no known frames; image-to-video knows frame 0; interpolation knows the
keyframes; prediction knows the past. All of them are a `Cond`, and the network reads the same fields.
"""

from __future__ import annotations

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
    """

    text: Tensor | None = None
    text_mask: Tensor | None = None
    frames: Tensor | None = None
    frame_mask: Tensor | None = None

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
