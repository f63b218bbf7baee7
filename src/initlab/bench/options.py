"""One definition of the options of a training run, validated once (torch-free).

:class:`RunOptions` is what :func:`initlab.train`, the batched trainer
(:func:`initlab.train_stacked`), :func:`initlab.compare`, the ``initlab compare`` command and
``results.json`` share. Each field is checked in ``__post_init__``, so a ``RunOptions`` that
exists is valid: the trainers trust it. ``to_dict``/``from_dict`` round-trip through plain JSON
(``results.json`` stores the fields flat in its ``config``).

>>> opts = RunOptions(optimizer="adam", lr=1e-3, iterations=200)
>>> RunOptions.from_dict(opts.to_dict()) == opts
True
>>> opts.replace(lr=0.1).lr
0.1

This module imports no torch, so the CLI can build its defaults from it at parse time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from initlab._core.validation import check_choice, check_number
from initlab.bench.choices import OPTIMIZERS

DTYPE_NAMES = ("float32", "float64")

OptimizerName = Literal["gd", "sgd", "momentum", "adam"]


@dataclass(frozen=True)
class RunOptions:
    """How one run trains (the same for every member of a comparison).

    - ``optimizer``: ``gd`` (full batch), ``sgd`` (mini-batches), ``momentum``
      (``v = momentum v + g; p -= lr v``) or ``adam`` (PyTorch's, with bias correction,
      ``betas`` and ``eps``).
    - ``lr > 0``; ``iterations >= 1`` updates; ``batch_size``: mini-batch size (not with
      ``gd``), ``None`` for the full batch.
    - ``l2 >= 0``: the course's ``lambda / (2 m) * sum ||W||_F^2`` penalty on weight matrices.
    - ``dropout`` in ``[0, 1)``: the drop probability of the nets that :func:`initlab.compare`
      builds (:func:`initlab.train` uses the model's own dropout layers and refuses a non-zero
      value here).
    - ``clip_norm``, ``clip_value``, ``clip_adaptive`` (each ``> 0`` or ``None``): see
      :mod:`initlab.bench.clip`.
    - ``momentum`` in ``[0, 1]``; ``betas`` two numbers in ``[0, 1)``; ``eps > 0``.
    - ``dtype``: ``"float32"``, ``"float64"``, or ``None`` for the model's own dtype
      (:func:`initlab.compare` uses ``float64`` then).
    - ``log_every``: history every ``log_every`` iterations (``None``: ``iterations // 100``,
      at least 1); :attr:`log_interval` is the resolved value.
    """

    optimizer: OptimizerName = "gd"
    lr: float = 0.01
    iterations: int = 15000
    batch_size: int | None = None
    l2: float = 0.0
    dropout: float = 0.0
    clip_norm: float | None = None
    clip_value: float | None = None
    clip_adaptive: float | None = None
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    dtype: str | None = None
    log_every: int | None = None

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        put("lr", float(check_number("lr", self.lr, minimum=0.0, strict_minimum=True)))
        put("iterations", check_number("iterations", self.iterations, minimum=1, integer=True))
        if self.batch_size is not None:
            put("batch_size", check_number("batch_size", self.batch_size, minimum=1, integer=True))
            if self.optimizer == "gd":
                raise ValueError(
                    f"optimizer 'gd' is full-batch gradient descent; got batch_size="
                    f"{self.batch_size} (use optimizer='sgd' for mini-batches)"
                )
        put("l2", float(check_number("l2", self.l2, minimum=0.0)))
        dropout = check_number("dropout", self.dropout, minimum=0.0)
        if not dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout!r}")
        put("dropout", float(dropout))
        for name in ("clip_norm", "clip_value", "clip_adaptive"):
            value = getattr(self, name)
            if value is not None:
                put(name, float(check_number(name, value, minimum=0.0, strict_minimum=True)))
        put("momentum", float(check_number("momentum", self.momentum, minimum=0.0, maximum=1.0)))
        put("betas", _check_betas(self.betas))
        put("eps", float(check_number("eps", self.eps, minimum=0.0, strict_minimum=True)))
        if self.dtype is not None:
            dtype = str(self.dtype).removeprefix("torch.")
            put("dtype", check_choice("dtype", dtype, DTYPE_NAMES))
        if self.log_every is not None:
            put("log_every", check_number("log_every", self.log_every, minimum=1, integer=True))

    @property
    def log_interval(self) -> int:
        """``log_every``, or ``max(1, iterations // 100)`` when it is ``None``."""
        return self.log_every or max(1, self.iterations // 100)

    def replace(self, **changes: Any) -> RunOptions:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: every field, ``betas`` as a list."""
        out = dataclasses.asdict(self)
        out["betas"] = list(self.betas)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunOptions:
        """Rebuild from :meth:`to_dict` (or from a ``results.json`` config, whose other keys
        are ignored; a missing field takes its default)."""
        if not isinstance(data, Mapping):
            raise TypeError(f"run options must be a mapping; got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        if isinstance(kwargs.get("betas"), list):
            kwargs["betas"] = tuple(kwargs["betas"])
        return cls(**kwargs)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))


def _check_betas(betas: Any) -> tuple[float, float]:
    if isinstance(betas, str) or not hasattr(betas, "__len__") or len(betas) != 2:
        raise ValueError(f"betas must be two numbers (beta1, beta2) in [0, 1); got {betas!r}")
    out = []
    for i, beta in enumerate(betas):
        value = check_number(f"betas[{i}]", beta, minimum=0.0)
        if not value < 1.0:
            raise ValueError(f"betas[{i}] must be in [0, 1); got {beta!r}")
        out.append(float(value))
    return out[0], out[1]


def merge_options(options: RunOptions | None, where: str, **keywords: Any) -> RunOptions:
    """The :class:`RunOptions` of a call that takes both ``options=`` and the individual
    keywords (``lr=...``): ``options`` when given (then every keyword must be at its default),
    else ``RunOptions(**keywords)``."""
    if options is None:
        return RunOptions(**keywords)
    if not isinstance(options, RunOptions):
        raise TypeError(f"{where}: options must be a RunOptions; got {type(options).__name__}")
    defaults = RunOptions()
    clash = sorted(k for k, v in keywords.items() if v != getattr(defaults, k))
    if clash:
        raise ValueError(
            f"{where}: pass the run options either as options=RunOptions(...) or as keywords, "
            f"not both (got options= and {', '.join(clash)})"
        )
    return options


__all__ = ["DTYPE_NAMES", "RunOptions", "merge_options"]
