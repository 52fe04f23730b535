"""A test hook that counts where DragKit's own code reads a tensor's value on the host.

On a GPU each such read (``bool(t)``, ``float(t)``, ``t.item()``, ``t.tolist()``, ``torch.equal``,
selecting by a bool mask, ...) makes Python wait until the GPU has finished everything queued, so
a loop with one per step cannot queue the next step while the GPU runs this one. On the CPU the
reads cost nothing, but they are the same calls: counting them here shows what the GPU would wait for.

Only reads made directly from files of the ``dragkit`` package count; libraries' own reads (e.g. the
unfused CPU Adam reads its step count) are not DragKit's to remove.
"""

from __future__ import annotations

import collections
import contextlib
import sys
from pathlib import Path
from typing import Iterator

import torch

import dragkit

PACKAGE = str(Path(dragkit.__file__).resolve().parent)
READERS = ("__bool__", "__float__", "__int__", "__index__", "item", "tolist", "numpy", "cpu")


def is_dragkit_file(name: str) -> bool:
    """Whether a code file belongs to the pack itself (not its tests)."""
    return name.startswith(PACKAGE) and not name.startswith(str(Path(PACKAGE) / "tests"))


def _from_dragkit() -> str | None:
    """``file:line`` of the caller two frames up when it lies in the dragkit package."""
    frame = sys._getframe(2)
    name = frame.f_code.co_filename
    if is_dragkit_file(name):
        return f"{Path(name).relative_to(PACKAGE)}:{frame.f_lineno}"
    return None


@contextlib.contextmanager
def counting_host_reads() -> Iterator[collections.Counter]:
    """Inside, a ``Counter`` of ``"file:line"`` -> reads made there by DragKit's code."""
    reads: collections.Counter = collections.Counter()
    originals = {name: getattr(torch.Tensor, name) for name in READERS}
    original_getitem, original_equal = torch.Tensor.__getitem__, torch.equal

    def reader(original):
        def read(self, *args, **kwargs):
            where = _from_dragkit()
            if where is not None:
                reads[where] += 1
            return original(self, *args, **kwargs)
        return read

    def getitem(self, index):
        parts = index if isinstance(index, tuple) else (index,)
        if any(isinstance(part, torch.Tensor) and part.dtype == torch.bool for part in parts):
            where = _from_dragkit()  # a mask selection: the result's size is known only after a read
            if where is not None:
                reads[where] += 1
        return original_getitem(self, index)

    def equal(a, b):
        where = _from_dragkit()
        if where is not None:
            reads[where] += 1
        return original_equal(a, b)

    try:
        for name, original in originals.items():
            setattr(torch.Tensor, name, reader(original))
        torch.Tensor.__getitem__ = getitem
        torch.equal = equal
        yield reads
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)
        torch.Tensor.__getitem__ = original_getitem
        torch.equal = original_equal
