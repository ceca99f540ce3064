"""Fill the frames between keyframes three ways and score them against the true frames (PSNR / SSIM).

    python examples/interpolation.py --model runs/mine --n 32 --every 5

Held-out shapes-world clips (seeds never used in training), keyframes every `every` frames (0, 5, 10, 15 of 16):
  diffusion   the model's own interpolation (known keyframes through Cond, the clip's caption as the prompt);
              the model must have been trained with the "interpolate" frame task
  flow        OpenCV optical flow between neighbouring keyframes, bidirectional warping and blending
  crossfade   a linear blend of the two neighbouring keyframes
"""

import argparse

import numpy as np
import torch

from stillmotion.data.video_io import to_float, to_uint8
from stillmotion.data.worlds import get_world
from stillmotion.eval.reconstruction import psnr, ssim
from stillmotion.pipelines.flow_interpolation import flow_interpolate
from stillmotion.pipelines.text_to_video import load


def crossfade(video: np.ndarray, known: np.ndarray) -> np.ndarray:
    out = video.copy()
    keys = np.flatnonzero(known)
    for a, b in zip(keys[:-1], keys[1:]):
        for i in range(a + 1, b):
            t = (i - a) / (b - a)
            out[i] = np.rint((1 - t) * video[a] + t * video[b])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="checkpoint or run folder (default: the shipped model)")
    ap.add_argument("--n", type=int, default=32, help="clips")
    ap.add_argument("--every", type=int, default=5, help="keyframe spacing")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    pipe = load(args.model)
    world = get_world("shapes", size=pipe.size, frames=pipe.frames, p_two=0.0)
    clips = [world.sample(10**9 + args.seed + i) for i in range(args.n)]  # far from any training example seed
    known = np.zeros(pipe.frames, bool)
    known[::args.every] = True
    known[-1] = True
    videos = torch.stack([to_float(c.video) for c in clips])  # (N, C, F, H, W)
    mask = torch.from_numpy(known).float().expand(args.n, -1)
    made = []
    for i in range(0, args.n, 16):
        made.append(pipe([c.caption for c in clips[i:i + 16]], known_frames=videos[i:i + 16], frame_mask=mask[i:i + 16],
                         steps=args.steps, seed=args.seed + i, progress=False))
    ways = {"diffusion": list(to_uint8(torch.cat(made))),
            "flow": [flow_interpolate(c.video, known) for c in clips],
            "crossfade": [crossfade(c.video, known) for c in clips]}
    print(f"{args.n} held-out clips, keyframes {np.flatnonzero(known).tolist()}, scored on the other frames")
    for name, outs in ways.items():
        p = psnr(np.concatenate([o[~known] for o in outs]), np.concatenate([c.video[~known] for c in clips]))  # pooled
        s = np.mean([ssim(o[~known], c.video[~known]) for o, c in zip(outs, clips)])
        print(f"{name:10s} PSNR {p:6.2f} dB   SSIM {s:.4f}")


if __name__ == "__main__":
    main()
