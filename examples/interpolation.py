"""Fill the frames between keyframes three ways and score them against the true frames (PSNR / SSIM).

    python examples/interpolation.py --model runs/mine --n 32 --every 5

See stillmotion/eval/interpolation.py for the protocol: held-out shapes-world clips, keyframes 0, 5, 10, 15 of 16,
the model's own diffusion in-betweens (trained with the "interpolate" frame task) against OpenCV optical-flow
interpolation and a crossfade.
"""

import argparse

from stillmotion.eval.interpolation import score_interpolation
from stillmotion.pipelines.text_to_video import load


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="checkpoint or run folder (default: the shipped model)")
    ap.add_argument("--n", type=int, default=32, help="clips")
    ap.add_argument("--every", type=int, default=5, help="keyframe spacing")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    scores = score_interpolation(load(args.model), n=args.n, every=args.every, steps=args.steps, seed=args.seed)
    print(f"{args.n} held-out clips, keyframes {scores['protocol']['keyframes']}, scored on the other frames")
    for name in ("diffusion", "flow", "crossfade"):
        print(f"{name:10s} PSNR {scores[name]['psnr']:6.2f} dB   SSIM {scores[name]['ssim']:.4f}")


if __name__ == "__main__":
    main()
