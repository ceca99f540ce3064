"""The package's version, in a module of its own so that any layer can record it (checkpoints, run logs)
without importing the package's front door (`stillmotion.load` reaches up to the pipelines)."""

__version__ = "0.1.0"
