"""Write the README gallery: a few prompts (some worded unlike any training caption) through a model.

    python examples/gallery.py [MODEL] [--out docs/gallery]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import stillmotion
from stillmotion.data.video_io import save_contact_sheet, write_video

PROMPTS = [
    "a red circle moving left",
    "the crimson ball slides leftward",
    "a blue square moving up",
    "please make the emerald triangle go eastward",
    "a yellow circle moving down",
    "watch as the magenta box drifts toward the lower right",
    "an orange triangle moving up-left",
    "a cyan square moving right and a white circle moving down",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=None)
    parser.add_argument("--out", default="docs/gallery")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pipe = stillmotion.load(args.model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    videos = pipe(PROMPTS, seed=args.seed).cpu()  # the model's own sampling settings (20 dpmpp-2m steps, guidance 4)
    for i, video in enumerate(videos):
        write_video(out / f"{i:02d}.gif", video, fps=8, scale=4)
    save_contact_sheet(out / "sheet.png", list(videos), captions=PROMPTS, scale=2)
    (out / "prompts.txt").write_text("\n".join(f"{i:02d}.gif\t{p}" for i, p in enumerate(PROMPTS)) + "\n")
    print(f"wrote {len(PROMPTS)} GIFs and sheet.png to {out}")


if __name__ == "__main__":
    main()
