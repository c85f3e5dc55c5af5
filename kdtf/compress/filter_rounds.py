"""Gradual filter pruning as a compression-recipe step: ``filters:F``.

The fraction ``F`` of the filters is removed in ``rounds`` equal geometric steps (each
round removes ``1 - (1 - F)^(1/rounds)`` of the filters left), each followed by
fine-tuning, so the network recovers before losing more (the step's epochs are split
across the rounds, at least one each). Fine-tuning is whatever the recipe's context
does: distillation from the run's teacher by default, cross-entropy in the comparison
mode; with ``self_distill`` the teacher is a frozen copy of the model as it was before
the step (the unpruned student teaching its pruned self, as in Minitron).

Distillation fine-tuning uses the Minitron loss by default (``recovery="logits"``): KL
divergence between teacher and student logits at T = 1, no label term (Sreenivas et
al., "LLM Pruning and Distillation in Practice: The Minitron Approach", 2024).
``recovery="terms"`` (``:terms``) keeps the run's own terms, temperature and alpha.
``benchmarks/structured_pruning.py`` measured the two on the default regime: the run's
Hinton KD (T = 4, alpha = 0.5) lost to cross-entropy by 7 points at 75 % of the filters
removed, the logit loss won by 4 (README, "Structured pruning").

String form: ``filters:F[:CRITERION][:uniform|global][:ROUNDS][:self][:terms]``, e.g.
``filters:0.5``, ``filters:0.75:taylor:global:4:self``, ``filters:0.5:terms``.
"""

import dataclasses
import math
import numbers

from kdtf.compress.base import Step, StepResult, register_step
from kdtf.compress.filter_choices import CRITERIA, SCOPES, check_fraction
from kdtf.spec import DistillSpec

__all__ = ["FilterPrune", "FilterResult", "round_epochs", "MIN_KEEP", "RECOVERIES", "LOGIT_RECOVERY"]

MIN_KEEP = 0.1  # share of each layer's original filters always kept
RECOVERIES = ("logits", "terms")
LOGIT_RECOVERY = DistillSpec(temperature=1.0, alpha=0.0, terms="kd")  # Minitron: logit KL at T = 1, no labels
_FORM = "filters:F[:CRITERION][:uniform|global][:ROUNDS][:self][:terms], F in (0, 1), e.g. filters:0.5"


