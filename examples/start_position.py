"""Where a model's image pass (F = 1, the keyframe strategy's frame 0) puts the object, by asked direction.

    python examples/start_position.py shipped [runs/mine ...] [--joint]

--joint reads frame 0 of a joint pass over all frames instead (what the first-frame strategy starts from).

Per cardinal direction: the mean start centroid (x for left / right, y for up / down) over 32 prompts (seed 1),
against the world's own frame 0 for the same labels placed as the world places them; and the share of starts with
less than 10 px of room ahead. A model that starts a left-mover where a right-mover starts reads 0 separation
(docs/motion.md, experiments 8-9).
"""
import sys

import numpy as np
import torch

torch.set_num_threads(1)
from stillmotion.data.shapes import ShapesWorld, place  # noqa: E402
from stillmotion.data.video_io import to_uint8  # noqa: E402
from stillmotion.eval.probe import foreground  # noqa: E402
from stillmotion.pipelines.text_to_video import load  # noqa: E402

COLOURS = ["red", "green", "blue", "yellow", "cyan", "magenta", "white", "orange"]
SHAPES = ["circle", "square", "triangle", "circle"]
AXIS = {"left": (0, -1), "right": (0, 1), "up": (1, -1), "down": (1, 1)}


def centroids(videos: np.ndarray) -> np.ndarray:
    """(N, F, H, W, 3) uint8 -> (N, 2) frame-0 centroid (x, y)."""
    out = []
    for v in videos:
        _, _, cx, cy = foreground(v[:1], 90)
        out.append((cx[0], cy[0]))
    return np.array(out)


def main():
    world = ShapesWorld(size=32, frames=16, p_two=0.0)
    rng = np.random.default_rng(1)
    prompts, labels = [], []
    for d in AXIS:
        for i in range(32):
            c, s = COLOURS[i % 8], SHAPES[(i // 8) % 4]
            prompts.append((d, f"a {c} {s} moving {d}"))
            speed = str(rng.choice(["slow", "fast"]))
            labels.append(world.labels_from_attributes(c, s, d, speed, start=place(rng, s, d, speed, 0.28)))
    own = centroids(np.stack([world.render(lab)[:1] for lab in labels]))
    print("world", summary(prompts, own))
    joint = "--joint" in sys.argv
    for path in [a for a in sys.argv[1:] if a != "--joint"]:
        pipe = load(None if path == "shipped" else path)
        sampling = pipe.sampling.merged(strategy="joint")
        vids = []
        for k in range(0, len(prompts), 32):
            chunk = [p for _, p in prompts[k:k + 32]]
            frames = pipe.frames if joint else 1
            vids.append(to_uint8(pipe(chunk, sampling=sampling, seed=1, frames=frames, progress=False))[:, :1])
        print(path + (" (joint pass)" if joint else " (image pass)"), summary(prompts, centroids(np.concatenate(vids))),
              flush=True)


def summary(prompts, xy) -> str:
    parts, start = [], {}
    for d, (axis, sign) in AXIS.items():
        pos = xy[[i for i, (dd, _) in enumerate(prompts) if dd == d], axis]
        start[d] = pos.mean()
        room = (31 - pos) if sign > 0 else pos
        parts.append(f"{d}: start {start[d]:5.1f} room<10 {np.mean(room < 10):.2f}")
    return (f"x(left)-x(right) {start['left'] - start['right']:+.1f}  y(up)-y(down) {start['up'] - start['down']:+.1f}"
            " | " + "; ".join(parts))


if __name__ == "__main__":
    main()
