"""A size-class table as Go's own ``runtime/sizeclasses.go``, and what Go 1.19 can take.

``emit(table)`` writes the file that Go's generator writes
(``src/runtime/mksizeclasses.go``, ``printComment`` and ``printClasses``, in
the Go 1.19 toolchain this lab builds against; from Go 1.24 the generator
lives in ``src/internal/runtime/gc`` and also prints constants this version
does not have). The text is what ``go/format`` makes of the generator's
output, so the default table emits byte for byte the file the toolchain
ships: the comment table (class, bytes/obj, bytes/span, objects, tail waste,
max waste, min align), the alignment table, the constants (``_MaxSmallSize``,
``smallSizeDiv``, ``smallSizeMax``, ``largeSizeDiv``, ``_NumSizeClasses``,
``_PageShift``) and the arrays ``class_to_size`` (uint16),
``class_to_allocnpages`` (uint8), ``class_to_divmagic`` (uint32, written as
``^uint32(0)/size + 1``), ``size_to_class8`` and ``size_to_class128``
(uint8). ``parse(text)`` reads such a file back into numbers, so a test can
compare two files table for table.

``go119_problem(table)`` is the one place that says which tables the Go 1.19
runtime can run (None, or a one-line reason). It checks what the runtime's
code assumes beyond sizeclasses.go (runtime/*.go of Go 1.19):

- ``_PageShift`` is 13 and ``_MaxSmallSize`` 32768: the file defines both,
  but the page allocator (mpagealloc.go: chunks of 512 pages, 4 MiB),
  the arena bitmaps and the large-object path are laid out for them;
- class 2 is 16 B: malloc.go's ``mallocinit`` throws "bad TinySizeClass"
  unless ``class_to_size[_TinySizeClass]`` (2) is ``_TinySize`` (16), the
  tiny allocator's block; with class 1 of 8 B that also fixes the first
  step at 8;
- every class of 32 B and more is a multiple of 16: the heap bitmap holds
  2 bits a word, 4 words a byte, and ``heapBitsSetType`` (mbitmap.go)
  handles a pointerful object of 4 words or more only at a shift of 0 or 2
  within its bitmap byte ("unexpected shift" otherwise);
- at most 128 classes with class 0: a ``spanClass`` is a uint8 holding
  ``sizeclass<<1 | noscan`` (mheap.go), so ``numSpanClasses`` is at most 256;
- pages per span fit a uint8 and the 32-bit division magic is exact over the
  span (the generator already refuses both, as Go's does).

Not constraints: the number of classes otherwise (Go's generator panics on a
count other than 68 only as a guard; ``ReadMemStats`` copies ``BySize`` by
length, so a table with fewer than 61 classes leaves the tail zero and one
with more reports the first 61).
"""
from __future__ import annotations

import dataclasses
import re

import numpy as np

from alloclab.strategies.go.sizeclasses import GenParams, SizeClassTable

GO_FILE = "src/runtime/sizeclasses.go"   # under GOROOT, Go 1.19 to 1.23
TINY_SIZE_CLASS, TINY_SIZE = 2, 16       # malloc.go: _TinySizeClass, _TinySize
MAX_CLASSES_WITH_ZERO = 128              # spanClass is uint8: (_NumSizeClasses << 1) <= 256
ARRAYS = ("class_to_size", "class_to_allocnpages", "class_to_divmagic", "size_to_class8", "size_to_class128")
CONSTANTS = ("_MaxSmallSize", "smallSizeDiv", "smallSizeMax", "largeSizeDiv", "_NumSizeClasses", "_PageShift")
# the fields that Go 1.19 fixes (the page and the large-object threshold); the rest of a table is free
GO119_FIXED = {"page_size": 8192, "max_small_size": 32768}


def table_fields() -> tuple[str, ...]:
    """The generator's fields (GenParams), named as in the go model's Config: what a table is made of."""
    return tuple(f.name for f in dataclasses.fields(GenParams))


def go119_problem(table_or_params) -> str | None:
    """None if the Go 1.19 runtime can run this size-class table, else why (one line).

    Takes a SizeClassTable, or anything ``generate`` takes (a go or go-runtime Config, GenParams)."""
    from alloclab.strategies.go import sizeclasses as SC

    table = table_or_params if isinstance(table_or_params, SizeClassTable) else SC.generate(table_or_params)
    p = table.params
    for name, want in GO119_FIXED.items():
        if getattr(p, name) != want:
            return f"{name} {getattr(p, name)}: Go 1.19's runtime is built for {want} (only the classes can change)"
    sizes = table.class_to_size
    if table.nclasses <= TINY_SIZE_CLASS or sizes[TINY_SIZE_CLASS] != TINY_SIZE:
        got = int(sizes[TINY_SIZE_CLASS]) if table.nclasses > TINY_SIZE_CLASS else "none"
        return f"size class 2 is {got} B: Go's tiny allocator needs it to be 16 B (sc_min_align 8)"
    odd = [int(s) for s in sizes if s >= 32 and s % 16]
    if odd:
        return (f"size class {odd[0]} B: Go 1.19's heap bitmap needs classes of 32 B and more to be multiples of "
                f"16 (sc_align16_from at most 32)")
    if table.nclasses > MAX_CLASSES_WITH_ZERO:
        return (f"{table.nclasses - 1} size classes: Go 1.19 holds a span class in 8 bits, at most "
                f"{MAX_CLASSES_WITH_ZERO - 1}")
    return None


