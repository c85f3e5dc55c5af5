"""The choices of filter pruning (criteria, scopes, the fraction check), in pure Python:
the ``filters:F`` step parses its string form with them before TensorFlow loads."""

import numbers

__all__ = ["CRITERIA", "SCOPES", "check_fraction"]

CRITERIA = ("l1", "l2", "bn", "taylor")  # see kdtf.compress.importance
SCOPES = ("uniform", "global")  # see kdtf.compress.filters


def check_fraction(fraction, argument="fraction"):
    """Returns ``fraction`` as a float when it is a number in (0, 1); raises otherwise."""
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 < fraction < 1:
        raise ValueError(
            f"Expected the fraction of filters to remove in (0, 1), e.g. 0.5. Received: {argument}={fraction!r}"
        )
    return float(fraction)
