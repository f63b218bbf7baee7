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

from initlab._core.validation import closest

if TYPE_CHECKING:
    from torch import nn


def _split_spec(spec: str, flag: str = "--model") -> tuple[str, str]:
    path_text, sep, name = spec.rpartition(":")
    if not sep or not path_text or not name:
        raise ValueError(f"{flag} must be FILE.py:FACTORY; got {spec!r}")
    return path_text, name


def load_factory(spec: str, what: str = "function", flag: str = "--model") -> Callable[..., Any]:
    """Import ``path/to/file.py`` and return its callable ``FACTORY``: ``"file.py:FACTORY"``.
    Errors start with ``flag`` (where the spec came from)."""
    path_text, name = _split_spec(spec, flag)
    path = Path(path_text)
    if not path.exists():
        raise FileNotFoundError(f"{flag}: file {path_text!r} does not exist")
    if not path.is_file():
        raise ValueError(f"{flag}: {path_text!r} is not a regular file (a Python file is "
                         f"expected)")  # fmt: skip
    digest = hashlib.blake2b(str(path.resolve()).encode(), digest_size=6).hexdigest()
    module_spec = importlib.util.spec_from_file_location(f"_initlab_user_{digest}", path)
    if module_spec is None or module_spec.loader is None:
        raise ValueError(f"{flag}: cannot import {path_text!r}: not a Python file")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except SystemExit as error:
        raise ValueError(
            f"{flag}: model file {path_text} exited (sys.exit) with code {error.code}"
        ) from None
    except Exception as error:
        raise ValueError(
            f"{flag}: importing {path_text} failed: {type(error).__name__}: {error}"
        ) from None
    factory = getattr(module, name, None)
    if not callable(factory):
        choices = [k for k, v in vars(module).items() if callable(v) and not k.startswith("_")]
        raise ValueError(f"{flag}: " + _no_factory(what, path_text, name, choices))
    return factory


def _no_factory(what: str, path_text: str, name: str, choices: list[str]) -> str:
    """``no function 'mkae' in net.py; did you mean 'make'?``: at most three names, the
    closest ones (else the first ones the file defines)."""
    message = f"no {what} {name!r} in {path_text}"
    hint = closest(name, choices)
    if hint:
        return message + f"; did you mean {' or '.join(repr(h) for h in hint)}?"
    if not choices:
        return message + " (it defines no functions)"
    more = f" and {len(choices) - 3} more" if len(choices) > 3 else ""
    return message + f" (it defines {', '.join(choices[:3])}{more})"


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
            f"--model: {call} in model file {path_text} exited (sys.exit) with code {error.code}"
        ) from None
    except Exception as error:
        raise ValueError(
            f"--model: {call} in {path_text} failed: {type(error).__name__}: {error}"
        ) from None
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"--model: {call} in {path_text} returned {type(model).__name__}, not nn.Module"
        )
    return model
