"""stillmotion: video diffusion you can read, train and run on a laptop.

    import stillmotion
    pipe = stillmotion.load()          # the shipped model (or stillmotion.load("runs/NAME"))
    video = pipe("a red circle moving left", seed=0)   # (1, 3, F, H, W) in [-1, 1]
"""

from stillmotion.version import __version__

__all__ = ["Cond", "load", "__version__"]


def load(path=None, *, device="cpu"):
    """Load a text-to-video pipeline: the shipped model when `path` is None, else a checkpoint or run folder."""
    from stillmotion.pipelines.text_to_video import load as _load

    return _load(path, device=device)


def __getattr__(name):  # keep `import stillmotion` (and `stillmotion --version`) free of the torch import
    if name == "Cond":
        from stillmotion.cond import Cond

        return Cond
    raise AttributeError(f"module 'stillmotion' has no attribute {name!r}")
