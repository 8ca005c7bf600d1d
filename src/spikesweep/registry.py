"""One `Registry` class for every kind of object chosen by name: models, datasets, neurons, surrogates, methods.

A registry is filled by the modules that define the objects (`@MODELS.register("msresnet18")`), refuses a
name registered twice, and answers an unknown name with one line listing the valid ones.

Finding the module that registers a name without importing every module (startup stays fast) uses an
index, `registry_index.json` beside this file: kind -> name -> module. It is generated, not hand-written:
`python -m spikesweep.registry` imports every module of every registry and writes what they registered,
and tests/foundation/test_registry.py fails, naming that command, when the file is not complete and
current. Why an index and not the alternatives:
- searching source text for `register_model("name")` (what came before) misses names made by f-strings
  (`sdtv3_{size}`) and then imports everything;
- a `module:` key in every config would make each YAML file name Python modules, and a model built from
  Python (tests, notebooks) would still need another way in;
- `_target_` instantiation would touch every config and every caller at once.
A new model (or dataset, neuron, ...) is still one .py file plus one .yaml file: until the index is
regenerated, a name it lacks is found by importing every module of that registry's package (slower, not
wrong), and the test says to regenerate.

This module imports nothing of spikesweep, so the leaf packages (`spiking`, `data`) may use it.
"""

import importlib
import json
import pkgutil
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

INDEX_FILE = Path(__file__).with_name("registry_index.json")

#: The modules that create the registries (one per kind); `python -m spikesweep.registry` imports them.
HOMES = (
    "spikesweep.models.registry",
    "spikesweep.data.registry",
    "spikesweep.spiking.neurons",
    "spikesweep.spiking.surrogate",
    "spikesweep.methods",
    "spikesweep.tasks",
)
REGENERATE = "python -m spikesweep.registry"

_REGISTRIES: dict[str, "Registry"] = {}


class RegistryError(ValueError):
    """A name registered twice, or a name nobody registered: one line, a ValueError like every config error."""


@cache
def _index() -> dict[str, dict[str, str]]:
    try:
        return json.loads(INDEX_FILE.read_text())
    except FileNotFoundError:
        return {}


class Registry:
    """Objects of one kind by name. `package` holds the modules that may register into it."""

    def __init__(self, kind: str, package: str) -> None:
        if kind in _REGISTRIES:
            raise RegistryError(f"a registry of kind '{kind}' exists already (in {_REGISTRIES[kind].package})")
        self.kind, self.package = kind, package
        self._entries: dict[str, Any] = {}
        self._modules: dict[str, str] = {}  # name -> the module whose import registered it
        self._origins: dict[str, str] = {}  # name -> module.qualname of the object, to name duplicates
        self._all_loaded = False
        _REGISTRIES[kind] = self

    def register(self, name: str, obj: Any = None, *, _module: str | None = None) -> Any:
        """`@registry.register(name)` on a function or class, or `registry.register(name, obj)`."""
        module = _module or sys._getframe(1).f_globals.get("__name__", "?")

        def add(obj: Any) -> Any:
            origin = f"{getattr(obj, '__module__', module)}.{getattr(obj, '__qualname__', type(obj).__name__)}"
            # The same definition registering again is a module being re-imported (importlib.reload): fine.
            if name in self._entries and (self._origins[name], self._modules[name]) != (origin, module):
                raise RegistryError(
                    f"{self.kind} '{name}' is registered twice: by {self._origins[name]} and by {origin}"
                )
            self._entries[name], self._modules[name], self._origins[name] = obj, module, origin
            return obj

        return add if obj is None else add(obj)

    def get(self, name: str) -> Any:
        """The object registered as `name`, importing only the module the index names for it."""
        if name not in self._entries:
            module = _index().get(self.kind, {}).get(name)
            if module is not None:
                importlib.import_module(module)
        if name not in self._entries:
            self.load_all()  # a name the index does not know yet (a new file), or a typo
        if name not in self._entries:
            raise RegistryError(f"unknown {self.kind} '{name}'; valid: {', '.join(self.names())}")
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def names(self) -> list[str]:
        self.load_all()
        return sorted(self._entries)

    def modules(self) -> dict[str, str]:
        """name -> module that registers it, for every name (what the index must hold)."""
        self.load_all()
        return dict(sorted(self._modules.items()))

    def load_all(self) -> None:
        """Import every module of the package once."""
        if self._all_loaded:
            return
        package = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(getattr(package, "__path__", [])):
            importlib.import_module(f"{self.package}.{info.name}")
        self._all_loaded = True


def registries() -> dict[str, Registry]:
    """Every registry, by kind, after importing the modules that create them."""
    for home in HOMES:
        importlib.import_module(home)
    return dict(sorted(_REGISTRIES.items()))


def current_index() -> dict[str, dict[str, str]]:
    """What registry_index.json should hold: every registered name of every kind and its module."""
    return {kind: registry.modules() for kind, registry in registries().items()}


def write_index(path: Path = INDEX_FILE) -> dict[str, dict[str, str]]:
    index = current_index()
    path.write_text(json.dumps(index, indent=1) + "\n")
    _index.cache_clear()
    return index


def _main(argv: list[str]) -> int:
    if argv not in ([], ["--check"]):
        print(f"usage: {REGENERATE} [--check]", file=sys.stderr)
        return 2
    if argv == ["--check"]:
        stale = _index() != current_index()
        print(f"{INDEX_FILE.name} is {'stale: run ' + REGENERATE if stale else 'current'}")
        return int(stale)
    index = write_index()
    print(f"wrote {INDEX_FILE} ({sum(map(len, index.values()))} names in {len(index)} registries)")
    return 0


if __name__ == "__main__":
    # The registries live in the imported module `spikesweep.registry`, not in this `__main__` copy of it.
    from spikesweep.registry import _main as main

    raise SystemExit(main(sys.argv[1:]))
