"""Model builders: fully connected nets from layer sizes and activations."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from initlab._core.rng import seeded_global_rng
from initlab._core.validation import check_choice, check_number

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
        seed: int = 0,
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
        check_number("seed", seed, minimum=0, integer=True)
        layers: dict[str, nn.Module] = {}
        # PyTorch's default Linear init draws from the global RNG: draw it from a forked,
        # seeded copy so that building a net never changes the caller's random state.
        with seeded_global_rng(int(seed)):
            linears = [nn.Linear(dims[i - 1], dims[i]) for i in range(1, len(dims))]
        for layer in range(1, len(dims)):
            layers[f"linear{layer}"] = linears[layer - 1]
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
    seed: int = 0,
) -> MLP:
    """A fully connected net with sizes ``layer_dims = [n0, ..., nL]``.

    ``activation``: one name or one per hidden layer (relu, leaky_relu, tanh, sigmoid, selu,
    gelu, silu, elu, linear); ``output``: sigmoid, softmax or linear (applied outside
    ``forward``, see :class:`MLP`); ``dropout``: probability after each hidden activation.
    Weights start with PyTorch's default init drawn from a generator seeded with ``seed``
    (the global RNG is left alone) until :func:`initlab.init_model` is called.

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
    return MLP(layer_dims, activation, output, dropout, seed)


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


# ---------------------------------------------------------------------------- stacked MLPs
# Activations whose backward the stacked fast path computes from the activation's output.
# Each writes dLoss/dZ into ``result`` given dLoss/dA (``grad``) and ``out`` = act(Z).
_aten = torch.ops.aten
# name -> (op, extra args): ``op(dL/dA, act(Z), *extra, grad_input=dL/dZ)``.
_BACKWARD_OPS = {
    "relu": (_aten.threshold_backward.grad_input, (0,)),
    "leaky_relu": (_aten.leaky_relu_backward.grad_input, (0.01, True)),
    "tanh": (_aten.tanh_backward.grad_input, ()),
    "sigmoid": (_aten.sigmoid_backward.grad_input, ()),
}
_FAST_BACKWARD = {
    name: (lambda grad, out, result, op=op, extra=extra: op(grad, out, *extra, grad_input=result))
    for name, (op, extra) in _BACKWARD_OPS.items()
}
_FAST_BACKWARD["linear"] = lambda grad, out, result: result.copy_(grad)
# In-place activations of a tensor, as zero-argument calls bound once (None: identity).
_INPLACE = {
    "relu": lambda t: t.relu_,
    "leaky_relu": lambda t: partial(torch.nn.functional.leaky_relu_, t, 0.01),
    "tanh": lambda t: t.tanh_,
    "sigmoid": lambda t: t.sigmoid_,
    "linear": lambda t: None,
}
# Activations written from one tensor into another (``out=``), for the shared-input first layer.
_INTO = {"relu": partial(torch.clamp_min, min=0), "tanh": torch.tanh, "sigmoid": torch.sigmoid}
_FUNCTIONAL = {
    "relu": torch.relu, "leaky_relu": lambda z: torch.nn.functional.leaky_relu(z, 0.01),
    "tanh": torch.tanh, "sigmoid": torch.sigmoid, "selu": torch.selu,
    "gelu": torch.nn.functional.gelu, "silu": torch.nn.functional.silu,
    "elu": torch.nn.functional.elu, "linear": lambda z: z,
}  # fmt: skip


