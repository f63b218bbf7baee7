"""initlab: weight initialization that makes deep networks train.

Initializers for every scheme PyTorch, Keras and JAX/Flax ship, with correct fans and gains,
applied to a whole ``nn.Module`` in one call; a doctor for signal propagation; gradient checks;
a training bench.

The public API is every name in ``__all__``. Names are loaded on first use (PEP 562), so
``import initlab`` and ``initlab --help`` do not pay for torch, SciPy or matplotlib until a
feature needs them. The packages below hold the implementation, one capability each:
``_core`` (private ground floor), ``initializers``, ``gradient_check``, ``doctor``, ``bench``,
``report`` and ``cli``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> module that defines it.
_EXPORTS: dict[str, str] = {
    "Comparison": "initlab.bench.compare",
    "MonitorSeries": "initlab.bench.compare",
    "compare": "initlab.bench.compare",
    "Dataset": "initlab.bench.datasets",
    "MLP": "initlab.bench.nets",
    "StackedMLP": "initlab.bench.nets",
    "load_parameters": "initlab.bench.nets",
    "mlp": "initlab.bench.nets",
    "SweepResult": "initlab.bench.sweep.run",
    "SweepSpec": "initlab.bench.sweep.spec",
    "sweep": "initlab.bench.sweep.run",
    "History": "initlab.bench.train",
    "Run": "initlab.bench.train",
    "train": "initlab.bench.train",
    "train_stacked": "initlab.bench.train",
    "Diagnosis": "initlab.doctor.diagnose",
    "Fix": "initlab.doctor.diagnose",
    "LayerStats": "initlab.doctor.diagnose",
    "Recommendation": "initlab.doctor.diagnose",
    "Thresholds": "initlab.doctor.diagnose",
    "Verdict": "initlab.doctor.diagnose",
    "diagnose": "initlab.doctor.diagnose",
    "fix": "initlab.doctor.diagnose",
    "recommend": "initlab.doctor.diagnose",
    "Monitor": "initlab.doctor.monitor",
    "GradCheck": "initlab.gradient_check.check",
    "gradcheck": "initlab.gradient_check.check",
    "gradcheck_function": "initlab.gradient_check.check",
    "plant_bug": "initlab.gradient_check.check",
    "with_l2": "initlab.gradient_check.check",
    "InitReport": "initlab.initializers.apply",
    "InitRow": "initlab.initializers.apply",
    "default_init_std": "initlab.initializers.apply",
    "init_model": "initlab.initializers.apply",
    "build": "initlab.initializers.build",
    "initialize_parameters": "initlab.initializers.course",
    "fan_in_fan_out": "initlab.initializers.fans",
    "parameter_fans": "initlab.initializers.fans",
    "receptive_field": "initlab.initializers.fans",
    "gain": "initlab.initializers.gains",
    "get": "initlab.initializers.registry",
    "Constant": "initlab.initializers.schemes",
    "DeltaOrthogonal": "initlab.initializers.schemes",
    "Dirac": "initlab.initializers.schemes",
    "He": "initlab.initializers.schemes",
    "Identity": "initlab.initializers.schemes",
    "Initializer": "initlab.initializers.schemes",
    "Lecun": "initlab.initializers.schemes",
    "Normal": "initlab.initializers.schemes",
    "Orthogonal": "initlab.initializers.schemes",
    "Random": "initlab.initializers.schemes",
    "Sparse": "initlab.initializers.schemes",
    "TruncatedNormal": "initlab.initializers.schemes",
    "Uniform": "initlab.initializers.schemes",
    "VarianceScaling": "initlab.initializers.schemes",
    "Xavier": "initlab.initializers.schemes",
    "plot_signal": "initlab.report.signal",
}
_MODULES = ("datasets", "course")

__all__ = [*sorted([*_EXPORTS, *_MODULES]), "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _MODULES:
        value = importlib.import_module(f"initlab.{name}")
    else:
        raise AttributeError(f"module 'initlab' has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - for editors and type checkers only
    from initlab import course, datasets
    from initlab.bench.compare import Comparison, MonitorSeries, compare
    from initlab.bench.datasets import Dataset
    from initlab.bench.nets import MLP, StackedMLP, load_parameters, mlp
    from initlab.bench.sweep.run import SweepResult, sweep
    from initlab.bench.sweep.spec import SweepSpec
    from initlab.bench.train import History, Run, train, train_stacked
    from initlab.doctor.diagnose import (
        Diagnosis,
        Fix,
        LayerStats,
        Recommendation,
        Thresholds,
        Verdict,
        diagnose,
        fix,
        recommend,
    )
    from initlab.doctor.monitor import Monitor
    from initlab.gradient_check.check import (
        GradCheck,
        gradcheck,
        gradcheck_function,
        plant_bug,
        with_l2,
    )
    from initlab.initializers.apply import InitReport, InitRow, default_init_std, init_model
    from initlab.initializers.build import build
    from initlab.initializers.course import initialize_parameters
    from initlab.initializers.fans import fan_in_fan_out, parameter_fans, receptive_field
    from initlab.initializers.gains import gain
    from initlab.initializers.registry import get
    from initlab.initializers.schemes import (
        Constant,
        DeltaOrthogonal,
        Dirac,
        He,
        Identity,
        Initializer,
        Lecun,
        Normal,
        Orthogonal,
        Random,
        Sparse,
        TruncatedNormal,
        Uniform,
        VarianceScaling,
        Xavier,
    )
    from initlab.report.signal import plot_signal
