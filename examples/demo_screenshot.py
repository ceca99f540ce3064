"""Take the README's screenshot of the web demo: the shipped model serves the page, headless Chromium types a
prompt, clicks Generate and photographs the page with the clip (paused mid-clip, so the shot is repeatable).

    python examples/demo_screenshot.py [--prompt TEXT] [--out docs/demo.png]

Needs `pip install -e ".[test]"` and Debian's chromium + chromium-driver.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from PIL import Image

import stillmotion
from stillmotion.demo import browser
from stillmotion.demo.app import build_app, close, launch

PAUSE_AT = "const v = document.querySelector('#t2v-video video'); v.pause(); v.currentTime = arguments[0];"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt", default="a red circle moving left")
    parser.add_argument("--at", type=float, default=1.0, help="the moment of the clip shown, in seconds")
    parser.add_argument("--port", type=int, default=7861)
    parser.add_argument("--out", default="docs/demo.png")
    args = parser.parse_args()
    if browser.chromium_problem():
        raise SystemExit(f"cannot take the screenshot: {browser.chromium_problem()}")
    app = build_app(stillmotion.load())
    try:
        url = launch(app, port=args.port)
        with browser.chromium(width=1100, height=820) as page:
            browser.open_page(page, url)
            browser.generate(page, args.prompt)
            browser.video_duration(page)
            page.execute_script(PAUSE_AT, args.at)
            page.set_window_size(1100, page.execute_script("return document.body.scrollHeight") + 140)  # whole page
            page.execute_script("window.scrollTo(0, 0); return new Promise(r => setTimeout(r, 500));")  # let it settle
            png = page.get_screenshot_as_png()
    finally:
        close(app)
    shot = Image.open(io.BytesIO(png)).convert("RGB").quantize(64)  # a UI in few colours: a small PNG
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    shot.save(args.out, optimize=True)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
