"""A new compression step, defined here alone, runs through ``Recipe`` and verifies its
promise in the exported ``.tflite``: what ``docs/compression.md`` walks through."""

import dataclasses

import numpy as np
import pytest

from kdtf import compress, export
from kdtf.compress.base import Step, StepResult, register_step
from kdtf.compress.verify import layer_weights


class SnapResult(StepResult):
    """Every kernel of the touched layers holds multiples of 2^-bits in the file."""

    def verify(self, flatbuffer_or_path):
        scale = 2.0 ** self.details["bits"]
        measured = {}
        for layer, (values, _) in layer_weights(flatbuffer_or_path, self.layers).items():
            off_grid = float(np.max(np.abs(values * scale - np.round(values * scale))))
            if off_grid > 0:
                raise ValueError(f"Layer {layer!r} has weights off the 2^-{self.details['bits']} grid in the .tflite.")
            measured[layer] = len(np.unique(values))
        return {"snapped": measured}


@dataclasses.dataclass
class Snap(Step):
    """``snap:B``: fine-tune, then round every Dense kernel to a multiple of 2^-B."""

    bits: int = 4
    epochs: int = None
    result_type = SnapResult

    @classmethod
    def parse(cls, text):
        kind, _, value = text.partition(":")
        return cls(int(value) if value else 4) if kind == "snap" else None

    name = property(lambda self: f"snap 2^-{self.bits}")

    def run(self, model, context):
        model = context.fine_tune(model, self.epochs or context.epochs)
        touched = [layer.name for layer in model.layers if layer.__class__.__name__ == "Dense"]
        for name in touched:
            kernel, *rest = model.get_layer(name).get_weights()
            model.get_layer(name).set_weights([np.round(kernel * 2**self.bits) / 2**self.bits, *rest])
        return model, {"layers": touched, "bits": self.bits}


class CountingFineTune:
    """A :class:`kdtf.compress.FineTune` that trains nothing and counts its calls."""

    steps_per_epoch = 2
    description = "cross-entropy"
    train_data = None

    def __init__(self):
        self.calls = []

    def __call__(self, model, epochs, *, teacher=None, spec=None, callbacks=None):
        self.calls.append({"epochs": epochs, "callbacks": callbacks})
        return model


@pytest.fixture
def snap_registered():
    register_step("snap", form="snap:B")(Snap)
    yield
    compress.STEPS.unregister("snap")


def test_a_step_defined_in_a_test_file_runs_through_the_recipe_and_verifies_in_the_tflite(student, snap_registered):
    recipe = compress.Recipe.parse("snap:3", compress.StepDefaults(epochs=1, qat_epochs=1))
    tuner = CountingFineTune()
    model, results = recipe.run(student, tuner)
    assert tuner.calls == [{"epochs": 1, "callbacks": None}]
    assert isinstance(results[0], SnapResult) and results[0].layers == ["fc", "logits"]
    verified = results.verify(export.to_tflite(model))
    assert set(verified["snapped"]) == {"fc", "logits"} and all(n > 1 for n in verified["snapped"].values())
    assert results.describe() == "snap 2^-3 (1 epochs): 2 layer(s)"
    restored = recipe.restore(results.records())  # saved as JSON-able records, read back by the step's result type
    assert restored == results and isinstance(restored[0], SnapResult)
    with pytest.raises(ValueError, match="off the 2\\^-3 grid"):
        restored.verify(export.to_tflite(student.__class__.from_config(student.get_config())))


def test_a_step_object_needs_no_registry_and_keeps_the_order_rules(student):
    assert "snap" not in compress.STEPS
    assert compress.Recipe([Snap(bits=2), compress.QAT()]).steps[0].bits == 2
    with pytest.raises(ValueError, match="'qat' must be the last"):
        compress.Recipe([compress.QAT(), Snap()])
    with pytest.raises(ValueError, match="Unknown compression step 'snap:3'"):
        compress.Recipe.parse("snap:3")


def test_checkpoint_callbacks_keep_the_fine_tuners_description_in_the_filter_log(student):
    logged, tuner = [], CountingFineTune()

    class Checkpoint:
        def load_step(self, index):
            return None

        def save_step(self, index, model, record):
            raise AssertionError("one step: nothing saved between steps")

        def callbacks(self, index):
            return ["backup"]

    model, results = compress.Recipe([compress.FilterPrune(0.5, rounds=1, epochs=1)]).run(
        student, tuner, log=logged.append, checkpoint=Checkpoint())
    assert logged[-1].endswith("fine-tuning 1 epoch(s) by cross-entropy")
    assert tuner.calls == [{"epochs": 1, "callbacks": ["backup"]}]
    assert results[0].details["filters"]["conv"] == {"kept": 2, "total": 4}
