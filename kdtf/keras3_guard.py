"""One line, not a page, when Keras 3 is asked to load a model kdtf saved.

A :class:`~kdtf.Distiller` (and its Mutual/Adversarial forms) is a tf_keras model; its
``.keras`` file names the class ``kdtf>Distiller``. Keras 3's ``keras.models.load_model``
resolves a non-Keras class only through its own registry and otherwise fails with "Could
not locate class 'Distiller'" followed by the whole model config. This module puts, under
those registered names in Keras 3's registry, classes whose ``from_config`` raises one
``ValueError`` naming the loader that works: ``kdtf.saving.load_model(path)``.

Registration costs nothing when Keras 3 is never imported: ``install()`` (called by
``import kdtf``) registers at once if Keras 3's registry is loaded, and otherwise waits
for it with an import hook, so the order of ``import kdtf`` and ``import keras`` does not
matter. A program that never imports kdtf gets Keras 3's own message.
"""

import importlib.abc
import importlib.util
import sys

__all__ = ["install", "GUARDED_CLASSES"]

_REGISTRY = "keras.src.saving.object_registration"
GUARDED_CLASSES = ("Distiller", "MutualDistiller", "AdversarialDistiller")


def _refusal(class_name):
    def from_config(cls, config, custom_objects=None):
        raise ValueError(
            f"This file holds a kdtf.{class_name}, a tf_keras (Keras 2) model that Keras 3's "
            f"load_model cannot read. Load it with kdtf.saving.load_model(path)."
        )

    return type(class_name, (), {"from_config": classmethod(from_config), "__module__": __name__})


def _register(registry):
    for name in GUARDED_CLASSES:
        registry.GLOBAL_CUSTOM_OBJECTS.setdefault(f"kdtf>{name}", _refusal(name))


class _AfterKeras3Registry(importlib.abc.MetaPathFinder):
    """Finds Keras 3's registry module once, with the normal finders, and registers the
    guards right after the module has run."""

    def find_spec(self, fullname, path, target=None):
        if fullname != _REGISTRY:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run_module = spec.loader.exec_module

        def run_then_register(module):
            run_module(module)
            _register(module)

        spec.loader.exec_module = run_then_register
        return spec


def install():
    """Registers the guards in Keras 3's registry now, or as soon as Keras 3 is imported."""
    registry = sys.modules.get(_REGISTRY)
    if registry is not None:
        _register(registry)
    elif not any(isinstance(finder, _AfterKeras3Registry) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterKeras3Registry())
