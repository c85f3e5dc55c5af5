"""Registries filled where things are defined (after torchdistill's ``register_*``).

A :class:`Registry` maps names to classes. A class enters it through the registry's
decorator, written on the class itself, so defining a thing and registering it are one
edit in one file::

    TERMS = Registry("distillation term", package="kdtf.losses")

    @TERMS.register("kd")
    class KDTerm(ResponseTerm): ...

``package`` names the package whose modules hold the registered classes: the registry
imports every module of it on first lookup, so a new module dropped there is found
without an import list to edit. :func:`scan_names` reads the same names from the
package's source without importing it (no TensorFlow), for ``--help`` and flag checks;
``tests/test_catalog.py`` checks that the scan and the imported registry agree.

Pure Python: importing this module loads nothing else.
"""

import ast
import importlib
import os
import pkgutil

__all__ = ["Registry", "scan_names"]


class Registry:
    """Names -> classes, filled by :meth:`register`.

    Args:
        kind: what the names are, for messages (``"distillation term"``).
        package: the package whose modules define the registered classes (imported
            whole on first lookup), or ``None``.
    """

    def __init__(self, kind, package=None):
        self.kind, self.package = kind, package
        self._classes = {}
        self._loaded = package is None

    def register(self, name):
        """A class decorator that registers the class under ``name`` (and returns it)."""
        if not isinstance(name, str) or not name or any(c in name for c in ":@#,/ "):
            raise ValueError(f"Expected a {self.kind} name without ':@#,/' or spaces. Received: {name!r}")

        def decorator(cls):
            known = self._classes.get(name)
            if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
                raise ValueError(
                    f"The {self.kind} name {name!r} is taken by {known.__module__}.{known.__qualname__}; "
                    f"register {cls.__qualname__} under another name."
                )
            self._classes[name] = cls
            return cls

        return decorator

    def _load(self):
        if self._loaded:
            return
        self._loaded = True  # before the imports: their decorators call register()
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{self.package}.{module.name}")

    def names(self):
        """The registered names, sorted."""
        self._load()
        return sorted(self._classes)

    def get(self, name):
        """The class registered as ``name``; ValueError listing the known names if none."""
        self._load()
        if name not in self._classes:
            raise ValueError(f"Unknown {self.kind} {name!r}. Known: {', '.join(self.names())}")
        return self._classes[name]

    def unregister(self, name):
        """Removes ``name`` (a plug-in unloaded, a test cleaning up); unknown names are refused."""
        self.get(name)
        del self._classes[name]

    def __contains__(self, name):
        self._load()
        return name in self._classes


def _decorator_names(tree, decorator):
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        for call in node.decorator_list:
            func = getattr(call, "func", None)
            called = getattr(func, "attr", None) or getattr(func, "id", None)
            if called == decorator and call.args and isinstance(call.args[0], ast.Constant):
                yield call.args[0].value


def scan_names(package_dir, decorator):
    """The names given to ``@decorator("name")`` (or ``@x.decorator("name")``) on the
    classes of the modules in ``package_dir``, read from the source without importing.

    Args:
        package_dir: a package folder.
        decorator: the decorator's name, e.g. ``"register_term"``.
    """
    names = set()
    for filename in sorted(os.listdir(package_dir)):
        if filename.endswith(".py"):
            with open(os.path.join(package_dir, filename), encoding="utf-8") as f:
                names.update(_decorator_names(ast.parse(f.read(), filename), decorator))
    return tuple(sorted(names))
