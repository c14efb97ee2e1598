"""Named entries registered by decorators: the common part of the model and perturbation
registries (`models.registry`, `perturb.registry`)."""

import importlib


class Registry:
    """Entries by name, in registration order; the built-in entries' modules are imported
    (and so register themselves) on the first lookup."""

    def __init__(self, what: str, builtin_modules: tuple[str, ...]):
        self.what = what  # "model", "perturbation": for messages
        self._builtin_modules = builtin_modules
        self._entries: dict = {}

    def add(self, name: str, entry, key) -> None:
        """Register `entry`; registering the same `key` (its function) again is a no-op,
        another one under a taken name an error."""
        if name in self._entries and self._entries[name][0] is not key:
            raise ValueError(f"a {self.what} named {name!r} is already registered")
        self._entries[name] = (key, entry)

    def _loaded(self) -> dict:
        for module in self._builtin_modules:
            importlib.import_module(module)
        return self._entries

    def names(self) -> tuple[str, ...]:
        """Built-in entries first (in the order of their modules), then the others, each in
        registration order, whatever was registered first."""
        entries = self._loaded()
        rank = {module: i for i, module in enumerate(self._builtin_modules)}
        order = sorted(entries, key=lambda name: rank.get(getattr(entries[name][0], "__module__", None), len(rank)))
        return tuple(order)

    def get(self, name: str):
        """The entry registered as `name`, or None."""
        found = self._loaded().get(name)
        return None if found is None else found[1]
