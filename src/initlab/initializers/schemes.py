"""The initializers: one small class per scheme, built on a shared variance-scaling core.

Every scheme fills a torch tensor in place (``scheme(tensor, generator)``) and samples a NumPy
array (``scheme.sample(shape, seed)``). Fans follow :mod:`initlab.fans` (PyTorch layout
``(out, in, *kernel)``); gains follow :mod:`initlab.gains`.

The variance-scaling core draws weights with variance ``scale / n`` where ``n`` is ``fan_in``,
``fan_out`` or ``(fan_in + fan_out) / 2`` (the ``mode``), from one of three distributions with
that same variance:

- ``normal``: ``N(0, std^2)``, ``std = sqrt(scale / n)`` (PyTorch's ``*_normal_``);
- ``uniform``: ``U(-limit, limit)``, ``limit = sqrt(3 scale / n)``;
- ``truncated_normal``: a normal truncated at two of its standard deviations and widened by
  ``1 / 0.87962566103423978`` so that the variance *after* truncation is ``scale / n``
  (Keras and JAX).

LeCun, Glorot/Xavier and He/Kaiming are named configurations of it.

``"auto"`` gains: He's ``nonlinearity="auto"`` and Xavier's or orthogonal's ``gain="auto"``
take the gain of the activation that follows the layer when :func:`initlab.init_model` knows it;
used alone they fall back to PyTorch's defaults (leaky_relu with slope ``negative_slope`` for
He, 1 for the others).
"""

from __future__ import annotations

from initlab.initializers.distributions import (  # noqa: F401  (the public face of the schemes)
    DISTRIBUTIONS,
    MODES,
    TRUNCATED_STD,
    Activation,
    Constant,
    Distribution,
    Initializer,
    Mode,
    Normal,
    Random,
    Source,
    TruncatedNormal,
    Uniform,
    _normal_,
    _truncated_,
    _uniform_,
)
from initlab.initializers.structured import (  # noqa: F401
    DeltaOrthogonal,
    Dirac,
    Identity,
    Orthogonal,
    Sparse,
    _orthogonal_matrix,
)
from initlab.initializers.variance_scaling import (  # noqa: F401
    _SUFFIX,
    He,
    Lecun,
    VarianceScaling,
    Xavier,
    _VarianceScalingCore,
)

SCHEME_CLASSES: tuple[type[Initializer], ...] = (
    Constant, Normal, Random, Uniform, TruncatedNormal, VarianceScaling, Lecun, Xavier, He,
    Orthogonal, Identity, Dirac, DeltaOrthogonal, Sparse,
)  # fmt: skip
