"""Size classes: Go's mksizeclasses algorithm with its constants as parameters.

Models src/internal/runtime/gc/mksizeclasses.go (src/runtime/mksizeclasses.go
before Go 1.24) and the tables it generates into sizeclasses.go. See
__init__.py for an overview and how the tables are used.

The generator, as Go runs it (the parameter that each step reads is named):

1. Walk candidate sizes from ``sc_min_align`` up to ``max_small_size`` in
   steps of ``align``. At every power of two the step grows: 16 from
   ``sc_align16_from`` (32: Go's heap bitmap wanted 16-byte alignment for
   objects of 32 B and more), size / ``sc_align_frac_div`` from
   ``sc_align_frac_from`` (128: steps of 1/8 keep the rounding waste under
   12.5%), and a flat ``sc_align_max`` from ``sc_align_max_from`` (2048 B:
   256-byte steps).
2. For each candidate pick the span length: the fewest pages whose tail
   (span bytes mod size) is at most span bytes / ``sc_tail_waste_div``.
3. If the previous class has the same pages and the same object count, the
   candidate replaces it (bigger objects for free) instead of adding a class.
4. Finally each class grows to the largest multiple of ``sc_large_size_div``
   that still fits the same object count in the same pages (Go's example:
   8448 -> 9472 B, 6 objects in 7 pages).
5. Each class gets its division magic ``^uint32(0)/size + 1``, checked by
   brute force as Go does: object index = (offset * magic) >> 32 for every
   offset in the span.

Lookup tables, as sizeclasses.go has them: ``size_to_class8`` for sizes up
to ``sc_small_size_max`` (index (size + 7) / 8) and ``size_to_class128``
above it (index (size - 1024 + 127) / 128). Each entry is the first class
whose size is >= the bucket's upper end.

With the defaults the table is Go's: 67 classes (68 with the dummy class 0),
identical to tests/data/go_sizeclasses.csv, Go's own table (tests/test_go_sizeclasses.py
compares them).
Public API for the CLI (``alloclab sizeclasses``): ``generate(config_or_params)``
and ``format_table(table, csv=bool)``.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from alloclab.strategies._config import ConfigError

CSV_COLUMNS = ("class", "bytes_per_obj", "bytes_per_span", "objects", "tail_waste", "max_waste_pct", "min_align")


@dataclasses.dataclass(frozen=True)
class GenParams:
    """The generator's inputs; the ``go`` Config has fields of the same names."""
    page_size: int = 8192
    max_small_size: int = 32768
    sc_min_align: int = 8
    sc_align16_from: int = 32
    sc_align_frac_from: int = 128
    sc_align_frac_div: int = 8
    sc_align_max_from: int = 2048
    sc_align_max: int = 256
    sc_tail_waste_div: int = 8
    sc_small_size_div: int = 8
    sc_small_size_max: int = 1024
    sc_large_size_div: int = 128
    sc_max_objects: int = 1024

    @classmethod
    def of(cls, obj: Any = None) -> "GenParams":
        """Pick the generator's fields from a Config, a dict or None (defaults)."""
        if obj is None:
            return cls()
        if isinstance(obj, GenParams):
            return obj
        names = [f.name for f in dataclasses.fields(cls)]
        if isinstance(obj, dict):
            return cls(**{k: int(obj[k]) for k in names if k in obj})
        return cls(**{k: int(getattr(obj, k)) for k in names if hasattr(obj, k)})


