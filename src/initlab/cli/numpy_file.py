"""``initlab gradcheck --numpy FILE.py``: a learner's cost, parameters and gradients from a file.

The file is imported and its code runs, as ``python FILE.py`` would: only name files you trust.
It defines

* ``cost``: a function ``cost(parameters)`` returning the cost (or ``(cost, cache)``, as the
  course's ``forward_propagation_n`` does), with the data bound in;
* ``parameters``: a dict of NumPy arrays ``{"W1": ..., "b1": ...}``, or a function of no
  arguments returning one;
* ``gradients``: what the backward pass returned (``dW1``, ``db1``, ...), or a function
  returning it, called with the parameters when it takes an argument.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

NAMES = ("cost", "parameters", "gradients")


def _import(path_text: str) -> Any:
    path = Path(path_text)
    if not path_text or not path.is_file():
        raise FileNotFoundError(f"--numpy: file {path_text!r} does not exist")
    digest = hashlib.blake2b(str(path.resolve()).encode(), digest_size=6).hexdigest()
    spec = importlib.util.spec_from_file_location(f"_initlab_numpy_{digest}", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"--numpy: cannot import {path_text!r}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SystemExit as exit_:
        raise ValueError(
            f"--numpy: {path_text} exited with code {exit_.code!r} while loading"
        ) from None
    except Exception as error:
        raise ValueError(
            f"--numpy: importing {path_text} failed: {type(error).__name__}: {error}"
        ) from None
    return module


def _called(path_text: str, name: str, fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except SystemExit as exit_:
        raise ValueError(
            f"--numpy: {name}() in {path_text} exited with code {exit_.code!r}"
        ) from None
    except Exception as error:
        raise ValueError(
            f"--numpy: {name}() in {path_text} failed: {type(error).__name__}: {error}"
        ) from None


def _takes_argument(fn: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
               for p in parameters)  # fmt: skip


def load_course_check(path_text: str) -> tuple[Callable[..., Any], Mapping[str, Any], Any]:
    """``(cost, parameters, gradients)`` from ``path_text`` (see the module docstring)."""
    module = _import(path_text)
    missing = [name for name in NAMES if not hasattr(module, name)]
    if missing:
        defined = sorted(k for k in vars(module) if not k.startswith("_"))
        raise ValueError(
            f"--numpy: {path_text} must define {', '.join(NAMES)}; missing "
            f"{', '.join(missing)} (it defines {', '.join(defined) or 'nothing'})"
        )
    cost = module.cost
    if not callable(cost):
        raise TypeError(
            f"--numpy: cost in {path_text} must be a function cost(parameters); got "
            f"{type(cost).__name__}"
        )
    parameters = module.parameters
    if callable(parameters):
        parameters = _called(path_text, "parameters", parameters)
    if not isinstance(parameters, Mapping):
        raise TypeError(
            f"--numpy: parameters in {path_text} must be a dict of arrays (or a function "
            f"returning one); got {type(parameters).__name__}"
        )
    gradients = module.gradients
    if callable(gradients):
        args = (parameters,) if _takes_argument(gradients) else ()
        gradients = _called(path_text, "gradients", gradients, *args)
    return cost, parameters, gradients
