"""OpenSight: a self-hosted image recognition and visual search server."""

__version__ = "0.1.0"
