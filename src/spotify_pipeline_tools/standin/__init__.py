"""Local stand-in for the Spotify Web API, serving a deterministic synthetic demo catalogue."""

from .catalogue import Catalogue, build_demo_catalogue
from .server import create_app

__all__ = ["Catalogue", "build_demo_catalogue", "create_app"]
