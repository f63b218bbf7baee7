"""How a gradient check calls a model and reads what comes back.

Inputs: a tensor, a tuple of positional arguments, or a dict of keyword arguments
(``model(**batch)``, the Hugging Face way). Outputs: a tensor, a tuple or list (the first
element is the prediction), a dict, or a ``ModelOutput``-like object; predictions are found by
name (``logits``, then ``prediction_logits``, ``last_hidden_state``), the model's own loss by
``loss``. Floating-point data is copied to float64; integer token ids stay as they are.

Randomness: ``dropout="off"`` turns off every train-mode-only random step: each module except
the normalisations that use batch statistics (batch norm, instance norm with running stats) is
switched to eval mode in the check's copy, so ``nn.Dropout`` and its cousins, functional
``F.dropout(x, p, training=self.training)`` and Hugging Face's attention dropout
(``dropout=0.0 if not self.training else ...``) all become the identity, while batch norm keeps
normalising with the batch, as it trains.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

_PREDICTIONS = ("logits", "prediction_logits", "last_hidden_state", "pooler_output")
_BATCH_STATISTICS = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)


def split_inputs(inputs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``(args, kwargs)`` for calling the model: a dict is keyword arguments, a tuple or list
    positional ones, anything else the single positional argument."""
    if isinstance(inputs, Mapping):
        if not all(isinstance(k, str) for k in inputs):
            raise TypeError(f"a dict of inputs needs string keys; got {list(inputs)!r}")
        args, kwargs = (), dict(inputs)
    elif isinstance(inputs, tuple | list):
        args, kwargs = tuple(inputs), {}
    else:
        args, kwargs = (inputs,), {}
    if not any(isinstance(v, torch.Tensor) for v in (*args, *kwargs.values())):
        raise TypeError(
            "inputs must be a tensor, a tuple of positional inputs or a dict of keyword "
            f"inputs holding at least one tensor; got {type(inputs).__name__}"
        )
    return args, kwargs


def to64(value: Any) -> Any:
    """Floating-point tensors (also inside tuples, lists and dicts) as float64, detached."""
    if isinstance(value, torch.Tensor):
        return value.detach().to(torch.float64) if value.is_floating_point() else value.detach()
    if isinstance(value, tuple | list):
        return type(value)(to64(v) for v in value)
    if isinstance(value, Mapping):
        return {k: to64(v) for k, v in value.items()}
    return value


def predictions(outputs: Any) -> torch.Tensor:
    """The prediction tensor in a model's outputs: the tensor itself, the first element of a
    tuple, or the first of ``logits``, ``prediction_logits``, ``last_hidden_state``,
    ``pooler_output`` found by name (key or attribute) in a dict or ``ModelOutput``."""
    if isinstance(outputs, torch.Tensor):
        return outputs
    for name in _PREDICTIONS:
        found = _named(outputs, name)
        if isinstance(found, torch.Tensor):
            return found
    if isinstance(outputs, tuple | list) and outputs:
        return predictions(outputs[0])
    keys = list(outputs) if isinstance(outputs, Mapping) else []
    raise TypeError(
        f"cannot find the predictions in the model's output ({type(outputs).__name__}"
        + (f" with keys {keys}" if keys else "")
        + f"); expected a tensor, a tuple, or one of {', '.join(_PREDICTIONS)} by name. Pass a "
        "loss_fn(outputs, targets) that picks them"
    )


def model_loss(outputs: Any) -> torch.Tensor:
    """The loss a model computed itself (``outputs.loss`` / ``outputs["loss"]``)."""
    found = _named(outputs, "loss")
    if not isinstance(found, torch.Tensor):
        raise TypeError(
            f"loss_fn='model' needs the model to return its loss (a 'loss' entry, as Hugging "
            f"Face models do when given labels); got {type(outputs).__name__} without one"
        )
    return found


