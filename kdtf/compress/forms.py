"""The string forms of the compression steps (``--compress prune:0.75,qat``), read
through the one registry :data:`kdtf.compress.base.STEPS` with the built-in steps
loaded. Pure Python: the command line lists and parses the steps before TensorFlow
loads."""

from kdtf.compress import filter_rounds as _filter_rounds  # noqa: F401  (the built-in steps register themselves)
from kdtf.compress import steps as _steps  # noqa: F401
from kdtf.compress.base import FORMS, STEPS, check_order

__all__ = ["step_forms", "parse_step", "parse_steps"]


def step_forms():
    """The string forms of the registered steps, as ``--help`` lists them."""
    return [FORMS[name] for name in STEPS.names()]


def _unknown(text):
    return ValueError(f"Unknown compression step {text!r}. Steps: {', '.join(step_forms())}")


def parse_step(text):
    """The step object for one step string (``"prune:0.5"``), or a one-line ValueError."""
    text = text.strip()
    whole = [name for name in STEPS.names() if FORMS[name] == text]
    name = whole[0] if whole else text.partition(":")[0].strip()
    if name not in STEPS:
        raise _unknown(text)
    step = STEPS.get(name).parse(text)
    if step is None:
        raise _unknown(text)
    return step


def parse_steps(text):
    """``"prune:0.75,qat"`` -> ``[Prune(0.75), QAT()]``, values and order checked."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"Expected compression steps like 'prune:0.75,qat'. Received: {text!r}")
    steps = [parse_step(part) for part in text.split(",")]
    check_order(steps)
    return steps
