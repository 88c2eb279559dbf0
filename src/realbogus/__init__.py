"""realbogus: reliability scores for difference-imaging (DIA) detections, after DMTN-337."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("realbogus")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

__all__ = ["__version__"]
