"""The embedded default data source: a local flower image search site on 127.0.0.1."""

from crawler.flowersite.render import render_flower
from crawler.flowersite.site import FlowerSite

__all__ = ["FlowerSite", "render_flower"]
