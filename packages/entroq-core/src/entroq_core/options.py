"""Checks for the options backends take in their URLs and keyword arguments."""

from __future__ import annotations

import math
from typing import Any

from .errors import InvalidArgument


def positive(name: str, value: Any, kind: type[int] | type[float] = float) -> Any:
    """``value`` (a number or its text) as a positive, finite ``kind``, or an
    InvalidArgument naming ``name``: nan, inf, 0 and booleans are no timeout or size."""
    if isinstance(value, bool):
        raise InvalidArgument(name, value, "must be a positive number")
    try:
        number = kind(value)
    except (TypeError, ValueError, OverflowError):
        raise InvalidArgument(name, value, "must be a positive number") from None
    if not (number > 0 and math.isfinite(number)):
        raise InvalidArgument(name, value, "must be a positive number")
    return number
