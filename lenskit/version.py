"""The version of lenskit, in a module of its own so that any layer can record it (pruned
checkpoints, run manifests) without importing the top-level package."""

__version__ = "0.1.0"
