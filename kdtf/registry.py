"""A name -> class registry filled by a decorator where the class is defined (as
torchdistill's ``register_*``), pure Python so the command line can list and check names
before TensorFlow loads.

    STEPS = Registry("compression step")

    @STEPS.register("prune")
    class Prune: ...

    STEPS.get("prune")  # -> Prune; an unknown name: one-line ValueError listing the known ones
"""

__all__ = ["Registry"]


class Registry:
    """Named classes (or functions) of one concept, in registration order.

    Args:
        what: the concept's name in messages (``"compression step"``).
    """

    def __init__(self, what):
        self.what = what
        self._entries = {}

    def register(self, name, **info):
        """Decorator: registers the decorated object under ``name``; ``info`` is kept
        beside it (``info(name)``). A name registered twice is refused."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"Expected a non-empty {self.what} name. Received: name={name!r}")

        def decorate(obj):
            if name in self._entries and self._entries[name][0] is not obj:
                raise ValueError(f"The {self.what} {name!r} is already registered ({self._entries[name][0].__name__}).")
            self._entries[name] = (obj, info)
            return obj

        return decorate

    def unregister(self, name):
        """Removes ``name`` (a plug-in unloaded, a test cleaning up); unknown names are refused."""
        self.get(name)
        del self._entries[name]

    def get(self, name):
        """The object registered as ``name``; ValueError naming the known ones otherwise."""
        if name not in self._entries:
            raise ValueError(f"Unknown {self.what} {name!r}. Known: {', '.join(self._entries)}")
        return self._entries[name][0]

    def info(self, name):
        """What was registered beside ``name`` (the keywords of :meth:`register`)."""
        self.get(name)
        return dict(self._entries[name][1])

    def names(self):
        return list(self._entries)

    def __contains__(self, name):
        return name in self._entries

    def __iter__(self):
        return iter(self._entries)

    def __len__(self):
        return len(self._entries)

    def __repr__(self):
        return f"Registry({self.what!r}: {', '.join(self._entries)})"