def round_epochs(epochs, rounds):
    """``epochs`` split over ``rounds`` as evenly as possible, at least 1 each."""
    return [max(1, epochs // rounds + (1 if i < epochs % rounds else 0)) for i in range(rounds)]


def _positive_int(value, argument, allow_none=False):
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"Expected {argument} as an int >= 1. Received: {argument}={value!r}")


class FilterResult(StepResult):
    """Filters removed: each touched layer's op in the ``.tflite`` has the output
    channels the pruned model kept (``details["filters"][layer]["kept"]``)."""

    @property
    def kept(self):
        return {name: counts["kept"] for name, counts in self.details.get("filters", {}).items()}

    def verify(self, flatbuffer_or_path):
        from kdtf.compress.verify import verify_filters

        return {"filters": verify_filters(flatbuffer_or_path, self.kept)} if self.kept else {}

    def summary(self):
        return f"{self.details['removed']:.0%} of the filters of {len(self.layers)} layer(s) removed"


@register_step("filters", form="filters:F")
@dataclasses.dataclass
class FilterPrune(Step):
    """Remove ``fraction`` of the filters in ``rounds``, fine-tuning after each.

    Args:
        fraction: share of the filters removed by the end, in (0, 1).
        criterion: ``"l1"``, ``"l2"``, ``"bn"`` or ``"taylor"`` (uses the context's
            training data); see :mod:`kdtf.compress.importance`.
        scope: ``"uniform"`` (same share of every group) or ``"global"``.
        rounds: pruning rounds.
        self_distill: fine-tune from a frozen copy of the model before the step instead
            of the run's teacher.
        epochs: fine-tuning epochs of the whole step (default: the context's).
        recovery: ``"logits"`` (logit KL at T = 1 without labels, :data:`LOGIT_RECOVERY`;
            the context's ``fine_tune`` receives it as ``spec=``) or ``"terms"`` (the
            run's own distillation spec). Cross-entropy fine-tuning (no teacher) is the
            same either way.
    """

    fraction: float
    criterion: str = "l1"
    scope: str = "uniform"
    rounds: int = 3
    self_distill: bool = False
    epochs: int = None
    recovery: str = "logits"

    must_precede = ("prune", "cluster")
    order_rule = ("'filters' must come before prune, 2:4 and cluster steps (it rebuilds the model; "
                  "their zeros and clusters would not survive its fine-tuning).")
    result_type = FilterResult

    def __post_init__(self):
        self.fraction = check_fraction(self.fraction)
        if self.criterion not in CRITERIA:
            raise ValueError(f"Expected criterion in {CRITERIA}. Received: criterion={self.criterion!r}")
        if self.scope not in SCOPES:
            raise ValueError(f"Expected scope in {SCOPES}. Received: scope={self.scope!r}")
        _positive_int(self.rounds, "rounds")
        _positive_int(self.epochs, "epochs", allow_none=True)
        if self.recovery not in RECOVERIES:
            raise ValueError(f"Expected recovery in {RECOVERIES}. Received: recovery={self.recovery!r}")

    @property
    def name(self):
        return f"filters {self.fraction:.0%}"

    @property
    def short(self):
        return "filters"

    @classmethod
    def parse(cls, text):
        """``"filters:0.5"`` -> FilterPrune(0.5); None when ``text`` is another step."""
        kind, _, rest = text.strip().partition(":")
        if kind.strip() != "filters":
            return None
        value, *options = rest.split(":")
        try:
            fraction = float(value)
        except ValueError:
            raise ValueError(f"Expected {_FORM}. Received: {text.strip()!r}") from None
        settings = {}
        for option in (o.strip() for o in options):
            if option in CRITERIA:
                settings["criterion"] = option
            elif option in SCOPES:
                settings["scope"] = option
            elif option == "self":
                settings["self_distill"] = True
            elif option in RECOVERIES:
                settings["recovery"] = option
            elif option.isdigit() and int(option) >= 1:
                settings["rounds"] = int(option)
            else:
                raise ValueError(f"Unknown option {option!r} in {text.strip()!r}. Expected {_FORM}; criteria {CRITERIA}.")
        return cls(fraction, **settings)

    def run(self, model, context):
        """Prunes and fine-tunes ``model`` round by round; returns ``(model, details)``."""
        from kdtf.compress.filters import prune_filters
        from kdtf.compress.layers import clone_with_weights

        before = _count_filters(model)
        minimum = {name: max(1, math.ceil(MIN_KEEP * n)) for name, n in before.items()}
        share = 1 - (1 - self.fraction) ** (1 / self.rounds)
        schedule = round_epochs(self.epochs or context.epochs, self.rounds)
        overrides = {"spec": LOGIT_RECOVERY} if self.recovery == "logits" else {}  # of the run's fine-tuning
        if self.self_distill:
            overrides["teacher"] = clone_with_weights(model)
            overrides["teacher"].trainable = False
        data = context.train_data if self.criterion == "taylor" else None
        params_before, reports = int(model.count_params()), []
        for index, epochs in enumerate(schedule):
            model, report = prune_filters(
                model, share, criterion=self.criterion, scope=self.scope, min_keep=minimum, data=data,
            )
            reports.append(report)
            kept = sum(v["kept"] for v in report["layers"].values())
            total = sum(v["total"] for v in report["layers"].values())
            context.log(
                f"filters round {index + 1}/{self.rounds}: {kept}/{total} filters kept in {len(report['layers'])} "
                f"layers, {report['params'][0]:,} -> {report['params'][1]:,} parameters"
                + (f" (not pruned: {', '.join(report['unprunable'])})" if report["unprunable"] else "")
                + f"; fine-tuning {epochs} epoch(s)" + self._recovery_text(context)
            )
            tuned = _fine_tune(context, model, epochs, overrides)
            model = model if tuned is None else tuned
        return model, self._record(model, before, reports, schedule, params_before)

    def _recovery_text(self, context):
        """How the rounds are fine-tuned, for the log line."""
        if getattr(context.fine_tune, "description", None) == "cross-entropy" and not self.self_distill:
            return " by cross-entropy"
        loss = " (logit KL at T = 1)" if self.recovery == "logits" else " (the run's distillation terms)"
        return (" from the unpruned student" if self.self_distill else "") + loss

    def _record(self, model, before, reports, schedule, params_before):
        after = _count_filters(model)
        order = list(before)
        touched = sorted({name for report in reports for name in report["layers"]}, key=order.index)
        return dict(
            layers=touched, fraction=self.fraction, criterion=self.criterion, scope=self.scope,
            rounds=self.rounds, self_distill=self.self_distill, recovery=self.recovery, epochs_per_round=schedule,
            filters={name: {"kept": after[name], "total": before[name]} for name in touched},
            removed=1 - sum(after[n] for n in touched) / max(1, sum(before[n] for n in touched)),
            unprunable=reports[0]["unprunable"], params_before=params_before, params=int(model.count_params()),
        )


def _count_filters(model):
    from kdtf.compress.filters import count_filters

    return count_filters(model)


def _fine_tune(context, model, epochs, kwargs):
    try:
        return context.fine_tune(model, epochs, **kwargs)
    except TypeError as error:
        if "spec" not in kwargs or "unexpected keyword argument 'spec'" not in str(error):
            raise
        raise ValueError(
            "The fine_tune callable does not accept spec=, which filter pruning's default recovery passes "
            "(logit KL at T = 1). Use kdtf.FineTuner, accept spec=, or choose FilterPrune(..., recovery='terms') "
            "('filters:F:terms')."
        ) from None
