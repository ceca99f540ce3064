"""Colour anchoring: partway through sampling, the objects take the colour that the prompt's colour plan reads.

The colour of an object is decided at the high noise levels, where only the text can tell it, and a denoiser
learns to read colour words from the diffusion loss slowly: a 15-minute model drew "orange" as red in half of its
clips and "yellow" as orange in a third, while red, green, blue, cyan and white were right every time
(docs/from-scratch.md). So, as for motion (models/planner.py, diffusion/trajectory.py), a small head learns the
colour from the text with a direct target, the mean colour of each training clip's objects measured from its
pixels (`object_colour`; no labels, so it works on any folder of clips with a plain background), and sampling
imposes it: at every sampler level from noise level `sigma` down, the pixels where the clean estimate shows an
object are shifted by the plan minus the colour they have there, each in proportion to how much of it is object
(`coverage`), and the sampler denoises on from there, so the model keeps drawing the shape, the edges and the
motion. Once is not enough for a model that draws a colour dim: a 15-minute model whose "yellow" came out olive
denoised a yellow set at sigma 1.0 back to a dull orange-yellow (yellow read in 19 of 32 clips); set again at the
next level, 30 of 32, and at every level the same (docs/from-scratch.md). A plan that is unsure
recolours nothing, and neither does a clip whose estimate shows more than one object (`single_object`): one
shift for all would paint "a red circle and a blue square" in their mix, and the plan's spread alone does not
tell those prompts apart (measured on a 15-minute model: plain one-colour prompts 0.08-0.11, two colours
0.10-0.17, none named 0.11-0.13).

    x = anchor_colour(x, x0_estimate, plan_mean, anchored)  # x: (B, C, F, H, W) at the anchoring noise level
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from stillmotion.diffusion.trajectory import OBJECT_CONTRAST, object_map

MAX_STD = 0.12  # a colour plan whose spread (of the [-1, 1] range, per channel) exceeds this recolours nothing
FULL_CONTRAST = 0.6  # `coverage`: a pixel this far from the background (of the [-1, 1] range) is all object


def coverage(x0: Tensor) -> Tensor:
    """(B, F, H, W) in [0, 1]: how much each pixel counts as object, by its contrast with the background
    (`trajectory.object_map`): none below OBJECT_CONTRAST, rising to all at FULL_CONTRAST. A drawn object is 1
    nearly everywhere, faint smudges a fraction."""
    return ((object_map(x0) - OBJECT_CONTRAST) / (FULL_CONTRAST - OBJECT_CONTRAST)).clamp(0.0, 1.0)


def object_colour(x0: Tensor, weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The colour of the objects in clean(-estimated) clips, their pixels' mean weighted by `coverage`: (B, C) in
    [-1, 1], and (B,) bool, whether any pixel shows an object.

    Args:
        x0: (B, C, F, H, W) clips in [-1, 1].
        weight: (B, 1, F, H, W) their `coverage`, where the caller has it already (None: computed here).
    """
    weight = coverage(x0)[:, None] if weight is None else weight  # (B, 1, F, H, W)
    total = weight.sum((2, 3, 4))  # (B, 1)
    return (x0 * weight).sum((2, 3, 4)) / total.clamp_min(1e-6), total[:, 0] > 0


def single_object(x0: Tensor, min_pixels: int = 4) -> Tensor:
    """(B,) bool: the middle frame of each clean(-estimated) clip shows exactly one object: one 8-connected
    region of pixels at full `coverage` with at least `min_pixels` pixels.

    scipy's labelling, not OpenCV's: `cv2.connectedComponentsWithStats` starts OpenCV's thread pool, and
    DataLoader workers forked after it hang (train/workers.py): the tests froze where one sampled with colour
    anchoring and a later one trained with worker processes."""
    from scipy import ndimage  # scikit-learn's dependency; imported where used

    full = (coverage(x0[:, :, x0.shape[2] // 2, None]) >= 1.0)[:, 0].cpu().numpy()  # (B, H, W) bool
    eight = np.ones((3, 3), dtype=bool)
    out = []
    for mask in full:
        labels, n = ndimage.label(mask, structure=eight)
        sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]  # pixels per region
        out.append(int((sizes >= min_pixels).sum()) == 1)
    return torch.tensor(out)


def anchor_colour(x: Tensor, x0: Tensor, colour: Tensor, anchored: Tensor | None = None) -> Tensor:
    """Shift each anchored clip's object pixels, in proportion to their `coverage`, by the planned colour minus
    their `object_colour`: a uniformly coloured object takes the planned colour inside, its edges and faint
    pixels change as much as they are object.

    Args:
        x: (B, C, F, H, W) the partly denoised clips.
        x0: (B, C, F, H, W) the sampler's clean estimate at that point: where the objects are, and their colour.
        colour: (B, C) the planned colour in [-1, 1].
        anchored: (B,) bool, which clips to recolour (None: all); the others, and clips whose estimate shows no
            object or more than one (`single_object`), are returned unchanged.

    Returns:
        (B, C, F, H, W): x + coverage(x0) * (colour - object_colour(x0)).
    """
    weight = coverage(x0)[:, None]  # (B, 1, F, H, W)
    current, shown = object_colour(x0, weight)  # (B, C), (B,)
    keep = shown & single_object(x0).to(x.device)  # (B,)
    keep = keep if anchored is None else keep & anchored.to(x.device).bool()
    shift = (colour.to(x) - current.to(x)) * keep[:, None].to(x.dtype)  # (B, C)
    return x + weight.to(x.dtype) * shift[:, :, None, None, None]
