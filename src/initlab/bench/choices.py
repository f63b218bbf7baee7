"""Names the bench accepts, without importing torch (the CLI's parsers list them in --help)."""

from __future__ import annotations

OPTIMIZERS = ("gd", "sgd", "momentum", "adam")
CLASSIC_SCHEMES = ("zeros", "random:scale=10", "he")
HIDDEN_ACTIVATION_NAMES = (
    "relu", "leaky_relu", "tanh", "sigmoid", "selu", "gelu", "silu", "elu", "linear",
)  # fmt: skip
