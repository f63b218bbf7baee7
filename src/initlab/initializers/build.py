"""``build``: construct a model without its default init, then initialize it exactly once.

Constructing ``nn.Linear(8192, 8192)`` runs PyTorch's default init (``kaiming_uniform_``) on
64M numbers that :func:`initlab.init_model` then overwrites. :func:`build` instead

1. calls ``factory()`` under ``torch.device("meta")``: parameters and buffers get shapes and
   dtypes but no storage, and no default init work is done (nor any global RNG draw);
2. casts floating parameters and buffers to ``dtype`` (free on the meta device);
3. allocates real, uninitialized storage on ``device`` with ``Module.to_empty`` and re-ties
   parameters that the factory shared between modules (``to_empty`` unties them);
4. gives buffers their real values: normalization layers' running statistics by
   ``reset_running_stats()`` (mean 0, var 1, batches 0); any other buffer by running
   ``factory()`` once more on the CPU, under a forked global RNG seeded from ``seed``, with every
   large parameter sent to the meta device as it is registered (so only buffers and small
   parameters take memory), and copying the buffers from that template;
5. every 1-D parameter (biases, norm scales) gets its constructor's value from that template,
   so that ``init_model`` keeps by value exactly what it keeps on an eagerly built model (a
   zero-init residual norm scale, a time-step bias); parameters that ``init_model`` keeps
   (no known layer role: layer-scale ``gamma``, ViT's ``class_token`` and ``pos_embedding``,
   ``"keep"`` rules, PReLU slopes, frozen parameters) get the value their
   constructor gave them, from the same template, so every constant a constructor sets
   survives; a kept parameter too large for the template (over ``_TEMPLATE_NUMEL`` elements, a
   ``"keep"`` rule on a big weight) gets its module's ``reset_parameters()`` instead, drawn
   with the global RNG temporarily seeded from ``seed`` and the module name (then restored). A
   parameter with neither is an error that names it. This runs before step 6, which
   overwrites the module's other parameters;
6. runs :func:`initlab.init_model` (same scheme, rules, bias policy and seed): every other
   parameter is written once, so peak memory is the parameters' bytes plus small change.

The result equals ``init_model(factory().to(dtype).to(device), scheme, seed=seed)`` for every
parameter that ``init_model`` initializes and for every buffer; kept parameters have their
constructor's values (exactly, for constants; for random ones, the same distribution drawn from
a seeded RNG).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from initlab._core.rng import as_seed, derive_seed, seeded_global_rng
from initlab._core.validation import check_choice
from initlab.initializers.apply import RNG, InitReport, Layouts, Rules, _kept_parameters, init_model
from initlab.initializers.registry import Spec

_DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}


def _check_device(device: Any) -> torch.device:
    if not isinstance(device, str | torch.device):
        raise TypeError(
            f"device must be a str or torch.device such as 'cpu' or 'cuda:0'; got {device!r}"
        )
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise ValueError(
            f"device must be a torch device such as 'cpu' or 'cuda:0'; got {device!r} ({error})"
        ) from None
    if resolved.type == "meta":
        raise ValueError("device='meta' has no storage to initialize; use 'cpu' or 'cuda'")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but CUDA is not available on this machine")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    return resolved


def _check_dtype(dtype: Any) -> torch.dtype | None:
    if dtype is None:
        return None
    if isinstance(dtype, torch.dtype):
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating dtype ({', '.join(_DTYPES)}); got {dtype}")
        return dtype
    if isinstance(dtype, str):
        return _DTYPES[check_choice("dtype", dtype.removeprefix("torch."), tuple(_DTYPES))]
    raise TypeError(
        f"dtype must be None, a torch.dtype or one of {', '.join(_DTYPES)}; got {dtype!r}"
    )


# Thread-local switch read by the patched register_parameter (other threads are unaffected).
_template = threading.local()
_patch_lock = threading.Lock()
_patch_users = 0
_original_register_parameter = nn.Module.register_parameter


# Parameters up to this many elements keep their values in the template (kept parameters are
# small: layer scales, class tokens, position embeddings); larger ones go to meta.
_TEMPLATE_NUMEL = 1 << 22


def _register_parameter(self: nn.Module, name: str, param: nn.Parameter | None) -> None:
    if param is not None and getattr(_template, "depth", 0) and param.numel() > _TEMPLATE_NUMEL:
        param = nn.Parameter(param.detach().to("meta"), requires_grad=param.requires_grad)
    _original_register_parameter(self, name, param)


@contextmanager
def _parameters_on_meta() -> Iterator[None]:
    """Within this thread, every parameter registered on a module is moved to meta."""
    global _patch_users
    with _patch_lock:
        if _patch_users == 0:
            nn.Module.register_parameter = _register_parameter  # type: ignore[method-assign]
        _patch_users += 1
    _template.depth = getattr(_template, "depth", 0) + 1
    try:
        yield
    finally:
        _template.depth -= 1
        with _patch_lock:
            _patch_users -= 1
            if _patch_users == 0:
                nn.Module.register_parameter = _original_register_parameter  # type: ignore[method-assign]


def _make(factory: Callable[[], nn.Module]) -> nn.Module:
    model = factory()
    if not isinstance(model, nn.Module):
        raise TypeError(f"factory() must return a torch.nn.Module; got {type(model).__name__}")
    return model


def _template_model(
    factory: Callable[[], nn.Module], dtype: torch.dtype | None, seed: int
) -> nn.Module:
    """``factory()`` on the CPU with only buffers and small parameters materialized."""
    # (on the CPU whatever default device the caller set)
    with (
        seeded_global_rng(derive_seed(seed, "template")),
        _parameters_on_meta(),
        torch.device("cpu"),
    ):
        template = _make(factory)
    return template if dtype is None else template.to(dtype=dtype)


def _restore_buffers(model: nn.Module, template: Callable[[], nn.Module]) -> None:
    reset: set[str] = set()
    for module_name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats:
            module.reset_running_stats()
            reset.update(
                f"{module_name}.{n}" if module_name else n
                for n, _ in module.named_buffers(recurse=False)
            )
    others = [name for name, _ in model.named_buffers() if name not in reset]
    if not others:
        return
    values = dict(template().named_buffers())
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name in others:
                buffer.copy_(values[name])


def _retie(model: nn.Module, ties: list[tuple[str, str]]) -> None:
    for alias, source in ties:
        owner_name, _, attribute = alias.rpartition(".")
        owner = model.get_submodule(owner_name)
        setattr(owner, attribute, model.get_parameter(source))


def _copy_small_parameters(model: nn.Module, template: Callable[[], nn.Module]) -> None:
    """Give every 1-D floating parameter (biases, norm scales) its constructor's value."""
    small = [n for n, p in model.named_parameters() if p.dim() <= 1 and p.is_floating_point()]
    if not small:
        return
    values = dict(template().named_parameters())
    with torch.no_grad():
        for name in small:
            value = values.get(name)
            if value is not None and value.device.type != "meta":
                model.get_parameter(name).copy_(value)


