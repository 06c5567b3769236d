"""Lazy public APIs for the packages' `__init__` files: a name is imported on first use, so
`import foundation` (say) stays cheap and pulls in torch or Ray only when a model or job is touched."""

import importlib
from typing import Callable


def lazy_getattr(package: str, exports: dict[str, str]) -> Callable[[str], object]:
    """A module-level `__getattr__` resolving `name` from `exports[name]` (a module path); a name that
    is itself that module (e.g. `datasets.storage`) resolves to the module."""

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(exports[name])
        return module if exports[name].rsplit(".", 1)[-1] == name else getattr(module, name)

    return __getattr__
