"""Losses for gradient checks: the built-in names and the course's L2 cost.

``"bce"`` (sigmoid cross-entropy on logits, the course's cost), ``"cross_entropy"`` and
``"mse"``; :func:`with_l2` adds ``lam / (2 m) * sum ||W||^2`` over the weights.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from initlab._core.validation import check_choice, check_number
from initlab.gradient_check.model_io import model_loss, predictions

LOSSES = ("bce", "cross_entropy", "mse", "model")


class L2Loss(nn.Module):
    """``loss_fn(outputs, targets) + lam / (2 m) * sum_l ||W_l||_F^2`` (the course's L2 cost).

    ``m`` is the number of examples (``outputs.shape[0]``); the sum runs over the *weights*
    only, i.e. parameters with two or more dimensions (Linear/Conv weights), not biases or
    normalization scales. The gradient adds ``lam / m * W`` to each weight's gradient.
    Called with ``params`` (a dict of tensors by parameter name, as :func:`gradcheck` does
    for its perturbed float64 copies) the penalty is computed from those, else from the
    model's current parameters.
    """

    def __init__(self, loss_fn: Callable[..., torch.Tensor], model: nn.Module, lam: float):
        super().__init__()
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable; got {type(loss_fn).__name__}")
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        self.loss_fn = resolve_loss(loss_fn)
        self.lam = float(check_number("lam", lam, minimum=0.0))
        self.weight_names = tuple(n for n, p in model.named_parameters() if p.dim() >= 2)
        self._model = [model]  # a list, so the model is not registered as a submodule

    def forward(
        self,
        outputs: torch.Tensor,
        targets: Any,
        params: Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        base = _call_loss(self.loss_fn, outputs, targets, params)
        if params is None:
            params = dict(self._model[0].named_parameters())
        prediction = predictions(outputs)
        m = prediction.shape[0] if prediction.dim() > 0 else 1
        penalty = sum(params[n].pow(2).sum() for n in self.weight_names)
        return base + self.lam / (2 * m) * penalty

    def extra_repr(self) -> str:
        return f"lam={self.lam}, weights={list(self.weight_names)}"


def with_l2(loss_fn: Callable[..., torch.Tensor] | str, model: nn.Module, lam: float) -> L2Loss:
    """``loss_fn`` plus the course's L2 term ``lam / (2 m) * sum ||W||^2`` over ``model``'s
    weights (parameters with >= 2 dims; biases are not penalized); ``m`` = batch size.

    ``loss_fn``: a callable ``(outputs, targets) -> scalar`` or one of ``"bce"`` (sigmoid
    cross-entropy on logits), ``"cross_entropy"``, ``"mse"``.

    >>> import torch
    >>> net = torch.nn.Linear(3, 1)
    >>> loss = with_l2("mse", net, lam=0.1)
    >>> x, y = torch.ones(4, 3), torch.zeros(4, 1)
    >>> bool(torch.isclose(loss(net(x), y), torch.nn.functional.mse_loss(net(x), y)
    ...      + 0.1 / 8 * net.weight.pow(2).sum()))
    True
    """
    return L2Loss(resolve_loss(loss_fn), model, lam)


def _bce(outputs: Any, targets: Any) -> torch.Tensor:
    logits = predictions(outputs)
    return F.binary_cross_entropy_with_logits(logits, _like("bce", targets, logits))


def _mse(outputs: Any, targets: Any) -> torch.Tensor:
    prediction = predictions(outputs)
    return F.mse_loss(prediction, _like("mse", targets, prediction))


def _cross_entropy(outputs: Any, targets: Any) -> torch.Tensor:
    """Cross-entropy of logits ``(batch, classes)`` or sequence logits ``(batch, tokens,
    vocab)`` against class indices ``(batch,)`` / ``(batch, tokens)`` (``-100`` ignored) or
    class probabilities of the logits' shape."""
    logits = predictions(outputs)
    targets = _present("cross_entropy", targets)
    if targets.is_floating_point() and targets.shape == logits.shape:
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                               targets.reshape(-1, logits.shape[-1]).to(logits.dtype))  # fmt: skip
    if targets.is_floating_point():
        if not bool((targets == targets.round()).all()):
            raise ValueError(
                "cross_entropy targets must be class indices or probabilities of the logits' "
                f"shape {tuple(logits.shape)}; got non-integer values of shape "
                f"{tuple(targets.shape)}"
            )
        targets = targets.long()
    if logits.dim() >= 2 and targets.numel() * logits.shape[-1] == logits.numel():
        # (batch, classes) or (batch, tokens, vocab): classes on the last axis
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    raise ValueError(
        f"cross_entropy needs one class index per row of logits: logits of shape "
        f"{tuple(logits.shape)} (classes on the last axis) and targets of shape "
        f"{tuple(targets.shape)} do not match"
    )


def _model(outputs: Any, targets: Any) -> torch.Tensor:
    return model_loss(outputs)


def _present(name: str, targets: Any) -> torch.Tensor:
    if targets is None:
        raise ValueError(
            f"loss_fn={name!r} needs targets; got None. Pass the targets (labels) as the "
            "fourth argument, or loss_fn='model' for a model that returns its own loss"
        )
    try:
        return torch.as_tensor(targets)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(
            f"targets for loss_fn={name!r} must be a tensor or an array; got "
            f"{type(targets).__name__}"
        ) from None


def _like(name: str, targets: Any, outputs: torch.Tensor) -> torch.Tensor:
    targets = _present(name, targets).to(device=outputs.device, dtype=outputs.dtype)
    if targets.shape != outputs.shape:
        if targets.numel() != outputs.numel():
            raise ValueError(
                f"loss_fn={name!r}: targets of shape {tuple(targets.shape)} do not match the "
                f"model's outputs of shape {tuple(outputs.shape)}"
            )
        targets = targets.reshape(outputs.shape)
    return targets


_LOSS_FUNCTIONS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "bce": _bce,
    "cross_entropy": _cross_entropy,
    "mse": _mse,
    "model": _model,
}


def resolve_loss(loss_fn: Callable[..., torch.Tensor] | str) -> Callable[..., torch.Tensor]:
    """A loss callable from a callable or a name: ``bce`` (sigmoid cross-entropy on logits),
    ``cross_entropy`` (also on sequence logits), ``mse``, or ``model`` (the loss the model
    returns itself, as a Hugging Face model does when given labels)."""
    if isinstance(loss_fn, str):
        return _LOSS_FUNCTIONS[check_choice("loss_fn", loss_fn, LOSSES)]
    if not callable(loss_fn):
        raise TypeError(
            f"loss_fn must be a callable (outputs, targets) -> scalar or one of "
            f"{', '.join(LOSSES)}; got {type(loss_fn).__name__}"
        )
    return loss_fn


def _takes_params(loss_fn: Callable[..., Any]) -> bool:
    try:
        signature = inspect.signature(loss_fn)
    except (TypeError, ValueError):
        return False
    return "params" in signature.parameters


def _call_loss(
    loss_fn: Callable[..., torch.Tensor],
    outputs: Any,
    targets: Any,
    params: Mapping[str, torch.Tensor] | None,
) -> torch.Tensor:
    if params is not None and _takes_params(loss_fn):
        return loss_fn(outputs, targets, params=params)
    return loss_fn(outputs, targets)