def _named(outputs: Any, name: str) -> Any:
    if isinstance(outputs, Mapping):
        return outputs.get(name)
    if isinstance(outputs, torch.Tensor | tuple | list):
        return None
    return getattr(outputs, name, None)


_RANDOM_CLASSES = ("DropPath", "StochasticDepth", "DropBlock", "Dropout")
_PROBABILITIES = ("p", "drop_prob", "drop_rate", "prob")


def random_modules(model: nn.Module) -> list[str]:
    """Modules whose training mode makes the loss random, found by type: dropout (any ``p >
    0``), RReLU, drop-path and stochastic depth (timm's ``DropPath`` and ``DropBlock``,
    torchvision's ``StochasticDepth``, or any class so named, with a non-zero ``p``,
    ``drop_prob`` or ``drop_rate``), and modules configured with a non-zero attention or
    hidden dropout probability. :func:`changing_modules` finds the others by behaviour."""
    found = []
    for name, m in model.named_modules():
        if not m.training:
            continue
        label = name or type(m).__name__
        if (isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0) or isinstance(m, nn.RReLU):
            found.append(label)
        elif any(word in type(m).__name__ for word in _RANDOM_CLASSES):
            chances = [getattr(m, a) for a in _PROBABILITIES
                       if isinstance(getattr(m, a, None), int | float)]  # fmt: skip
            if not chances or any(c > 0 for c in chances):
                found.append(label)
        elif any(
            isinstance(getattr(m, attr, None), float) and getattr(m, attr) > 0
            for attr in ("attention_dropout", "dropout", "attn_dropout", "dropout_p")
        ):
            found.append(label)
    return found


def changing_modules(
    model: nn.Module, args: tuple, kwargs: dict, calls: int = 2, seed: int = 0
) -> list[str]:
    """Modules in training mode whose output changes between calls on the same input, found
    by behaviour: one forward pass in which every such module, once it has run, is called
    ``calls - 1`` more times on a copy of its input (its own ``forward``, so hooks and
    children's replays stay out) and its outputs compared. The global RNG is forked and
    seeded with ``seed``, so the answer is the same every time; a module that draws rarely
    (drop-path at rate 0.1 on a batch of two gives the same output in two calls with
    probability about 0.67) can still slip through, which is why :func:`random_modules`
    knows them by type too. It costs about ``calls`` forward passes per level of nesting. Only the
    innermost such modules are named (their ancestors change because they do). ``model`` is
    the check's own copy (batch norm does not update running statistics)."""
    names = {m: name for name, m in model.named_modules() if m.training}
    if not names:
        return []
    found: list[str] = []
    inputs: dict[nn.Module, list[tuple[tuple, dict]]] = {}
    replaying = [False]

    def keep(module: nn.Module, a: tuple, kw: dict) -> None:
        if not replaying[0]:
            inputs.setdefault(module, []).append((_cloned(a), _cloned(kw)))

    def compare(module: nn.Module, a: tuple, kw: dict, output: Any) -> None:
        if replaying[0] or not inputs.get(module):
            return
        a0, kw0 = inputs[module].pop()
        replaying[0] = True
        try:
            for _ in range(calls - 1):
                again = module.forward(*_cloned(a0), **_cloned(kw0))
                if not _same(_tensors(output), _tensors(again)):
                    name = names[module]
                    inner = [f for f in found if f.startswith(f"{name}.") or name == ""]
                    if not inner:
                        found.append(name or type(module).__name__)
                    break
        finally:
            replaying[0] = False

    handles = []
    for m in names:
        handles.append(m.register_forward_pre_hook(keep, with_kwargs=True))
        handles.append(m.register_forward_hook(compare, with_kwargs=True))
    try:
        with torch.no_grad(), KeepFloat64(), torch.random.fork_rng(devices=_devices(model)):
            torch.manual_seed(seed)
            model(*args, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    return found


def _cloned(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, tuple | list):
        return type(value)(_cloned(v) for v in value)
    if isinstance(value, dict):
        return {k: _cloned(v) for k, v in value.items()}
    return value


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, tuple | list):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, Mapping):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x.shape != y.shape or x.dtype != y.dtype:
            return False
        if x.is_floating_point():
            if not torch.allclose(x, y, rtol=1e-9, atol=1e-12, equal_nan=True):
                return False
        elif not torch.equal(x, y):
            return False
    return True