@dataclasses.dataclass(frozen=True)
class SizeClassTable:
    params: GenParams
    class_to_size: np.ndarray       # int64 [nclasses]; [0] = 0 (the dummy class, as in Go)
    class_to_npages: np.ndarray     # int64 [nclasses]
    class_to_divmagic: np.ndarray   # int64 [nclasses] (uint32 values)
    class_nelems: np.ndarray        # int64 [nclasses] objects per span
    size_to_class8: np.ndarray      # int32 [small_size_max / small_size_div + 1]
    size_to_class128: np.ndarray    # int32 [(max_small - small_size_max) / large_size_div + 1]

    @property
    def nclasses(self) -> int:
        """Number of classes including the dummy class 0 (Go's _NumSizeClasses)."""
        return int(self.class_to_size.shape[0])

    @property
    def max_objs_per_span(self) -> int:
        return int(self.class_nelems[1:].max())

    def size_to_class(self, size: int) -> int:
        """Go's lookup (malloc.go): the class that ``size`` bytes round up to."""
        p = self.params
        if size <= p.sc_small_size_max - 8:
            return int(self.size_to_class8[(size + p.sc_small_size_div - 1) // p.sc_small_size_div])
        return int(self.size_to_class128[(size - p.sc_small_size_max + p.sc_large_size_div - 1) // p.sc_large_size_div])

    def rows(self) -> list[tuple]:
        """(class, bytes/obj, bytes/span, objects, tail waste, max waste %, min align), as Go's comment table."""
        out = []
        prev = 0
        page_shift = self.params.page_size.bit_length() - 1
        for c in range(1, self.nclasses):
            size = int(self.class_to_size[c])
            span = int(self.class_to_npages[c]) * self.params.page_size
            objects = span // size
            tail = span - size * objects
            max_waste = ((size - prev - 1) * objects + tail) / span
            align_bits = min((size & -size).bit_length() - 1, page_shift)
            out.append((c, size, span, objects, tail, 100 * max_waste, 1 << align_bits))
            prev = size
        return out


def _pow2(x: int) -> bool:
    return x > 0 and x & (x - 1) == 0


def _validate(p: GenParams) -> None:
    if not _pow2(p.page_size):
        raise ConfigError(f"page_size {p.page_size} is not a power of two")
    for name in ("sc_min_align", "sc_align_max", "sc_small_size_div", "sc_large_size_div"):
        if not _pow2(getattr(p, name)):
            raise ConfigError(f"{name} {getattr(p, name)} is not a power of two")
    if p.sc_min_align < 8:
        raise ConfigError(f"sc_min_align {p.sc_min_align} is below 8 (Go's minimum heap alignment)")
    if p.sc_tail_waste_div < 1 or p.sc_align_frac_div < 1:
        raise ConfigError("sc_tail_waste_div and sc_align_frac_div must be >= 1")
    if p.sc_small_size_max % p.sc_small_size_div or p.sc_small_size_max % p.sc_large_size_div:
        raise ConfigError(f"sc_small_size_max {p.sc_small_size_max} must be a multiple of both lookup steps")
    if p.max_small_size <= p.sc_small_size_max or (p.max_small_size - p.sc_small_size_max) % p.sc_large_size_div:
        raise ConfigError(f"max_small_size {p.max_small_size} must exceed sc_small_size_max and step by sc_large_size_div")
    if p.max_small_size % p.sc_min_align:
        raise ConfigError(f"max_small_size {p.max_small_size} is not a multiple of sc_min_align {p.sc_min_align}")


def _make_classes(p: GenParams) -> list[list[int]]:
    """Steps 1-4 of the module docstring: [[size, npages], ...] with the dummy class 0 first."""
    classes = [[0, 0]]
    align = p.sc_min_align
    size = align
    while size <= p.max_small_size:
        if _pow2(size):
            if size >= p.sc_align_max_from:
                align = p.sc_align_max
            elif size >= p.sc_align_frac_from:
                align = max(size // p.sc_align_frac_div, p.sc_min_align)
            elif size >= p.sc_align16_from:
                align = max(16, p.sc_min_align)
        if not _pow2(align):
            raise ConfigError(f"alignment step {align} at size {size} is not a power of two")
        allocsize = p.page_size
        while allocsize % size > allocsize // p.sc_tail_waste_div:
            allocsize += p.page_size
        npages = allocsize // p.page_size
        last = classes[-1]
        if len(classes) > 1 and npages == last[1] and allocsize // size == allocsize // last[0]:
            last[0] = size
        else:
            classes.append([size, npages])
        size += align
    for c in classes[1:]:
        psize = c[1] * p.page_size
        new_size = (psize // (psize // c[0])) & ~(p.sc_large_size_div - 1)
        if new_size > c[0]:
            c[0] = new_size
    return classes


def _div_magic(size: int, npages: int, page_size: int) -> int:
    """Step 5: Go's computeDivMagic (Lemire et al. bound, then a brute-force check)."""
    mx = npages * page_size
    n_bits = mx.bit_length()
    if _pow2(size):
        f = size.bit_length() - 1
    else:
        f = None
        for ell in range(0, 64):
            if size <= ((1 << (n_bits + ell)) % size) + (1 << ell):
                f = n_bits + ell
                break
    if f is None or f > 32:
        raise ConfigError(f"class of {size} B needs more than 32 bits of division magic (span {mx} B)")
    m = (0xFFFFFFFF // size) + 1
    n = np.arange(mx + 1, dtype=np.uint64)
    if not np.array_equal((n * np.uint64(m)) >> np.uint64(32), n // np.uint64(size)):
        raise ConfigError(f"division magic for {size} B fails within its {mx}-byte span")
    return m


def generate(config_or_params: Any = None) -> SizeClassTable:
    """The size-class table for a ``go`` Config, a dict of generator fields, or None (Go's defaults)."""
    p = GenParams.of(config_or_params)
    _validate(p)
    classes = _make_classes(p)
    sizes = [c[0] for c in classes]
    for i in range(2, len(sizes)):
        if sizes[i] <= sizes[i - 1]:
            raise ConfigError(f"size classes are not increasing: class {i} ({sizes[i]} B) <= class {i - 1} ({sizes[i - 1]} B)")
    if sizes[-1] > p.max_small_size:
        raise ConfigError(f"largest class {sizes[-1]} B exceeds max_small_size {p.max_small_size}")
    if sizes[-1] != p.max_small_size:
        raise ConfigError(f"largest class {sizes[-1]} B does not reach max_small_size {p.max_small_size}")
    npages = [c[1] for c in classes]
    if max(npages) > 255:
        raise ConfigError(f"a class needs {max(npages)} pages per span (Go stores it in a uint8)")
    nelems = [0] + [npages[i] * p.page_size // sizes[i] for i in range(1, len(sizes))]
    for i in range(1, len(sizes)):
        if nelems[i] > p.sc_max_objects:
            raise ConfigError(f"class {i} ({sizes[i]} B) puts {nelems[i]} objects in a span, "
                              f"more than sc_max_objects {p.sc_max_objects}")
    magic = [0] + [_div_magic(sizes[i], npages[i], p.page_size) for i in range(1, len(sizes))]
    c8 = np.zeros(p.sc_small_size_max // p.sc_small_size_div + 1, np.int32)
    for i in range(c8.shape[0]):
        want = i * p.sc_small_size_div
        c8[i] = next(j for j, s in enumerate(sizes) if s >= want)
    c128 = np.zeros((p.max_small_size - p.sc_small_size_max) // p.sc_large_size_div + 1, np.int32)
    for i in range(c128.shape[0]):
        want = p.sc_small_size_max + i * p.sc_large_size_div
        c128[i] = next(j for j, s in enumerate(sizes) if s >= want)
    return SizeClassTable(
        params=p, class_to_size=np.array(sizes, np.int64), class_to_npages=np.array(npages, np.int64),
        class_to_divmagic=np.array(magic, np.int64), class_nelems=np.array(nelems, np.int64),
        size_to_class8=c8, size_to_class128=c128,
    )


def format_table(table: SizeClassTable, csv: bool = False) -> str:
    """The table with the columns of go_sizeclasses.csv; ``csv=False`` gives Go's aligned comment layout."""
    lines = []
    if csv:
        lines.append(",".join(CSV_COLUMNS))
        for c, size, span, objs, tail, waste, align in table.rows():
            lines.append(f"{c},{size},{span},{objs},{tail},{waste:.2f},{align}")
    else:
        lines.append(f"{'class':<5}  {'bytes/obj':<9}  {'bytes/span':<10}  {'objects':<7}  "
                     f"{'tail waste':<10}  {'max waste':<9}  {'min align':<9}")
        for c, size, span, objs, tail, waste, align in table.rows():
            lines.append(f"{c:5d}  {size:9d}  {span:10d}  {objs:7d}  {tail:10d}  {waste:8.2f}%  {align:9d}")
    return "\n".join(lines) + "\n"
