"""Growing a U-Net: a new, finer level in front of a trained one (model surgery for `init_from`).

A patch-2 U-Net folds each 2x2 pixel patch into channels and runs its first level at half resolution; its stem
learns fine detail slowly (docs/motion.md, experiment 16: it keeps most of the noise on flat objects). Growing it
adds a full-resolution level of its own (patch size halved, one more entry at the front of `channels`) and keeps
every trained level: the grown network's level l + 1 is the old network's level l, at the same resolution and
width, so what the old network learnt about motion, text and layout carries over, and only the new stem (its
input and output convolutions, the new level's blocks and the resampling between it and the old first level)
starts from its initialisation. As in progressive growing (Karras et al. 2018) and the inflation of image
models, the trained part is kept and the new part is learnt around it; unlike them, the new part is at the
input and output, so the grown network does not compute the old one's function at the start (its output layer
starts at zero) and is fine-tuned, its new tensors at their own rate (`new_lr`). Measured on the shipped model
(docs/motion.md, experiment 18): 50 minutes on 1 CPU thread keep its colour and direction, but the new stem does
not yet draw fine detail as well as the patch stem it replaces.

Key names (models/unet.py): `down.{l}` / `downsample.{l}` count levels from the finest; `up.{i}` / `upsample.{i}`
count from the coarsest, so the new level's up-path entries are the last ones and the old up-path keys keep
their names.
"""

from __future__ import annotations

from torch import Tensor

from stillmotion.models.unet import UNetConfig

STEM_KEYS = ("conv_in.", "norm_out.", "conv_out.")  # at the old first level's resolution: replaced, not moved
SHIFTED_LEVELS = ("attn_levels", "temporal_attn_levels", "spacetime_attn_levels")


def grow_problem(old: UNetConfig, new: UNetConfig) -> str | None:
    """Why `new` is not `old` grown by one finer level (None if it is)."""
    if tuple(new.channels[1:]) != tuple(old.channels):
        return f"channels {list(new.channels)} are not a new first width followed by {list(old.channels)}"
    if new.patch_size * 2 != old.patch_size:
        return f"patch_size {new.patch_size} is not half of {old.patch_size}"
    for name in SHIFTED_LEVELS:
        if tuple(getattr(new, name)) != tuple(lvl + 1 for lvl in getattr(old, name)):
            return f"{name} {list(getattr(new, name))} are not {list(getattr(old, name))} moved one level down"
    if [new.blocks(lvl + 1) for lvl in range(len(old.channels))] != \
            [old.blocks(lvl) for lvl in range(len(old.channels))]:
        return "blocks_per_level of the old levels changed"
    same = set(old.to_dict()) - {"channels", "patch_size", "blocks_per_level", *SHIFTED_LEVELS}
    if old.emb_dim is None:
        return "emb_dim is derived from channels[0]; the old network must give it explicitly to be grown"
    changed = sorted(k for k in same if getattr(old, k) != getattr(new, k))
    return f"{', '.join(changed)} changed" if changed else None


def grow_weights(weights: dict[str, Tensor], old: UNetConfig, new: UNetConfig) -> dict[str, Tensor]:
    """The trained weights of `old` renamed into `new` (one finer level in front); the stem's weights are left
    out, and `new`'s stem and finest level keep their initialisation. Raises ValueError if `new` is not `old`
    grown (`grow_problem`)."""
    problem = grow_problem(old, new)
    if problem:
        raise ValueError(f"cannot grow the network: {problem}; grow by channels=[C, *old channels], half the "
                         f"patch_size and every attention level + 1")
    grown = {}
    for key, value in weights.items():
        if key.startswith(STEM_KEYS):
            continue
        head, _, rest = key.partition(".")
        if head in ("down", "downsample"):  # counted from the finest level: one further in
            index, _, rest = rest.partition(".")
            key = f"{head}.{int(index) + 1}.{rest}"
        grown[key] = value
    return grown

