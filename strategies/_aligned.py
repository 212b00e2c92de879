"""Cache-line-aligned numpy arrays for state that Ps write concurrently.

numpy's data pointer is only 16-byte aligned: a large array is glibc's mmap'd
block plus its 16-byte header, so its data starts at 16 mod 64. A per-P row
padded to a multiple of 64 bytes then still shares a line with the next P's
row, and a two-line record (go's span row) splits at the wrong field. These
arrays start on a 64-byte boundary; otherwise they are ordinary C-contiguous
arrays (numba compiles the same code for them), zeroed lazily by the kernel
as np.zeros is.
"""
from __future__ import annotations

import numpy as np

LINE = 64


def zeros(shape, dtype=np.int64) -> np.ndarray:
    dtype = np.dtype(dtype)
    shape = (shape,) if np.isscalar(shape) else tuple(shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    buf = np.zeros(nbytes + LINE, np.uint8)
    off = -buf.ctypes.data % LINE
    return buf[off:off + nbytes].view(dtype).reshape(shape)


def full(shape, value, dtype=np.int64) -> np.ndarray:
    a = zeros(shape, dtype)
    a.fill(value)
    return a
