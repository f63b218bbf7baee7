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
    "compare": "initlab.bench.compare",
    "Comparison": "initlab.bench.compare",
    "MonitorSeries": "initlab.bench.compare",
    "Dataset": "initlab.bench.dataset",
    "load_parameters": "initlab.bench.nets",
    "MLP": "initlab.bench.nets",
    "mlp": "initlab.bench.nets",
    "StackedMLP": "initlab.bench.nets",
    "RunOptions": "initlab.bench.options",
    "History": "initlab.bench.results",
    "Run": "initlab.bench.results",
    "train_stacked": "initlab.bench.stacked",
    "sweep": "initlab.bench.sweep.run",
    "SweepResult": "initlab.bench.sweep.run",
    "SweepSpec": "initlab.bench.sweep.spec",
    "train": "initlab.bench.train",
    "coord_check": "initlab.doctor.coord_check",
    "CoordCheck": "initlab.doctor.coord_check",
    "mlp_criticality": "initlab.doctor.criticality",
    "MLPCriticality": "initlab.doctor.criticality",
    "diagnose": "initlab.doctor.diagnose",
    "Diagnosis": "initlab.doctor.diagnose",
    "Fix": "initlab.doctor.diagnose",
    "fix": "initlab.doctor.diagnose",
    "LayerStats": "initlab.doctor.diagnose",
    "recommend": "initlab.doctor.diagnose",
    "Recommendation": "initlab.doctor.diagnose",
    "Thresholds": "initlab.doctor.diagnose",
    "Verdict": "initlab.doctor.diagnose",
    "jacobian_spectrum": "initlab.doctor.jacobian",
    "JacobianSpectrum": "initlab.doctor.jacobian",
    "Monitor": "initlab.doctor.monitor",
    "recipe_check": "initlab.doctor.recipe_check",
    "RecipeCheck": "initlab.doctor.recipe_check",
    "SPP": "initlab.doctor.spp",
    "spp": "initlab.doctor.spp",
    "plant_bug": "initlab.gradient_check.bugs",
    "gradcheck": "initlab.gradient_check.check",
    "gradcheck_function": "initlab.gradient_check.check",
    "with_l2": "initlab.gradient_check.losses",
    "GradCheck": "initlab.gradient_check.results",
    "apply_plan": "initlab.initializers.apply",
    "default_init_std": "initlab.initializers.apply",
    "init_model": "initlab.initializers.apply",
    "InitReport": "initlab.initializers.apply",
    "InitRow": "initlab.initializers.apply",
    "plan_init": "initlab.initializers.apply",
    "InitPlan": "initlab.initializers.plan",
    "audit_init": "initlab.initializers.audit",
    "AuditReport": "initlab.initializers.audit",
    "Fingerprint": "initlab.initializers.audit",
    "build": "initlab.initializers.build",
    "initialize_parameters": "initlab.initializers.course",
    "Critical": "initlab.initializers.critical",
    "critical": "initlab.initializers.critical",
    "edge_of_chaos": "initlab.initializers.critical",
    "mean_field": "initlab.initializers.critical",
    "fan_in_fan_out": "initlab.initializers.fans",
    "parameter_fans": "initlab.initializers.fans",
    "receptive_field": "initlab.initializers.fans",
    "gain": "initlab.initializers.gains",
    "lsuv": "initlab.initializers.lsuv",
    "LSUVReport": "initlab.initializers.lsuv",
    "LSUVRow": "initlab.initializers.lsuv",
    "Recipe": "initlab.initializers.recipe_data",
    "RECIPES": "initlab.initializers.recipe_data",
    "Rule": "initlab.initializers.recipe_data",
    "get_recipe": "initlab.initializers.recipes",
    "init_with_recipe": "initlab.initializers.recipes",
    "list_recipes": "initlab.initializers.recipes",
    "recipe_diff": "initlab.initializers.recipes",
    "RecipeDiff": "initlab.initializers.recipes",
    "RecipeReport": "initlab.initializers.recipes",
    "TruncationWarning": "initlab.initializers.recipes",
    "get": "initlab.initializers.registry",
    "roles": "initlab.initializers.roles",
    "RoleTable": "initlab.initializers.roles",
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
    "reproduce": "initlab.papers.base",
    "Reproduction": "initlab.papers.base",
    "write_reproduction": "initlab.report.papers",
    "plot_signal": "initlab.report.signal",
    "plot_coord_check": "initlab.report.theory",
    "plot_edge_of_chaos": "initlab.report.theory",
    "plot_jacobian": "initlab.report.theory",
    "plot_lsuv": "initlab.report.theory",
    "plot_spp": "initlab.report.theory",
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
    from initlab.bench.dataset import Dataset
    from initlab.bench.nets import MLP, StackedMLP, load_parameters, mlp
    from initlab.bench.options import RunOptions
    from initlab.bench.results import History, Run
    from initlab.bench.stacked import train_stacked
    from initlab.bench.sweep.run import SweepResult, sweep
    from initlab.bench.sweep.spec import SweepSpec
    from initlab.bench.train import train
    from initlab.doctor.coord_check import CoordCheck, coord_check
    from initlab.doctor.criticality import MLPCriticality, mlp_criticality
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
    from initlab.doctor.jacobian import JacobianSpectrum, jacobian_spectrum
    from initlab.doctor.monitor import Monitor
    from initlab.doctor.recipe_check import RecipeCheck, recipe_check
    from initlab.doctor.spp import SPP, spp
    from initlab.gradient_check.bugs import plant_bug
    from initlab.gradient_check.check import gradcheck, gradcheck_function
    from initlab.gradient_check.losses import with_l2
    from initlab.gradient_check.results import GradCheck
    from initlab.initializers.apply import (
        InitReport,
        InitRow,
        apply_plan,
        default_init_std,
        init_model,
        plan_init,
    )
    from initlab.initializers.audit import AuditReport, Fingerprint, audit_init
    from initlab.initializers.build import build
    from initlab.initializers.course import initialize_parameters
    from initlab.initializers.critical import Critical, critical, edge_of_chaos, mean_field
    from initlab.initializers.fans import fan_in_fan_out, parameter_fans, receptive_field
    from initlab.initializers.gains import gain
    from initlab.initializers.lsuv import LSUVReport, LSUVRow, lsuv
    from initlab.initializers.plan import InitPlan
    from initlab.initializers.recipe_data import RECIPES, Recipe, Rule
    from initlab.initializers.recipes import (
        RecipeDiff,
        RecipeReport,
        TruncationWarning,
        get_recipe,
        init_with_recipe,
        list_recipes,
        recipe_diff,
    )
    from initlab.initializers.registry import get
    from initlab.initializers.roles import RoleTable, roles
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
    from initlab.papers.base import Reproduction, reproduce
    from initlab.report.papers import write_reproduction
    from initlab.report.signal import plot_signal
    from initlab.report.theory import (
        plot_coord_check,
        plot_edge_of_chaos,
        plot_jacobian,
        plot_lsuv,
        plot_spp,
    )
