"""Image-to-video: the given image is frame 0, the network draws the rest of the clip from the prompt.

This is `TextToVideo` with one known frame (the model's "i2v" frame task, train/tasks.py). The image enters
the network through `Cond` (known frames and their mask) and is returned exactly as given; no other pixel is
computed outside the network.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from stillmotion.data.video_io import to_float


def first_frame_known(image: np.ndarray, count: int, frames: int) -> tuple[Tensor, Tensor]:
    """Known frames for image-to-video.

    Args:
        image: (H, W, 3) uint8 on the model's canvas (pipelines/inputs.read_input_image).
        count: clips in the batch (B); frames: frames per clip (F).

    Returns:
        known (B, 3, F, H, W) in [-1, 1] (zeros after frame 0) and frame_mask (B, F), 1 at frame 0.
    """
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(f"first_frame_known: image must be (H, W, 3) uint8; got {image.shape} {image.dtype}")
    h, w, _ = image.shape
    known = torch.zeros(count, 3, frames, h, w)
    known[:, :, 0] = to_float(image[None])[:, 0]  # to_float: (1, H, W, 3) -> (3, 1, H, W)
    mask = torch.zeros(count, frames)
    mask[:, 0] = 1
    return known, mask


def animate(pipe, images: np.ndarray, prompts: list[str], **options) -> Tensor:
    """One clip per (image, prompt): (B, 3, F, H, W) in [-1, 1], frame 0 of clip b exactly images[b].

    Args:
        pipe: a TextToVideo whose model was trained with the "i2v" (or "predict") task.
        images: (B, H, W, 3) uint8 on the model's canvas, or one (H, W, 3) image for every prompt.
        prompts: B prompts.
        options: TextToVideo's (sampling, seed, frames, negative, progress, callback, ...); known frames
            always sample jointly, whatever the sampling's strategy.
    """
    images = np.repeat(images[None], len(prompts), axis=0) if images.ndim == 3 else images
    if len(images) != len(prompts):
        raise ValueError(f"animate: {len(images)} images for {len(prompts)} prompts")
    frames = options.pop("frames", None) or pipe.frames
    pairs = [first_frame_known(image, 1, frames) for image in images]
    known, mask = torch.cat([k for k, _ in pairs]), torch.cat([m for _, m in pairs])
    return pipe(prompts, frames=frames, known_frames=known, frame_mask=mask, **options)
