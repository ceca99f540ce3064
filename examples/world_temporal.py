"""The world's own clips on the temporal metrics `stillmotion evaluate` reports for generated ones.

    python examples/world_temporal.py [N]

Warping error, flicker (0-255 levels) and dynamic degree (px per frame) of N held-out single-object clips of the
shapes world (seeds 10^9 + i, 16 x 32 x 32, black), once gliding in the 8 directions and once with the other
motions: the yardstick for the coherence goal "warping error within 1.5x of the world's own clips"
(docs/motion.md). Default N = 256.
"""
import sys

import numpy as np
import torch

from stillmotion.data.shapes import ShapesWorld
from stillmotion.eval.temporal import temporal_report

DIRECTIONS = ("left", "right", "up", "down", "up-left", "up-right", "down-left", "down-right")
OTHER = ("static", "bouncing", "growing", "shrinking", "rotating")


def main(n: int) -> None:
    torch.set_num_threads(1)
    for name, motions in (("directions", DIRECTIONS), ("other motions", OTHER)):
        world = ShapesWorld(size=32, frames=16, p_two=0.0, motions=motions)
        reports = [temporal_report(world.sample(10**9 + i).video) for i in range(n)]
        means = {k: float(np.mean([r[k] for r in reports])) for k in ("warping_error", "flicker", "dynamic_degree")}
        print(f"{name:14s} n={n}: " + ", ".join(f"{k} {v:.2f}" for k, v in means.items()))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 256)
