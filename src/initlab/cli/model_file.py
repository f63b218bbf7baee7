"""Models and inputs named on the command line: ``--model FILE.py:FACTORY``, ``--input-shape``.

``--model`` imports the file and runs its code, as ``python FILE.py`` would: only name files
you trust (the same caution as ``torch.load(weights_only=False)``).
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from initlab._core.validation import unknown_name_error

if TYPE_CHECKING:
    from torch import nn


def parse_shape(text: str) -> tuple[int, ...]:
    """``"3,32,32"`` -> ``(3, 32, 32)``; every entry a positive integer."""
    try:
        shape = tuple(int(part) for part in text.replace(" ", "").split(","))
    except ValueError:
        raise ValueError(
            f"--input-shape must be positive integers separated by commas (e.g. 3,32,32); "
            f"got {text!r}"
        ) from None
    if not shape or any(d < 1 for d in shape):
        raise ValueError(f"--input-shape entries must be >= 1; got {text!r}")
    return shape


def _split_spec(spec: str) -> tuple[str, str]:
    path_text, sep, name = spec.rpartition(":")
    if not sep or not path_text or not name:
        raise ValueError(f"--model must be path/to/file.py:factory; got {spec!r}")
    return path_text, name


def load_factory(spec: str, what: str = "factory") -> Callable[..., Any]:
    """Import ``path/to/file.py`` and return its callable ``FACTORY``: ``"file.py:FACTORY"``."""
    path_text, name = _split_spec(spec)
    path = Path(path_text)
    if not path.exists():
        raise FileNotFoundError(f"model file {path_text!r} does not exist")
    if not path.is_file():
        raise ValueError(f"model file {path_text!r} is not a regular file (a Python file is "
                         f"expected)")  # fmt: skip
    digest = hashlib.blake2b(str(path.resolve()).encode(), digest_size=6).hexdigest()
    module_spec = importlib.util.spec_from_file_location(f"_initlab_user_{digest}", path)
    if module_spec is None or module_spec.loader is None:
        raise ValueError(f"cannot import {path_text!r}: not a Python file")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except SystemExit as error:
        raise ValueError(
            f"model file {path_text} exited (sys.exit) with code {error.code}"
        ) from None
    except Exception as error:
        raise ValueError(f"importing {path_text} failed: {type(error).__name__}: {error}") from None
    factory = getattr(module, name, None)
    if not callable(factory):
        choices = [k for k, v in vars(module).items() if callable(v) and not k.startswith("_")]
        raise unknown_name_error(f"{what} in {path_text}:", name, choices or ["(none)"])
    return factory


def load_model(spec: str, seed: int = 0) -> nn.Module:
    """Import ``path/to/file.py`` and call its ``factory()``: ``"file.py:factory"``.

    The factory runs with torch's RNG seeded by ``seed`` inside ``fork_rng``: PyTorch's default
    init is then reproducible and the caller's global RNG is left as it was.
    """
    return call_factory(spec, load_factory(spec), seed)


def call_factory(spec: str, factory: Callable[..., Any], seed: int = 0, **kwargs: Any) -> nn.Module:
    """``factory(**kwargs)`` of the model file ``spec`` under :func:`load_model`'s seeding; a
    failure, a ``sys.exit`` or a result that is not an ``nn.Module`` becomes one clear error."""
    from torch import nn

    from initlab._core.rng import seeded_global_rng

    path_text, name = _split_spec(spec)
    call = f"{name}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
    try:
        with seeded_global_rng(seed):
            model = factory(**kwargs)
    except SystemExit as error:
        raise ValueError(
            f"{call} in model file {path_text} exited (sys.exit) with code {error.code}"
        ) from None
    except Exception as error:
        raise ValueError(f"{call} in {path_text} failed: {type(error).__name__}: {error}") from None
    if not isinstance(model, nn.Module):
        raise TypeError(f"{call} in {path_text} returned {type(model).__name__}, not nn.Module")
    return model
