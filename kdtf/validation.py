"""Argument checks shared by every module, in the style of Keras's
``keras/src/utils/argument_validation.py``: each returns the value (converted) or raises
``ValueError("Expected ... Received: name=value")``.

Pure Python (no TensorFlow), so configurations can be checked before TensorFlow loads.
A value is checked once, where it enters kdtf (a config, a spec, a public constructor);
the code behind that door trusts it.
"""

import math
import numbers

__all__ = ["integer", "number", "one_of", "weights", "check", "is_number"]


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_number(value):
    """A finite real number, not a bool."""
    return _is_number(value) and math.isfinite(value)


def check(ok, expected, name, value):
    """Raises ``ValueError("Expected <expected>. Received: <name> <value>")`` unless
    ``ok``; ``name`` is the flag as the user typed it (``--weight-decay``)."""
    if not ok:
        raise ValueError(f"Expected {expected}. Received: {name} {value!r}")


def _describe(low, high, low_open, high_open):
    if high is None:
        return f"{'>' if low_open else '>='} {low}"
    if low is None:
        return f"{'<' if high_open else '<='} {high}"
    return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"


def _in_range(value, low, high, low_open, high_open):
    if low is not None and (value <= low if low_open else value < low):
        return False
    return high is None or (value < high if high_open else value <= high)


def integer(name, value, low=None, high=None, *, what=None):
    """An integer (not a bool) in ``[low, high]``; returns ``int(value)``.

    Args:
        name: the argument's name as the user wrote it (``"epochs"``, ``"--epochs"``).
        value: the value received.
        low, high: inclusive bounds (``None``: unbounded).
        what: how to describe the expectation instead of the default wording.
    """
    if not _is_int(value) or not _in_range(value, low, high, False, False):
        bound = "" if low is None and high is None else " " + _describe(low, high, False, False)
        raise ValueError(f"Expected {name} to be {what or 'an integer' + bound}. Received: {name}={value!r}")
    return int(value)


def number(name, value, low=None, high=None, *, low_open=False, high_open=False, what=None):
    """A real number (not a bool) within the bounds; returns ``float(value)``.

    ``low_open``/``high_open`` make a bound exclusive (``temperature > 0``:
    ``number("temperature", t, 0, low_open=True)``).
    """
    if not _is_number(value) or not _in_range(value, low, high, low_open, high_open):
        raise ValueError(
            f"Expected {name} {what or _describe(low, high, low_open, high_open)}. Received: {name}={value!r}"
        )
    return float(value)


def one_of(name, value, choices):
    """``value`` if it is one of ``choices``; the message lists them."""
    if value not in choices:
        raise ValueError(f"Unknown {name} {value!r}. Expected one of: {', '.join(map(str, choices))}")
    return value


def weights(name, values, count):
    """``count`` non-negative numbers with a positive sum, normalised to sum to 1."""
    values = list(values)
    if len(values) != count or not all(_is_number(w) and w >= 0 for w in values) or sum(values) <= 0:
        raise ValueError(f"Expected {count} non-negative {name} with a positive sum. Received: {name}={values!r}")
    total = float(sum(values))
    return [w / total for w in values]
