"""``Monitor``: the doctor's statistics recorded during training, every ``k`` iterations.

The training loop calls ``monitor.step(iteration)`` once per iteration, before the forward
pass (``initlab.train(..., monitor=m)`` does). On iterations that are multiples of ``every`` the
monitor arms its hooks: it measures the weights as they enter the iteration, records the
outputs of every module during the first forward pass that follows and their gradients (and the
weights' gradients) during the backward pass. The statistics are reduced on the device and
copied to the host once, when the next ``step`` (or ``flush``/leaving the ``with`` block)
closes the record; each record is a :class:`~initlab.doctor.Diagnosis` with verdicts, labelled
``"iteration i"``. Between records the hooks return at once: the cost is a few Python calls
per module per iteration.

>>> import torch, initlab
>>> net = initlab.mlp([4, 8, 1])
>>> _ = initlab.init_model(net, seed=0)
>>> x = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
>>> with initlab.Monitor(net, every=2) as monitor:
...     for i in range(4):
...         monitor.step(i)
...         net(x).pow(2).mean().backward()
>>> monitor.iterations
[0, 2]
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import nn

from initlab._core.table import format_table
from initlab._core.validation import check_choice, check_number
from initlab.doctor.diagnose import _assemble
from initlab.doctor.diagnosis import Diagnosis, Thresholds
from initlab.doctor.probe import _Probe, _queue_norms

STATS = (
    "rms",
    "mean",
    "std",
    "zeros",
    "saturated",
    "dead_fraction",
    "grad_output",
    "grad_weight",
    "grad_ratio",
    "weight_norm",
    "identical",
)
"""Row statistics :meth:`Monitor.series` can follow over iterations."""


class Monitor:
    """Record per-layer statistics every ``every`` iterations (see the module docstring).

    ``samples``: output values kept per layer and record for histograms (0 by default: a
    monitor keeps many records). ``thresholds``: for the verdicts of each record.
    A context manager: leaving the ``with`` block closes the last record and removes every
    hook; :meth:`close` does the same outside one.
    """

    def __init__(
        self,
        model: nn.Module,
        every: int = 10,
        *,
        thresholds: Thresholds | None = None,
        samples: int = 0,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"Monitor needs a torch.nn.Module; got {type(model).__name__}")
        self.every = int(check_number("every", every, minimum=1, integer=True))
        self.thresholds = Thresholds() if thresholds is None else thresholds
        if not isinstance(self.thresholds, Thresholds):
            raise TypeError(f"thresholds must be an initlab.Thresholds; got {thresholds!r}")
        samples = int(check_number("samples", samples, minimum=0, integer=True))
        self.model = model
        self.history: list[Diagnosis] = []
        self._probe = _Probe(model, self.thresholds, samples)
        self._param_handles: list[Any] = []
        self._iteration: int | None = None
        self._per_weight: dict[int, dict[str, float]] = {}
        self._weight_grads: dict[int, torch.Tensor] = {}
        self._open = False

    # -- lifetime
    def __enter__(self) -> Monitor:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Attach the hooks (``with Monitor(...)`` does this)."""
        if self._open:
            return
        self._probe.attach()
        for key, (_, weight) in self._probe.weights.items():
            if weight.requires_grad:
                self._param_handles.append(weight.register_hook(partial(self._weight_grad, key)))
        self._open = True

    def close(self) -> None:
        """Close the pending record and remove every hook."""
        try:
            self.flush()
        finally:
            self._probe.detach()
            for handle in self._param_handles:
                handle.remove()
            self._param_handles.clear()
            self._open = False

    # -- the training-loop protocol
    def step(self, iteration: int) -> None:
        """Called once per iteration before the forward pass: closes the previous record and
        arms the hooks when ``iteration`` is a multiple of ``every``."""
        if not self._open:
            raise RuntimeError("Monitor.step called outside 'with Monitor(...)' (or after close)")
        self.flush()
        if iteration % self.every:
            return
        self._iteration = int(iteration)
        self._per_weight = {}
        self._weight_grads = {}
        self._probe.arm()
        self._probe.weight_stats(self._per_weight)

    def flush(self) -> None:
        """Turn the pending record (if any) into a :class:`Diagnosis` in :attr:`history`."""
        if self._iteration is None:
            return
        iteration, self._iteration = self._iteration, None
        probe = self._probe
        probe.armed = False
        grads = self._weight_grads
        self._weight_grads = {}
        if not probe.calls:  # armed, but no forward pass came
            probe.pending, probe.repairs, probe.scalars, probe.slots = [], [], [], []
            return
        with torch.no_grad():
            probe.gradient_stats()
            if grads:
                keys = list(grads)
                _queue_norms(
                    probe.pending,
                    probe.repairs,
                    [grads[k] for k in keys],
                    [(self._per_weight.setdefault(k, {}), "grad_weight") for k in keys],
                )
        probe.sync()
        self.history.append(
            _assemble(
                self.model,
                probe.calls,
                self._per_weight,
                self.thresholds,
                f"iteration {iteration}",
                iteration=iteration,
            )
        )
        probe.calls = []

    def _weight_grad(self, key: int, grad: torch.Tensor) -> None:
        if self._iteration is not None and key not in self._weight_grads:
            self._weight_grads[key] = grad.detach()

    # -- results
    @property
    def iterations(self) -> list[int]:
        return [d.iteration for d in self.history]  # type: ignore[misc]

    def series(self, stat: str = "rms", weighted_only: bool = True) -> dict[str, list[Any]]:
        """``{row name: [value at each recorded iteration]}`` for one row statistic
        (``rms``, ``grad_output``, ``grad_ratio``, ...; see :data:`STATS`). Rows of the weight
        layers only unless ``weighted_only=False``."""
        check_choice("stat", stat, STATS)
        result: dict[str, list[Any]] = {}
        for position, diagnosis in enumerate(self.history):
            for row in diagnosis.layers:
                if weighted_only and not row.weighted:
                    continue
                values = result.setdefault(row.name, [None] * len(self.history))
                values[position] = getattr(row, stat)
        return result

    def __str__(self) -> str:
        rows = []
        for d in self.history:
            rms = [r.rms for r in d.weighted if r.rms is not None]
            grads = [r.grad_output for r in d.weighted if r.grad_output is not None]
            rows.append(
                (
                    d.iteration,
                    rms[0] if rms else None,
                    rms[-1] if rms else None,
                    grads[0] if grads else None,
                    grads[-1] if grads else None,
                    ", ".join(d.kinds),
                )
            )
        headers = ["iteration", "rms first", "rms last", "grad first", "grad last", "verdicts"]
        return format_table(headers, rows)

    def to_dict(self) -> dict[str, Any]:
        return {"every": self.every, "history": [d.to_dict() for d in self.history]}
