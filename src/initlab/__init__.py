"""initlab: weight initialization that makes deep networks train.

Initializers for every scheme PyTorch, Keras and JAX/Flax ship, with correct fans and gains,
applied to a whole ``nn.Module`` in one call.
"""

from __future__ import annotations

from . import datasets
from .apply import InitReport, InitRow, default_init_std, init_model
from .build import build
from .course import initialize_parameters
from .datasets import Dataset
from .doctor import (
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
from .experiments import Comparison, MonitorSeries, compare
from .fans import fan_in_fan_out, parameter_fans, receptive_field
from .gains import gain
from .gradcheck import GradCheck, gradcheck, gradcheck_function, plant_bug, with_l2
from .monitor import Monitor
from .nets import MLP, StackedMLP, load_parameters, mlp
from .registry import get
from .schemes import (
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
from .train import History, Run, train, train_stacked

__version__ = "0.1.0"

__all__ = [
    "MLP",
    "Comparison",
    "Constant",
    "Dataset",
    "DeltaOrthogonal",
    "Diagnosis",
    "Dirac",
    "Fix",
    "GradCheck",
    "He",
    "History",
    "Identity",
    "InitReport",
    "InitRow",
    "Initializer",
    "LayerStats",
    "Lecun",
    "Monitor",
    "MonitorSeries",
    "Normal",
    "Orthogonal",
    "Random",
    "Recommendation",
    "Run",
    "Sparse",
    "StackedMLP",
    "Thresholds",
    "TruncatedNormal",
    "Uniform",
    "VarianceScaling",
    "Verdict",
    "Xavier",
    "__version__",
    "build",
    "compare",
    "datasets",
    "default_init_std",
    "diagnose",
    "fan_in_fan_out",
    "fix",
    "gain",
    "get",
    "gradcheck",
    "gradcheck_function",
    "init_model",
    "initialize_parameters",
    "load_parameters",
    "mlp",
    "parameter_fans",
    "plant_bug",
    "receptive_field",
    "recommend",
    "train",
    "train_stacked",
    "with_l2",
]
