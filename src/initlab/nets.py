"""Model builders: fully connected nets from layer sizes and activations."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ._validation import check_choice, check_number

HIDDEN_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "selu": nn.SELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "linear": nn.Identity,
}
OUTPUTS = ("sigmoid", "softmax", "linear")


class MLP(nn.Sequential):
    """A fully connected net: ``linear1, act1, [dropout1], ..., linearL``.

    ``forward`` returns the *logits* of the last layer; the output activation (``output``:
    sigmoid, softmax or linear) is applied by :meth:`predict_proba` and folded into the loss
    by the trainer, which keeps saturated outputs numerically exact. ``linear{l}.weight`` has
    shape ``(n[l], n[l-1])``: the course's ``W{l}``.
    """

    def __init__(
        self,
        layer_dims: Sequence[int],
        activation: str | Sequence[str] = "relu",
        output: str = "sigmoid",
        dropout: float = 0.0,
    ) -> None:
        dims = [int(check_number(f"layer_dims[{i}]", d, minimum=1, integer=True))
                for i, d in enumerate(layer_dims)]  # fmt: skip
        if len(dims) < 2:
            raise ValueError(f"layer_dims needs at least 2 sizes (input and output); got {dims}")
        hidden = len(dims) - 2
        if isinstance(activation, str):
            activations = [activation] * hidden
        else:
            activations = list(activation)
            if len(activations) != hidden:
                raise ValueError(
                    f"activation: one name or one per hidden layer ({hidden} for layer_dims "
                    f"{dims}); got {len(activations)}: {activations}"
                )
        for i, act in enumerate(activations):
            check_choice(f"activation[{i}]", act, tuple(HIDDEN_ACTIVATIONS))
        check_choice("output", output, OUTPUTS)
        check_number("dropout", dropout, minimum=0.0, maximum=0.999)
        layers: dict[str, nn.Module] = {}
        for layer in range(1, len(dims)):
            layers[f"linear{layer}"] = nn.Linear(dims[layer - 1], dims[layer])
            if layer < len(dims) - 1:
                layers[f"act{layer}"] = HIDDEN_ACTIVATIONS[activations[layer - 1]]()
                if dropout > 0:
                    layers[f"dropout{layer}"] = nn.Dropout(dropout)
        super().__init__(OrderedDict(layers))
        self.layer_dims = tuple(dims)
        self.activations = tuple(activations)
        self.output = output
        self.dropout = float(dropout)

    @property
    def linears(self) -> list[nn.Linear]:
        """The Linear layers in order (``linears[l-1]`` is layer ``l``)."""
        return [m for m in self if isinstance(m, nn.Linear)]

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs after the output activation (probabilities for sigmoid/softmax)."""
        logits = self(x)
        if self.output == "sigmoid":
            return torch.sigmoid(logits)
        if self.output == "softmax":
            return torch.softmax(logits, dim=-1)
        return logits

    def extra_repr(self) -> str:
        return f"layer_dims={list(self.layer_dims)}, output={self.output!r}"


def mlp(
    layer_dims: Sequence[int],
    activation: str | Sequence[str] = "relu",
    output: str = "sigmoid",
    dropout: float = 0.0,
) -> MLP:
    """A fully connected net with sizes ``layer_dims = [n0, ..., nL]``.

    ``activation``: one name or one per hidden layer (relu, leaky_relu, tanh, sigmoid, selu,
    gelu, silu, elu, linear); ``output``: sigmoid, softmax or linear (applied outside
    ``forward``, see :class:`MLP`); ``dropout``: probability after each hidden activation.
    Weights keep PyTorch's default init until :func:`initlab.init_model` is called.

    >>> mlp([2, 10, 5, 1])
    MLP(
      layer_dims=[2, 10, 5, 1], output='sigmoid'
      (linear1): Linear(in_features=2, out_features=10, bias=True)
      (act1): ReLU()
      (linear2): Linear(in_features=10, out_features=5, bias=True)
      (act2): ReLU()
      (linear3): Linear(in_features=5, out_features=1, bias=True)
    )
    """
    return MLP(layer_dims, activation, output, dropout)


def load_parameters(model: MLP, params: Mapping[str, np.ndarray]) -> MLP:
    """Copy course-style ``W1, b1, ..., WL, bL`` arrays into ``model``'s Linear layers.

    ``W{l}`` must have shape ``(n[l], n[l-1])`` and ``b{l}`` ``(n[l], 1)`` or ``(n[l],)``.
    """
    linears = model.linears
    expected = {f"W{i}" for i in range(1, len(linears) + 1)} | {
        f"b{i}" for i in range(1, len(linears) + 1)
    }
    if set(params) != expected:
        raise ValueError(
            f"expected parameters {sorted(expected)} for {len(linears)} layers; "
            f"got {sorted(params)}"
        )
    with torch.no_grad():
        for i, layer in enumerate(linears, start=1):
            w = torch.as_tensor(np.asarray(params[f"W{i}"]))
            b = torch.as_tensor(np.asarray(params[f"b{i}"])).reshape(-1)
            if tuple(w.shape) != tuple(layer.weight.shape) or b.numel() != layer.out_features:
                raise ValueError(
                    f"W{i}/b{i}: expected shapes {tuple(layer.weight.shape)} and "
                    f"({layer.out_features}, 1); got {tuple(w.shape)} and {tuple(b.shape)}"
                )
            layer.weight.copy_(w)
            layer.bias.copy_(b)
    return model
