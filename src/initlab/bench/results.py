"""What a training run returns: :class:`History` (metrics over iterations) and :class:`Run`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from initlab._core.table import format_table

if TYPE_CHECKING:
    from torch import nn


@dataclass
class History:
    """Metrics every ``log_every`` iterations (and after the last update)."""

    iteration: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    weight_norm: dict[str, list[float]] = field(default_factory=dict)
    grad_norm: dict[str, list[float]] = field(default_factory=dict)

    def append(self, iteration: int, loss: float, accuracy: float,
               weight_norms: dict[str, float], grad_norms: dict[str, float]) -> None:  # fmt: skip
        self.iteration.append(int(iteration))
        self.loss.append(float(loss))
        self.train_accuracy.append(float(accuracy))
        for name, value in weight_norms.items():
            self.weight_norm.setdefault(name, []).append(float(value))
        for name, value in grad_norms.items():
            self.grad_norm.setdefault(name, []).append(float(value))

    def rows(self) -> list[dict[str, Any]]:
        """One dict per logged iteration (for CSV)."""
        out = []
        for i, it in enumerate(self.iteration):
            row: dict[str, Any] = {"iteration": it, "loss": self.loss[i],
                                   "train_accuracy": self.train_accuracy[i]}  # fmt: skip
            for name, values in self.weight_norm.items():
                row[f"weight_norm.{name}"] = values[i]
            for name, values in self.grad_norm.items():
                row[f"grad_norm.{name}"] = values[i]
            out.append(row)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"iteration": list(self.iteration), "loss": list(self.loss),
                "train_accuracy": list(self.train_accuracy),
                "weight_norm": {k: list(v) for k, v in self.weight_norm.items()},
                "grad_norm": {k: list(v) for k, v in self.grad_norm.items()}}  # fmt: skip


@dataclass
class Run:
    """One training run. ``final_*`` are ``None`` when the run diverged."""

    scheme: str
    seed: int | None
    status: Literal["finished", "diverged"]
    iterations: int
    final_loss: float | None
    train_accuracy: float | None
    test_accuracy: float | None
    seconds: float
    history: History
    diverged_at: int | None = None
    diverged_layer: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    model: nn.Module | None = field(default=None, repr=False, compare=False)

    _HEADERS = ("scheme", "seed", "final loss", "train acc", "test acc", "status", "seconds")

    def row(self) -> tuple[Any, ...]:
        status = self.status
        if self.status == "diverged":
            status = f"diverged at {self.diverged_at} ({self.diverged_layer})"
        return (self.scheme, self.seed, self.final_loss, self.train_accuracy,
                self.test_accuracy, status, round(self.seconds, 2))  # fmt: skip

    def __str__(self) -> str:
        return format_table(self._HEADERS, [self.row()])

    def to_dict(self, history: bool = True) -> dict[str, Any]:
        out = {
            "scheme": self.scheme, "seed": self.seed, "status": self.status,
            "iterations": self.iterations, "final_loss": self.final_loss,
            "train_accuracy": self.train_accuracy, "test_accuracy": self.test_accuracy,
            "seconds": self.seconds, "diverged_at": self.diverged_at,
            "diverged_layer": self.diverged_layer, "config": dict(self.config),
        }  # fmt: skip
        if history:
            out["history"] = self.history.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        h = data.get("history") or {}
        history = History(list(h.get("iteration", [])), list(h.get("loss", [])),
                          list(h.get("train_accuracy", [])), dict(h.get("weight_norm", {})),
                          dict(h.get("grad_norm", {})))  # fmt: skip
        keys = ("scheme", "seed", "status", "iterations", "final_loss", "train_accuracy",
                "test_accuracy", "seconds", "diverged_at", "diverged_layer", "config")  # fmt: skip
        return cls(history=history, **{k: data.get(k) for k in keys})  # type: ignore[arg-type]


__all__ = ["History", "Run"]