def _defaults_for_kept(
    model: nn.Module, kept: list[str], seed: int, template: Callable[[], nn.Module]
) -> None:
    owners: dict[str, list[str]] = {}
    values = dict(template().named_parameters()) if kept else {}
    with torch.no_grad():
        for name in list(kept):
            value = values.get(name)
            if value is not None and value.device.type != "meta":
                model.get_parameter(name).copy_(value)
                kept.remove(name)
    for name in kept:
        owners.setdefault(name.rpartition(".")[0], []).append(name)
    for owner_name, names in owners.items():
        module = model.get_submodule(owner_name)
        reset = getattr(module, "reset_parameters", None)
        if not callable(reset):
            them = "them" if len(names) > 1 else "it"
            raise ValueError(
                f"build cannot give {', '.join(names)} a value: init_model keeps {them}, "
                f"{them} {'are' if len(names) > 1 else 'is'} too large to copy from a template "
                f"construction and {type(module).__name__} has no reset_parameters(); "
                "construct the model eagerly and call init_model, or name "
                f"{them} in rules with the scheme your model needs"
            )
        devices = {p.device for p in module.parameters()}
        generator_seed = derive_seed(seed, "reset_parameters", owner_name)
        with seeded_global_rng(generator_seed, devices), torch.no_grad():
            reset()


def build(
    factory: Callable[[], nn.Module],
    scheme: Spec = "he_normal",
    *,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
    seed: int | None = None,
    bias: Spec = "zeros",
    rules: Rules = None,
    example: Any = None,
    layouts: Layouts = None,
    rng: RNG = "counter",
) -> tuple[nn.Module, InitReport]:
    """Construct ``factory()`` on ``device`` with every parameter initialized once by ``scheme``.

    ``factory``: a zero-argument callable returning an ``nn.Module`` (a class, a lambda, a
    ``functools.partial``). ``scheme``, ``bias``, ``rules``, ``seed``, ``rng``: as in
    :func:`initlab.init_model`, whose report is returned; so are ``example`` (an input, to find
    activations from one forward pass of the built model) and ``layouts``. ``dtype``: floating
    dtype for the floating parameters and buffers (``torch.bfloat16`` or ``"bfloat16"``), as
    ``model.to(dtype)`` would give; ``None`` keeps the factory's dtypes.

    No default init runs and parameters are written once, so building is faster than
    ``init_model(factory())`` and peak memory is about the parameters' bytes. Values equal those
    of ``init_model(factory().to(dtype).to(device), scheme, seed=seed)``.

    >>> import torch.nn as nn
    >>> model, report = build(lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU()), seed=0)
    >>> round(report["0.weight"].target_std, 4)  # He: sqrt(2 / 4)
    0.7071
    """
    if not callable(factory):
        raise TypeError(
            f"factory must be a callable that returns an nn.Module (e.g. a class or lambda); "
            f"got {type(factory).__name__}"
        )
    target = _check_device(device)
    cast = _check_dtype(dtype)
    seed = as_seed(seed)
    with torch.device("meta"):
        model = _make(factory)
    if cast is not None:
        model = model.to(dtype=cast)
    first: dict[int, str] = {}
    ties: list[tuple[str, str]] = []
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in first:
            ties.append((name, first[id(param)]))
        else:
            first[id(param)] = name
    model.to_empty(device=target)
    _retie(model, ties)
    made: list[nn.Module] = []

    def template() -> nn.Module:  # built at most once, and only when needed
        if not made:
            made.append(_template_model(factory, cast, seed))
        return made[0]

    _restore_buffers(model, template)
    # init_model decides some keeps by value (a zero-init residual norm scale, a structured
    # bias): it must see the constructor's values of the small parameters, not to_empty's.
    _copy_small_parameters(model, template)
    # Kept parameters first: init_model reads some of them (a PReLU slope sets the gain of the
    # layer before it) and overwrites whatever else reset_parameters() touched.
    _defaults_for_kept(model, _kept_parameters(model, scheme, bias, rules), seed, template)
    report = init_model(
        model,
        scheme,
        bias=bias,
        rules=rules,
        seed=seed,
        example=example,
        layouts=layouts,
        rng=rng,
    )
    return model, report
