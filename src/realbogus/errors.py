"""Exception and warning classes of realbogus.

Each error subclasses both `RealBogusError` and the builtin it refines, so callers can catch
either. Messages name the file (where there is one) and the problem.
"""

__all__ = [
    "RealBogusError",
    "InputError",
    "StampShapeError",
    "PackageError",
    "ConfigError",
    "RealBogusWarning",
]


class RealBogusError(Exception):
    """Base class of every error raised by realbogus."""


class InputError(RealBogusError, ValueError):
    """An input file or array is unusable: corrupt, truncated, wrong columns or shapes."""


class StampShapeError(InputError):
    """Stamps do not follow the (N, 3, S, S) contract or do not match a model's stamp size."""


class PackageError(RealBogusError, ValueError):
    """A model package is missing, corrupt, or its card and weights disagree."""


class ConfigError(RealBogusError, ValueError):
    """A configuration value is out of range or unknown."""


class RealBogusWarning(UserWarning):
    """A result is defined but degenerate (an empty catalog, a one-class slice, ...)."""