def _devices(model: nn.Module) -> list[int]:
    return sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})


def switch_off_randomness(model: nn.Module) -> None:
    """Eval mode for every module of ``model`` except those normalising with batch statistics
    (see the module docstring). ``model`` is the check's own copy."""
    for m in model.modules():
        if not isinstance(m, _BATCH_STATISTICS):
            m.training = False


_LOW = (torch.float32, torch.float16, torch.bfloat16)
_CASTS = {torch.Tensor.float: torch.float32, torch.Tensor.half: torch.float16,
          torch.Tensor.bfloat16: torch.bfloat16}  # fmt: skip


class KeepFloat64(torch.overrides.TorchFunctionMode):
    """Keeps a float64 forward in float64: casts of float64 tensors to a lower precision
    (``x.to(torch.float32)``, ``x.float()``, ``softmax(x, dtype=torch.float32)``) are skipped.

    Hugging Face norms compute their variance in float32 on purpose (``LlamaRMSNorm``,
    ``T5LayerNorm``); in a gradient check that rounding is a staircase in the weights, whose
    finite differences are noise of order ``1e-7 / eps`` and look like kinks everywhere.
    ``skipped`` counts the casts by name, for the report.
    """

    def __init__(self) -> None:
        super().__init__()
        self.skipped: dict[str, int] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        first = args[0] if args else None
        if isinstance(first, torch.Tensor) and first.dtype == torch.float64:
            if func in _CASTS:
                self._skip(f"Tensor.{func.__name__}()")
                return first
            if func is torch.Tensor.to:
                rest = [a for a in args[1:] if not isinstance(a, torch.dtype)]
                dtype = next((a for a in args[1:] if isinstance(a, torch.dtype)), None)
                dtype = kwargs.pop("dtype", dtype)
                if dtype in _LOW:
                    self._skip(f"Tensor.to({dtype})")
                    return func(first, *rest, **kwargs) if rest or kwargs else first
                if dtype is not None:
                    kwargs["dtype"] = dtype
                return func(first, *rest, **kwargs)
            if kwargs.get("dtype") in _LOW:
                self._skip(f"{getattr(func, '__name__', func)}(dtype={kwargs['dtype']})")
                kwargs["dtype"] = torch.float64
        return func(*args, **kwargs)

    def _skip(self, what: str) -> None:
        self.skipped[what] = self.skipped.get(what, 0) + 1


SMALL_BATCH = 16  # batch norm over this few values per channel is nearly degenerate


def batch_statistics_sizes(model: nn.Module, args: tuple, kwargs: dict) -> dict[str, int]:
    """For each normalisation that uses batch statistics (training mode): over how many values
    per channel it normalises (batch x spatial size), from one forward pass."""
    sizes: dict[str, int] = {}
    handles = []
    for name, m in model.named_modules():
        if isinstance(m, _BATCH_STATISTICS) and m.training:

            def hook(module: nn.Module, inputs: tuple, name: str = name) -> None:
                x = inputs[0]
                channels = x.shape[1] if x.dim() > 1 else 1
                per = x.numel() // max(channels, 1)
                if isinstance(module, nn.modules.instancenorm._InstanceNorm):
                    per //= max(x.shape[0], 1)
                sizes[name] = min(sizes.get(name, per), per)

            handles.append(m.register_forward_pre_hook(hook))
    if not handles:
        return sizes
    try:
        with torch.no_grad(), KeepFloat64():
            model(*args, **kwargs)
    except Exception:  # the check itself ran; a reason is optional
        return {}
    finally:
        for handle in handles:
            handle.remove()
    return sizes
