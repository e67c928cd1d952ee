"""The HTTP layer: app factory, auth, errors; routers translate HTTP and nothing else."""

from .app import create_app

__all__ = ["create_app"]
