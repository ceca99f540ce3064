"""stillmotion: video diffusion you can read, train and run on a laptop."""

__version__ = "0.1.0"

from stillmotion.cond import Cond  # noqa: E402

__all__ = ["Cond", "__version__"]
