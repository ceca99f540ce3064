"""Fit a fresh motion planner before the video steps: many cheap planner steps on a fixed set of clips.

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

The clips are the run's own first n training examples (functions of the seed, as in the loop), so a run is as
reproducible with the fit as without it. Every process fits the same planner from the same clips (no
communication; the n flows are measured n times, once per process).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from tqdm import tqdm

from stillmotion.models.planner import plan_loss, plan_std, planner_heads
from stillmotion.train import dist
from stillmotion.train.flow_consistency import clip_flow
from stillmotion.train.motion import motion_from_flow
from stillmotion.train.workers import worker_loader


class _MeasuredClips(torch.utils.data.Dataset):
    """Item i = (caption, measured (dx, dy)) of the clip with seed seeds[i] (the flow is what costs)."""

    def __init__(self, source, seeds: list[int]):
        self.source, self.seeds = source, seeds

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitem__(self, i: int) -> tuple[str, np.ndarray]:
        clip = self.source.sample(self.seeds[i])
        return clip.caption, motion_from_flow(*clip_flow(clip.video))[:2]


def planner_examples(source, seeds: list[int], text, workers: int = 0
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The captions' tokens and the clips' measured motion: tokens (N, L, D), mask (N, L), motion (N, 2).
    `workers` processes measure the clips (0: this one)."""
    loader = worker_loader(_MeasuredClips(source, seeds), workers)
    captions, motions = [], []
    for caption, motion in tqdm(loader, total=len(seeds), desc="planner: measuring the clips",
                                disable=not dist.is_main(), leave=False):
        captions.append(caption)
        motions.append(motion)
    tokens, mask = text.encode_all(captions, 256)  # (N, L, D), (N, L)
    return tokens.cpu(), mask.cpu(), torch.from_numpy(np.stack(motions))


def fit_planner(net, text, source, seeds: list[int], *, steps: int, batch: int = 256, lr: float = 1e-3,
                seed: int = 0, workers: int = 0) -> dict:
    """Train the network's motion planner alone (`net.planner`, on the clips' measured motion; the text whitening,
    if any, as it is) on the clips with these seeds; an ensemble's heads each for `steps` steps on batches of their
    own.

    Returns a record: clips, steps, heads, seconds, and under "motion" the final loss and the median predicted
    spread.
    """
    t0 = time.time()
    tokens, mask, target = planner_examples(source, seeds, text, workers)
    device = next(net.parameters()).device
    with torch.no_grad():  # the network's fixed text transform (whitening), once for all steps
        tokens, mask = net.text_tokens(tokens.to(device), mask.to(device))
    target = target.to(device)
    heads = planner_heads(net.planner)
    for k, head in enumerate(heads):  # an ensemble's heads one by one, each on its own batches
        opt = torch.optim.AdamW(head.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
        g = torch.Generator().manual_seed(seed + k)
        for _ in range(steps):
            pick = torch.randint(len(seeds), (min(batch, len(seeds)),), generator=g).to(device)
            loss = plan_loss(head(tokens[pick], mask[pick]), target[pick])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    with torch.no_grad():
        plans = torch.cat([net.planner(tokens[i:i + 1024], mask[i:i + 1024]) for i in range(0, len(seeds), 1024)])
    record = {"clips": len(seeds), "steps": steps, "heads": len(heads),
              "motion": {"loss": round(plan_loss(plans, target).item(), 4),
                         "median_spread": round(plan_std(plans).median().item(), 3)}}
    record["seconds"] = round(time.time() - t0, 1)
    return record
