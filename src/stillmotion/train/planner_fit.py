"""Fit fresh planners (motion, colour) before the video steps: many cheap planner steps on a fixed set of clips.

Why: the planner (models/planner.py) is a small head on the frozen text encoder's tokens, and inside the training
loop it gets one step per video step. On 2 CPU cores a video step of the `cpu` model takes 1.5-2 s, so a
15-minute run gives it ~200 steps, and after them its plans were still too unsure to give a hint (spread 0.32 of
the canvas against the 0.15 a hint needs, measured on 64 prompts). The head's own step costs microseconds; what
it needs is data: each example's target is its clip's displacement measured from optical flow (train/motion.py),
~15 ms a clip on one core. So this fits it first on the run's first n clips (their captions embedded once), for
`steps` steps of `batch` examples. The loop then leaves it as fitted: its batch-16 steps moved a fitted planner
away from what it had learned (it read the direction of 0.78 of 256 plainly worded prompts after the fit, 0.54
after 182 loop steps).

How many clips: fitted on 1000 / 2000 / 4000 / 8000 of them (500 steps of 256), a planner read the direction of
0.63 / 0.64 / 0.86 / 0.90 of 256 plainly worded prompts it never saw; fewer clips overfit (the held-out loss
rose with more steps). Between seeds the same 8000 clips gave 0.82-0.97; four heads averaged
(`planner_heads`, models/planner.py) gave 0.97-1.00.

The colour planner (`colour_planner`) is fitted here too, on the same clips and captions: its target is the mean
colour of the objects each clip shows (diffusion/colour.py `object_colour`, a few microseconds a clip).

The clips are the run's own first n training examples (functions of the seed, as in the loop), so a run is as
reproducible with the fit as without it. Every process fits the same planner from the same clips (no
communication; the n flows are measured n times, once per process).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from tqdm import tqdm

from stillmotion.data.video_io import to_float
from stillmotion.diffusion.colour import object_colour
from stillmotion.models.planner import plan_loss, plan_std, planner_heads
from stillmotion.train import dist
from stillmotion.train.flow_consistency import clip_flow
from stillmotion.train.motion import motion_from_flow
from stillmotion.train.workers import worker_loader


class _MeasuredClips(torch.utils.data.Dataset):
    """Item i = (caption, measured (dx, dy), the objects' colour (3,), whether any object shows) of the clip with
    seed seeds[i]; a measurement not asked for is zeros (the flow is what costs)."""

    def __init__(self, source, seeds: list[int], *, motion: bool = True, colour: bool = False):
        self.source, self.seeds, self.motion, self.colour = source, seeds, motion, colour

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitem__(self, i: int) -> tuple[str, np.ndarray, np.ndarray, bool]:
        clip = self.source.sample(self.seeds[i])
        motion = motion_from_flow(*clip_flow(clip.video))[:2] if self.motion else np.zeros(2, np.float32)
        colour, shown = object_colour(to_float(clip.video)[None]) if self.colour else (torch.zeros(1, 3), [False])
        return clip.caption, motion, colour[0].numpy(), bool(shown[0])


def planner_examples(source, seeds: list[int], text, workers: int = 0, *, motion: bool = True,
                     colour: bool = False) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """The captions' tokens and what the clips measure: tokens (N, L, D), mask (N, L), and targets {"motion":
    (N, 2), "colour": (N, 3), "shown": (N,) bool}. `workers` processes measure the clips (0: this one)."""
    loader = worker_loader(_MeasuredClips(source, seeds, motion=motion, colour=colour), workers)
    captions, rows = [], []
    for caption, *row in tqdm(loader, total=len(seeds), desc="planner: measuring the clips",
                              disable=not dist.is_main(), leave=False):
        captions.append(caption)
        rows.append(row)
    tokens, mask = text.encode_all(captions, 256)  # (N, L, D), (N, L)
    motions, colours, shown = zip(*rows)
    return tokens.cpu(), mask.cpu(), {"motion": torch.from_numpy(np.stack(motions)),
                                      "colour": torch.from_numpy(np.stack(colours)),
                                      "shown": torch.tensor(shown)}


def fit_planner(net, text, source, seeds: list[int], *, steps: int, batch: int = 256, lr: float = 1e-3,
                seed: int = 0, workers: int = 0) -> dict:
    """Train the network's planners alone (`net.planner` on the clips' motion, `net.colour_planner` on their
    objects' colour; the text whitening, if any, as it is) on the clips with these seeds; an ensemble's heads each
    for `steps` steps on batches of their own.

    Returns a record: clips, steps, heads, seconds, and per planner ("motion", "colour") the final loss and the
    median predicted spread.
    """
    t0 = time.time()
    planners = {name: p for name, p in (("motion", getattr(net, "planner", None)),
                                        ("colour", getattr(net, "colour_planner", None))) if p is not None}
    tokens, mask, targets = planner_examples(source, seeds, text, workers, motion="motion" in planners,
                                             colour="colour" in planners)
    device = next(net.parameters()).device
    with torch.no_grad():  # the network's fixed text transform (whitening), once for all steps
        tokens, mask = net.text_tokens(tokens.to(device), mask.to(device))
    record = {"clips": len(seeds), "steps": steps}
    for name, planner in planners.items():
        target = targets[name].to(device)
        weight = targets["shown"].to(device, torch.float32) if name == "colour" else None  # (N,) or None
        heads = planner_heads(planner)
        for k, head in enumerate(heads):  # an ensemble's heads one by one, each on its own batches
            opt = torch.optim.AdamW(head.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
            g = torch.Generator().manual_seed(seed + k)
            for _ in range(steps):
                pick = torch.randint(len(seeds), (min(batch, len(seeds)),), generator=g).to(device)
                loss = plan_loss(head(tokens[pick], mask[pick]), target[pick],
                                 None if weight is None else weight[pick])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        with torch.no_grad():
            plans = torch.cat([planner(tokens[i:i + 1024], mask[i:i + 1024]) for i in range(0, len(seeds), 1024)])
            final = plan_loss(plans, target, weight).item()
        record["heads"] = len(heads)
        record[name] = {"loss": round(final, 4), "median_spread": round(plan_std(plans).median().item(), 3)}
    record["seconds"] = round(time.time() - t0, 1)
    return record
