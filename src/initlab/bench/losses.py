"""Losses and accuracy from logits, for one model ``(N, n_out)`` or stacked members.

``m`` = examples in the batch, ``z`` the logits:

- ``output="sigmoid"``: ``mean(softplus(z) - y z)`` (binary cross-entropy from logits);
- ``"softmax"``: ``mean(logsumexp(z) - z_y)``;
- ``"linear"``: ``mean((z - y)^2)``.

Accuracy: ``z > 0`` for one sigmoid output (``z > 0.5`` for one linear output), else argmax.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

OUTPUTS = ("sigmoid", "softmax", "linear")


def targets(output: str, y: torch.Tensor, n_out: int, dtype: torch.dtype) -> torch.Tensor:
    """Class labels ``y`` (N,) as the loss's targets: (N, n_out) floats or (N,) indices."""
    n_classes = int(y.max()) + 1 if y.numel() else 0
    if output == "softmax":
        if n_classes > n_out:
            raise ValueError(f"labels go up to {n_classes - 1} but the model has {n_out} outputs")
        return y.long()
    if n_out == 1:
        if n_classes > 2:
            raise ValueError(
                f"{n_classes} classes need a softmax output with {n_classes} units; the model "
                f"has 1 {output} output"
            )
        return y.to(dtype).unsqueeze(1)
    if n_classes > n_out:
        raise ValueError(f"labels go up to {n_classes - 1} but the model has {n_out} outputs")
    return F.one_hot(y.long(), n_out).to(dtype)


def loss_from_logits(output: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean loss of ``logits`` (N, n_out) against ``target`` (see the module docstring)."""
    if output == "sigmoid":
        return F.binary_cross_entropy_with_logits(logits, target)
    if output == "softmax":
        return F.cross_entropy(logits, target)
    return F.mse_loss(logits, target)


def accuracy(output: str, logits: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``y`` predicted right (``nan`` for no examples)."""
    if y.numel() == 0:
        return float("nan")
    if logits.shape[-1] == 1:
        threshold = 0.5 if output == "linear" else 0.0
        predicted = (logits[..., 0] > threshold).long()
    else:
        predicted = logits.argmax(-1)
    return float((predicted == y).double().mean())


def stacked_accuracy(output: str, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-member accuracy of logits ``z`` (B, n_out, n) against labels ``y`` (n,)."""
    if z.shape[1] == 1:
        predicted = (z[:, 0, :] > (0.5 if output == "linear" else 0.0)).long()
    else:
        predicted = z.argmax(1)
    return (predicted == y).double().mean(1)


__all__ = ["OUTPUTS", "accuracy", "loss_from_logits", "stacked_accuracy", "targets"]
