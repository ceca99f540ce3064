"""`stillmotion demo`: a local web page to try a model in a browser (Gradio, an optional extra)."""

from __future__ import annotations

import argparse

from stillmotion.cli.common import HelpFormatter, positive_int

INSTALL = "pip install 'stillmotion[demo]' (in a checkout: pip install -e '.[demo]')"


def _run_demo(args: argparse.Namespace) -> int:
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise ValueError(f"the web demo needs Gradio, which is not installed; install it with {INSTALL}") from None
    import torch

    from stillmotion.demo.app import build_app, close, launch
    from stillmotion.demo.jobs import Limits
    from stillmotion.pipelines.text_to_video import load

    if not 1 <= args.port <= 65535:
        raise ValueError(f"--port must be from 1 to 65535 (got {args.port})")
    if args.threads:
        torch.set_num_threads(args.threads)
    limits = Limits(frames=args.max_frames, steps=args.max_steps)
    app = build_app(load(args.model), model=args.model, limits=limits)
    try:
        url = launch(app, host=args.host, port=args.port, limits=limits)
        print(f"stillmotion demo: open {url} in a browser (Ctrl-C stops it)", flush=True)
        app.block_thread()  # returns on Ctrl-C
    finally:
        close(app)
    return 0


def _add_demo(subparsers) -> None:
    p = subparsers.add_parser("demo", help="a web page to try a model in the browser (needs the [demo] extra)",
                              formatter_class=HelpFormatter,
                              description=f"Serve a local web demo (Gradio): text to video, image to video and "
                                          f"in-betweens where the model was trained for them. Install: {INSTALL}")
    p.add_argument("--model", default=None, help="checkpoint or run folder (default: the shipped model)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (0.0.0.0 lets other machines in: only on a network you trust)")
    p.add_argument("--port", type=int, default=7860, help="port to listen on")
    p.add_argument("--max-frames", type=positive_int, default=32, help="the most frames one clip may ask for")
    p.add_argument("--max-steps", type=positive_int, default=50, help="the most sampler steps one clip may ask for")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch")
    p.set_defaults(func=_run_demo)


def add(subparsers) -> None:
    """Declare this module's commands."""
    _add_demo(subparsers)
