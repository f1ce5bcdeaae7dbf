"""The C library's allocator, set for a training process (Linux with glibc only).

By default glibc maps every allocation above its mmap threshold (at most 32 MiB)
straight from the kernel and unmaps it when it is freed. XLA allocates the training
step's buffers, hundreds of MB at 128x128 and 256x256, afresh at every call, so each
step maps them again and faults in every page, in kernel time. With mmap off and
trimming raised, those buffers come from the heap and stay there after they are freed,
and the next step reuses them. The process keeps its peak memory, which training
reaches at every step anyway. See mallopt(3); the measurement is
benchmarks/malloc_ab.py (docs/performance.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from typing import Optional

# mallopt(3) parameters, from glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
# The largest value mallopt's int takes: never trim the heap in practice.
NEVER = 2**31 - 1


def glibc() -> Optional[ctypes.CDLL]:
    """The C library when it is glibc (it has mallopt and malloc_trim), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt, libc.malloc_trim      # glibc's; musl and others lack them
    except (OSError, AttributeError):
        return None
    return libc


def set_allocator(**params: int) -> bool:
    """mallopt(name, value) for each of M_TRIM_THRESHOLD, M_MMAP_THRESHOLD and
    M_MMAP_MAX given by name; False (nothing changed) without glibc or when glibc
    refuses a value."""
    libc = glibc()
    if libc is None:
        return False
    codes = {"M_TRIM_THRESHOLD": M_TRIM_THRESHOLD, "M_MMAP_THRESHOLD": M_MMAP_THRESHOLD,
             "M_MMAP_MAX": M_MMAP_MAX}
    return all(libc.mallopt(codes[name], value) == 1 for name, value in params.items())


def keep_freed_memory() -> bool:
    """Large buffers from the heap, kept there after they are freed (see the module's
    note); True when set."""
    return set_allocator(M_MMAP_MAX=0, M_TRIM_THRESHOLD=NEVER)


def default_allocator() -> bool:
    """glibc's default in its end state, the heap released: the mmap threshold, which
    glibc raises as large blocks are freed, at its highest (32 MiB), trimming at twice
    that (a mallopt call stops the raising, so the start state cannot be restored).
    For benchmarks that compare the two settings in one process."""
    done = set_allocator(M_MMAP_MAX=65536, M_MMAP_THRESHOLD=32 << 20,
                         M_TRIM_THRESHOLD=64 << 20)
    if done:
        glibc().malloc_trim(0)
    return done