class StackedMLP(nn.Module):
    """``B`` independent MLPs with the same sizes, stacked along a leading member dimension.

    Layer ``l`` is stored *augmented*: ``weights[l-1]`` has shape ``(B, n[l], n[l-1] + 1)``,
    the weight ``W_l`` of member ``b`` in ``weights[l-1][b, :, :-1]`` and its bias in the last
    column, so one batched matrix product computes ``Z_l = W_l A_{l-1} + b_l`` for every member
    (activations are kept in the course layout ``(B, n[l], N)`` with a trailing row of ones).
    Members never mix: every product is per member.

    ``forward(x)`` with ``x`` of shape ``(N, n0)`` (shared) or ``(B, N, n0)`` returns logits of
    shape ``(B, N, nL)`` and is differentiable (autograd). The trainer uses the hand-written
    :meth:`forward_backward` instead, which is the same math in few fused ops.
    """

    def __init__(
        self,
        layer_dims: Sequence[int],
        members: int,
        activation: str | Sequence[str] = "relu",
        output: str = "sigmoid",
        dropout: float = 0.0,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        template = MLP(layer_dims, activation, output, dropout)  # validates everything
        self.members = int(check_number("members", members, minimum=1, integer=True))
        self.layer_dims = template.layer_dims
        self.activations = template.activations
        self.output = output
        self.dropout = float(dropout)
        dims = self.layer_dims
        self.weights = nn.ParameterList(
            nn.Parameter(torch.zeros(self.members, dims[i], dims[i - 1] + 1, dtype=dtype))
            for i in range(1, len(dims))
        )

    @classmethod
    def from_models(cls, models: Sequence[MLP]) -> StackedMLP:
        """Stack MLPs that share sizes, activations, output and dropout (weights copied)."""
        if not models:
            raise ValueError("from_models needs at least one MLP")
        first = models[0]
        for i, m in enumerate(models):
            if not isinstance(m, MLP):
                raise TypeError(f"models[{i}] must be an initlab MLP; got {type(m).__name__}")
            same = (m.layer_dims, m.activations, m.output, m.dropout)
            expected = (first.layer_dims, first.activations, first.output, first.dropout)
            if same != expected:
                raise ValueError(
                    f"models[{i}] differs from models[0] in (layer_dims, activations, output, "
                    f"dropout): got {same}, models[0] has {expected}"
                )
        dtype = first.linears[0].weight.dtype
        stacked = cls(first.layer_dims, len(models), list(first.activations), first.output,
                      first.dropout, dtype)  # fmt: skip
        with torch.no_grad():
            for b, m in enumerate(models):
                for w, layer in zip(stacked.weights, m.linears, strict=True):
                    w[b, :, :-1].copy_(layer.weight)
                    w[b, :, -1].copy_(layer.bias)
        return stacked

    def member(self, index: int) -> MLP:
        """Member ``index`` as a standalone :class:`MLP` (a copy of its weights)."""
        index = int(check_number("index", index, minimum=0, maximum=self.members - 1,
                                 integer=True))  # fmt: skip
        model = MLP(self.layer_dims, list(self.activations), self.output, self.dropout)
        model.to(self.weights[0].dtype)
        with torch.no_grad():
            for w, layer in zip(self.weights, model.linears, strict=True):
                layer.weight.copy_(w[index, :, :-1])
                layer.bias.copy_(w[index, :, -1])
        return model

    @property
    def fast(self) -> bool:
        """Whether :meth:`forward_backward` supports these activations (else use autograd)."""
        return all(a in _FAST_BACKWARD for a in self.activations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, N, nL)`` of every member (no dropout: use it for evaluation)."""
        a = x.transpose(-1, -2)
        if a.dim() == 2:
            a = a.unsqueeze(0).expand(self.members, *a.shape)
        last = len(self.weights) - 1
        for i, w in enumerate(self.weights):
            z = torch.baddbmm(w[:, :, -1:], w[:, :, :-1], a)
            a = z if i == last else _FUNCTIONAL[self.activations[i]](z)
        return a.transpose(1, 2)

    def extra_repr(self) -> str:
        return f"members={self.members}, layer_dims={list(self.layer_dims)}, output={self.output!r}"


class StackedWorkspace:
    """Preallocated buffers for :meth:`StackedMLP` steps on batches of ``n`` examples.

    ``inputs[l]``: ``(B, n[l] + 1, n)`` activations with a trailing row of ones (``inputs[0]``
    holds the data, written by :meth:`set_inputs`); ``dz[l]``: ``(B, n[l+1], n)``.
    """

    def __init__(self, model: StackedMLP, n: int) -> None:
        dims, b = model.layer_dims, model.members
        dtype = model.weights[0].dtype
        self.model, self.n = model, n
        self.inputs = [torch.ones(b, dims[i] + 1, n, dtype=dtype) for i in range(len(dims) - 1)]
        self.acts = [t[:, :-1, :] for t in self.inputs]
        self.inputs_t = [t.transpose(1, 2) for t in self.inputs]
        self.pre_dropout = [torch.empty(b, dims[i], n, dtype=dtype) if model.dropout else None
                            for i in range(len(dims) - 1)]  # fmt: skip
        self.masks = [torch.empty(b, dims[i], n, dtype=dtype) if model.dropout else None
                      for i in range(len(dims) - 1)]  # fmt: skip
        self.dz = [torch.empty(b, dims[i + 1], n, dtype=dtype) for i in range(len(dims) - 1)]
        self.da = [torch.empty(b, dims[i], n, dtype=dtype) for i in range(len(dims) - 1)]
        # Detached views share storage with the parameters, so in-place updates show here.
        self.weights = [w.detach() for w in model.weights]
        self.weights_t = [w[:, :, :-1].transpose(1, 2) for w in self.weights]
        self.backwards = [_FAST_BACKWARD.get(a) for a in model.activations]

    def set_inputs(self, x: torch.Tensor) -> None:
        """Write the batch ``x``: ``(n, n0)`` shared by all members or ``(B, n, n0)``."""
        self.acts[0].copy_(x.transpose(-1, -2).expand_as(self.acts[0]))

    def forward(self, dropout_generators: Sequence[torch.Generator] | None = None) -> torch.Tensor:
        """Logits ``Z_L`` of shape ``(B, nL, n)`` (a buffer: ``dz[-1]``)."""
        model = self.model
        weights = self.weights
        keep = 1.0 - model.dropout
        last = len(weights) - 1
        for i, w in enumerate(weights):
            if i == last:
                return torch.bmm(w, self.inputs[i], out=self.dz[i])
            out = self.acts[i + 1] if dropout_generators is None else self.pre_dropout[i + 1]
            torch.bmm(w, self.inputs[i], out=out)
            _activate_(model.activations[i], out)
            if dropout_generators is not None:
                mask = self.masks[i + 1]
                for b, g in enumerate(dropout_generators):
                    mask[b].bernoulli_(keep, generator=g)
                mask.div_(keep)
                torch.mul(out, mask, out=self.acts[i + 1])
        raise AssertionError("unreachable")  # pragma: no cover

    def backward(
        self, target: torch.Tensor, grads: Sequence[torch.Tensor] | None, lr: float = 0.0,
        with_loss: bool = False,
    ) -> torch.Tensor | None:  # fmt: skip
        """Gradients of the mean loss after :meth:`forward` (which left ``Z_L`` in ``dz[-1]``).

        ``target``: ``(B or 1, nL, n)`` (one-hot for softmax). With ``grads`` (tensors shaped
        like the weights), writes ``dLoss/dW`` there; without, applies ``W -= lr dLoss/dW``
        fused into the products. Returns the per-member loss ``(B,)`` when ``with_loss``.
        """
        model = self.model
        output = model.output
        z = self.dz[-1]
        n_out = z.shape[1]
        loss = None
        if with_loss:
            loss = _stacked_loss(output, z, target)
        if output == "sigmoid":
            z.sigmoid_().sub_(target)
            scale = 1.0 / (self.n * n_out)
        elif output == "softmax":
            torch.softmax(z, dim=1, out=z).sub_(target)
            scale = 1.0 / self.n
        else:
            z.sub_(target)
            scale = 2.0 / (self.n * n_out)
        weights = self.weights
        dropout = model.dropout
        for i in range(len(weights) - 1, -1, -1):
            dz = self.dz[i]
            if i > 0:
                torch.bmm(self.weights_t[i], dz, out=self.da[i])
            if grads is None:
                weights[i].baddbmm_(dz, self.inputs_t[i], alpha=-lr * scale)
            else:
                torch.baddbmm(grads[i], dz, self.inputs_t[i], beta=0.0, alpha=scale, out=grads[i])
            if i > 0:
                da = self.da[i]
                if dropout:
                    da.mul_(self.masks[i])
                    out = self.pre_dropout[i]
                else:
                    out = self.acts[i]
                self.backwards[i - 1](da, out, self.dz[i - 1])
        return loss

    def fused_gd_plan(
        self, target: torch.Tensor, lr: float, shared_input: bool = False
    ) -> list[Any]:
        """One full gradient-descent step as a list of zero-argument calls (no dropout).

        The same ops as ``forward(); backward(target, None, lr)``, bound once so that a step
        costs only the kernels: the per-op Python overhead matters for nets this small.
        ``shared_input``: every member sees the same batch (``set_inputs`` with an
        ``(n, n0)`` tensor), so the first layer of all members is one ``mm`` of the stacked
        weights ``(B * n1, n0 + 1)`` with the data instead of ``B`` products.
        """
        if self.model.dropout:
            raise ValueError("fused_gd_plan does not cover dropout")
        model, weights, inputs, acts = self.model, self.weights, self.inputs, self.acts
        last = len(weights) - 1
        plan: list[Any] = []
        for i, w in enumerate(weights):
            out = self.dz[i] if i == last else acts[i + 1]
            first_act = None if i == last else model.activations[i]
            if i == 0 and shared_input and (i == last or first_act in _INTO):
                b, rows, cols = w.shape
                flat = torch.empty(b * rows, self.n, dtype=w.dtype)
                plan.append(partial(torch.mm, w.view(b * rows, cols), inputs[0][0], out=flat))
                if i == last:
                    plan.append(partial(out.copy_, flat.view(b, rows, self.n)))
                else:
                    plan.append(partial(_INTO[first_act], flat.view(b, rows, self.n), out=out))
                continue
            plan.append(partial(torch.bmm, w, inputs[i], out=out))
            if i < last:
                call = _INPLACE[model.activations[i]](out)
                if call is not None:
                    plan.append(call)
        z, n_out = self.dz[-1], self.dz[-1].shape[1]
        if model.output == "sigmoid":
            plan += [z.sigmoid_, partial(z.sub_, target)]
            scale = 1.0 / (self.n * n_out)
        elif model.output == "softmax":
            plan += [partial(torch.softmax, z, 1, out=z), partial(z.sub_, target)]
            scale = 1.0 / self.n
        else:
            plan.append(partial(z.sub_, target))
            scale = 2.0 / (self.n * n_out)
        for i in range(last, -1, -1):
            if i > 0:
                plan.append(partial(torch.bmm, self.weights_t[i], self.dz[i], out=self.da[i]))
            plan.append(partial(weights[i].baddbmm_, self.dz[i], self.inputs_t[i],
                                alpha=-lr * scale))  # fmt: skip
            if i > 0:
                name = model.activations[i - 1]
                if name in _BACKWARD_OPS:
                    op, extra = _BACKWARD_OPS[name]
                    plan.append(partial(op, self.da[i], acts[i], *extra, grad_input=self.dz[i - 1]))
                else:
                    plan.append(partial(self.dz[i - 1].copy_, self.da[i]))
        return plan


def _activate_(name: str, tensor: torch.Tensor) -> None:
    if name in _INPLACE:
        call = _INPLACE[name](tensor)
        if call is not None:
            call()
    else:
        tensor.copy_(_FUNCTIONAL[name](tensor))


def _stacked_loss(output: str, z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-member mean loss of logits ``z`` (B, nL, n) against ``target`` (B or 1, nL, n)."""
    if output == "sigmoid":
        return (torch.nn.functional.softplus(z) - target * z).mean((1, 2))
    if output == "softmax":
        return (torch.logsumexp(z, dim=1) - (target * z).sum(1)).mean(1)
    return (z - target).pow(2).mean((1, 2))
