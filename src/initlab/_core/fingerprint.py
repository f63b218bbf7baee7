"""Fingerprints: short content hashes that say whether two inputs are the same data."""

from __future__ import annotations

import hashlib
import os
from typing import Any


def array_digest(*arrays: Any) -> str:
    """SHA-256 (hex) over the dtype, shape and bytes of each array (NumPy arrays or CPU
    tensors), in order: equal digests mean equal data, bit for bit."""
    import numpy as np

    digest = hashlib.sha256()
    for array in arrays:
        if hasattr(array, "detach"):
            array = array.detach().cpu().numpy()
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def file_digest(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def text_digest(text: str) -> str:
    """SHA-256 (hex) of a string's UTF-8 bytes."""
    return hashlib.sha256(text.encode()).hexdigest()


__all__ = ["array_digest", "file_digest", "text_digest"]
