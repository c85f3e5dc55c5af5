"""Keras 3's load_model of a saved Distiller: one ValueError naming kdtf.saving.load_model,
whichever of kdtf and Keras 3 was imported first."""

import importlib
import sys

import pytest

from kdtf import Distiller, keras3_guard, saving
from tests.helpers import tiny_cnn


def test_keras3_load_model_of_a_distiller_names_the_kdtf_loader(tmp_path):
    keras3 = importlib.import_module("keras")  # Keras 3, beside tf_keras
    path = str(tmp_path / "distiller.keras")
    distiller = Distiller(tiny_cnn(4, 8, "student"), tiny_cnn(8, 16, "teacher", seed=1))
    distiller.compile(optimizer="adam")
    distiller.save(path)
    with pytest.raises(ValueError, match=r"kdtf\.Distiller.*kdtf\.saving\.load_model\(path\)"):
        keras3.models.load_model(path)
    assert isinstance(saving.load_model(path), Distiller)  # the loader the message names works


def test_guard_registers_when_the_registry_module_is_imported_after_kdtf(tmp_path, monkeypatch):
    # A stand-in for Keras 3's registry module, imported only after install().
    package = tmp_path / "fake_keras3"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "registry.py").write_text("GLOBAL_CUSTOM_OBJECTS = {}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(keras3_guard, "_REGISTRY", "fake_keras3.registry")
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    keras3_guard.install()
    keras3_guard.install()  # idempotent: one hook
    assert sum(isinstance(f, keras3_guard._AfterKeras3Registry) for f in sys.meta_path) == 1
    registry = importlib.import_module("fake_keras3.registry")
    assert set(registry.GLOBAL_CUSTOM_OBJECTS) == {f"kdtf>{name}" for name in keras3_guard.GUARDED_CLASSES}
    assert not any(isinstance(f, keras3_guard._AfterKeras3Registry) for f in sys.meta_path)
    with pytest.raises(ValueError, match="kdtf.saving.load_model"):
        registry.GLOBAL_CUSTOM_OBJECTS["kdtf>MutualDistiller"].from_config({})