def _comment(table: SizeClassTable) -> list[str]:
    """printComment: the class table, then the smallest object size of each alignment."""
    page_shift = table.params.page_size.bit_length() - 1
    lines = [f"// {'class':<5}  {'bytes/obj':<9}  {'bytes/span':<10}  {'objects':<7}  {'tail waste':<10}  "
             f"{'max waste':<9}  {'min align':<9}"]
    min_aligns = [0] * (page_shift + 1)
    for c, size, span, objects, tail, waste, align in table.rows():
        align_bits = align.bit_length() - 1
        for i in range(len(min_aligns)):
            if i > align_bits:
                min_aligns[i] = 0
            elif min_aligns[i] == 0:
                min_aligns[i] = size
        lines.append(f"// {c:5d}  {size:9d}  {span:10d}  {objects:7d}  {tail:10d}  {waste:8.2f}%  {align:9d}")
    lines += ["", f"// {'alignment':<9}  {'bits':<4}  {'min obj size':<12}"]
    for bits, size in enumerate(min_aligns):
        if size == 0:
            break
        if bits + 1 < len(min_aligns) and size == min_aligns[bits + 1]:
            continue
        lines.append(f"// {1 << bits:9d}  {bits:4d}  {size:12d}")
    return [ln.rstrip() for ln in lines]


def emit(table: SizeClassTable) -> str:
    """The sizeclasses.go that Go's generator writes for ``table`` (gofmt'd, as the toolchain ships it)."""
    p = table.params
    consts = [("_MaxSmallSize", p.max_small_size), ("smallSizeDiv", p.sc_small_size_div),
              ("smallSizeMax", p.sc_small_size_max), ("largeSizeDiv", p.sc_large_size_div),
              ("_NumSizeClasses", table.nclasses), ("_PageShift", p.page_size.bit_length() - 1)]
    width = max(len(n) for n, _ in consts)
    sizes = table.class_to_size.tolist()
    magic = ", ".join("0" if s == 0 else f"^uint32(0)/{s} + 1" for s in sizes)

    def ints(a) -> str:
        return ", ".join(str(int(v)) for v in a)

    lines = ["// Code generated by mksizeclasses.go; DO NOT EDIT.", "//go:generate go run mksizeclasses.go", "",
             "package runtime", "", *_comment(table), "", "const ("]
    lines += [f"\t{n:<{width}} = {v}" for n, v in consts]
    lines += [")", "",
              f"var class_to_size = [_NumSizeClasses]uint16{{{ints(sizes)}}}",
              f"var class_to_allocnpages = [_NumSizeClasses]uint8{{{ints(table.class_to_npages)}}}",
              f"var class_to_divmagic = [_NumSizeClasses]uint32{{{magic}}}",
              f"var size_to_class8 = [smallSizeMax/smallSizeDiv + 1]uint8{{{ints(table.size_to_class8)}}}",
              f"var size_to_class128 = [(_MaxSmallSize-smallSizeMax)/largeSizeDiv + 1]uint8{{{ints(table.size_to_class128)}}}"]
    return "\n".join(lines) + "\n"


_CONST = re.compile(r"^\s*(\w+)\s*=\s*(\d+)\s*$", re.M)
_ARRAY = re.compile(r"^var (\w+) = \[[^\]]+\]\w+\s*\{([^}]*)\}", re.M)
_MAGIC = re.compile(r"\^uint32\(0\)\s*/\s*(\d+)\s*\+\s*1")


def parse(text: str) -> dict[str, object]:
    """A sizeclasses.go's constants (ints) and arrays (numpy int64; divmagic entries evaluated)."""
    block = re.search(r"const \((.*?)\)", text, re.S)
    out: dict[str, object] = {}
    if block:
        out.update({k: int(v) for k, v in _CONST.findall(block.group(1))})
    for name, body in _ARRAY.findall(text):
        vals = []
        for item in (s.strip() for s in body.split(",")):
            if not item:
                continue
            m = _MAGIC.fullmatch(item)
            vals.append(0xFFFFFFFF // int(m.group(1)) + 1 if m else int(item))
        out[name] = np.array(vals, np.int64)
    return out

