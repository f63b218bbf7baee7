"""Refuse work that cannot fit in memory, with the estimate, before allocating anything."""

from __future__ import annotations

import os


def total_memory() -> int | None:
    """Physical memory of this machine in bytes (``None`` where the OS does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # pragma: no cover - non-POSIX
        return None


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1024 or unit == "PB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} PB"  # pragma: no cover


def check_fits(estimate: float, what: str, fraction: float = 0.8) -> None:
    """Raise ``ValueError`` when ``estimate`` bytes exceed ``fraction`` of physical memory."""
    total = total_memory()
    if total is not None and estimate > fraction * total:
        raise ValueError(
            f"{what} needs about {human_bytes(estimate)}, more than this machine's "
            f"{human_bytes(total)} of memory allows; use smaller sizes"
        )


__all__ = ["check_fits", "human_bytes", "total_memory"]
