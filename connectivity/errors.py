"""Exception classes shared by every clipnav package."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ClipnavError(Exception):
    """Base class of the errors that clipnav raises for bad input or missing data."""


class DataNotFoundError(ClipnavError, FileNotFoundError):
    """A data file or folder that clipnav needs does not exist."""


class ConnectivityFormatError(ClipnavError, ValueError):
    """A connectivity file does not follow the Matterport3D Simulator's format."""


class UnknownScanError(ClipnavError, LookupError):
    """A scan id is not in the connectivity folder."""


class UnknownViewpointError(ClipnavError, LookupError):
    """A viewpoint id is not in its scan's navigation graph."""


def close_matches(name: str, candidates: Iterable[str], limit: int = 3) -> str:
    """Return a ' Did you mean ...?' suffix naming close matches of `name`, or ''."""
    matches = difflib.get_close_matches(name, list(candidates), n=limit, cutoff=0.6)
    if not matches:
        return ""
    return " Did you mean " + " or ".join(repr(m) for m in matches) + "?"
