"""Optional sections of the doctor's report: SPP, Jacobian spectrum and coordinate check.

:func:`initlab.diagnose` measures every layer in one forward and one backward pass. Three
deeper checks cost more and are asked for by name (``diagnose(..., sections=[...])``,
``initlab diagnose --sections spp,jacobian,coord`` or ``--deep``):

- ``spp`` (:func:`initlab.doctor.spp.spp`): one more forward pass without gradients, with hooks
  at every residual addition: channel squared mean, channel variance and branch variance per
  block, and whether the residual stream's variance grows (NF-ResNets' signal propagation
  plot). Applies to residual networks; a model without residual additions gets an ``n/a``
  section;
- ``jacobian`` (:func:`initlab.doctor.jacobian.jacobian_spectrum`): one forward and
  ``2 * steps * probes`` backward passes (40 x 3 by default) for the singular values of the
  input-output Jacobian: isometric or not, with max / median / spread. Needs floating-point
  inputs (a model fed token ids gets ``n/a``);
- ``coord`` (:func:`initlab.doctor.coord_check.coord_check`): needs a ``factory(width)``; builds
  the model at each of ``widths`` and trains it a few steps: which layers' scale depends on
  the width (muP's coordinate check).

Each :class:`Section` states its verdict, a status (``ok``, ``warning``, ``unhealthy`` or
``n/a``) and what to change (``advice``). The default diagnosis computes none of them, so its
cost stays one forward and one backward pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from torch import nn

from initlab._core.validation import check_choice

SectionName = Literal["spp", "jacobian", "coord"]
SECTIONS: tuple[str, ...] = ("spp", "jacobian", "coord")
TITLES = {
    "spp": "signal propagation (residual blocks, NF-ResNets' SPP)",
    "jacobian": "Jacobian spectrum (dynamical isometry)",
    "coord": "coordinate check (width dependence, muP)",
}
Status = Literal["ok", "warning", "unhealthy", "n/a"]
DEFAULT_WIDTHS: tuple[int, ...] = (32, 64, 128, 256)


@dataclass
class Section:
    """One deeper check in the doctor's report: its verdict, status and advice, and the full
    result (:class:`~initlab.doctor.spp.SPP`, :class:`~initlab.doctor.jacobian.JacobianSpectrum`
    or :class:`~initlab.doctor.coord_check.CoordCheck`; ``None`` when ``n/a``)."""

    name: SectionName
    status: Status
    verdict: str
    advice: list[str] = field(default_factory=list)
    result: Any = None

    @property
    def title(self) -> str:
        return TITLES[self.name]

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "status": self.status,
            "verdict": self.verdict,
            "advice": list(self.advice),
            "result": None if self.result is None else self.result.to_dict(),
        }

    def __str__(self) -> str:
        head = f"{self.title} [{self.status}]"
        if self.result is None:
            return "\n".join([head, f"verdict: {self.verdict}", *self.advice])
        return f"{head}\n{self.result}"


def check_sections(sections: str | Sequence[str] | None) -> list[str]:
    """``sections`` as a list of known names (``"all"``: every one); a clear error naming the
    valid ones and the closest match otherwise."""
    if sections is None:
        return []
    names = [s.strip() for s in sections.split(",")] if isinstance(sections, str) else sections
    if list(names) == ["all"]:
        return list(SECTIONS)
    result: list[str] = []
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"sections must be names (str); got {type(name).__name__}")
        check_choice("sections", name, SECTIONS)
        if name not in result:
            result.append(name)
    return result


def _status(name: str, verdict: str) -> str:
    """The section's status from its verdict's wording (see each module's ``_verdict``)."""
    if name == "spp":
        if verdict.startswith("no residual"):
            return "n/a"
        if verdict.startswith("healthy"):
            return "ok"
        return "unhealthy" if verdict.startswith("unhealthy") else "warning"
    if name == "jacobian":
        return "ok" if verdict.startswith("isometric") else "unhealthy"
    return "ok" if verdict.startswith("width-independent") else "unhealthy"


def run_sections(
    model: nn.Module,
    inputs: Any,
    names: Sequence[str],
    *,
    factory: Callable[[int], nn.Module] | None = None,
    widths: Sequence[int] = DEFAULT_WIDTHS,
    seed: int = 0,
) -> dict[str, Section]:
    """Compute the sections ``names`` (see the module docstring) on the diagnosed inputs."""
    found: dict[str, Section] = {}
    for name in names:
        if name == "spp":
            found[name] = _spp_section(model, inputs, seed)
        elif name == "jacobian":
            found[name] = _jacobian_section(model, inputs, seed)
        else:
            if factory is None:
                raise ValueError(
                    "the coord section needs factory=a function of the width that builds the "
                    "model (e.g. lambda width: MyNet(width=width)); got none"
                )
            found[name] = _coord_section(factory, widths, inputs, seed)
    return found


def _spp_section(model: nn.Module, inputs: Any, seed: int) -> Section:
    from initlab.doctor.spp import spp

    result = spp(model, inputs, seed=seed)
    status = _status("spp", result.verdict)
    kept = None if status == "n/a" else result
    return Section("spp", status, result.verdict, result.advice, kept)


def _jacobian_section(model: nn.Module, inputs: Any, seed: int) -> Section:
    from initlab.doctor.jacobian import _float_inputs, jacobian_spectrum

    if not _float_inputs(inputs):
        reason = (
            "the inputs hold no floating-point tensor (token ids): the Jacobian is taken with "
            "respect to float inputs; call initlab.jacobian_spectrum on the embeddings"
        )
        return Section("jacobian", "n/a", reason)
    spectrum = jacobian_spectrum(model, inputs, seed=seed)
    status = _status("jacobian", spectrum.verdict)
    return Section("jacobian", status, spectrum.verdict, spectrum.advice, spectrum)


def _coord_section(
    factory: Callable[[int], nn.Module], widths: Sequence[int], inputs: Any, seed: int
) -> Section:
    from initlab.doctor.coord_check import coord_check

    check = coord_check(factory, widths, inputs, seed=seed)
    return Section("coord", _status("coord", check.verdict), check.verdict, check.advice, check)
