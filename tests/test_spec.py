"""The distillation spec and the argument checks: pure Python parts (the stage runner: test_stages.py)."""

import pytest

from kdtf import validation
from kdtf.spec import DistillSpec, TermSpec, parse_terms


def test_spec_validates_once_and_normalises():
    spec = DistillSpec(temperature=2, alpha=0, terms="kd:2,fitnets@a/b#1", teacher_weights=[1, 3])
    assert spec.temperature == 2.0 and isinstance(spec.temperature, float)
    assert spec.terms == (TermSpec("kd", 2.0), TermSpec("fitnets", 1.0, "a", "b", 1))
    assert spec.for_teachers(2) == [0.25, 0.75]
    assert DistillSpec(**spec.to_config()) == spec
    assert spec.replace(alpha=0.5).alpha == 0.5 and spec.alpha == 0.0


@pytest.mark.parametrize("fields, message", [
    ({"temperature": 0}, "Expected temperature > 0. Received: temperature=0"),
    ({"temperature": True}, "Received: temperature=True"),
    ({"alpha": 1.5}, r"Expected alpha in \[0, 1\]. Received: alpha=1.5"),
    ({"terms": ""}, "Received an empty string"),
    ({"teacher_weights": [-1, 2]}, "non-negative teacher_weights"),
])
def test_spec_refuses_bad_fields_by_name(fields, message):
    with pytest.raises(ValueError, match=message):
        DistillSpec(**fields)


def test_spec_refuses_a_teacher_count_its_weights_do_not_match():
    with pytest.raises(ValueError, match="Expected 3 non-negative teacher_weights"):
        DistillSpec(teacher_weights=[1, 1]).for_teachers(3)


def test_term_strings_parse_every_part():
    assert parse_terms("at:0.5@s/t#2,sp") == (TermSpec("at", 0.5, "s", "t", 2), TermSpec("sp"))
    assert parse_terms(None) == (TermSpec("kd"),)


@pytest.mark.parametrize("call, message", [
    (lambda: validation.integer("epochs", 1.5, 1), "Expected epochs to be an integer >= 1. Received: epochs=1.5"),
    (lambda: validation.integer("epochs", True, 1), "Received: epochs=True"),
    (lambda: validation.number("lr", 0, 0, low_open=True), "Expected lr > 0. Received: lr=0"),
    (lambda: validation.number("s", 1, 0, 1, high_open=True), r"Expected s in \[0, 1\). Received: s=1"),
    (lambda: validation.one_of("mode", "x", ("a", "b")), "Unknown mode 'x'. Expected one of: a, b"),
])
def test_argument_checks_name_the_argument_and_value(call, message):
    with pytest.raises(ValueError, match=message):
        call()

