"""The C library's allocator for the speed benchmarks (Linux with glibc only).

By default glibc maps every allocation above its mmap threshold (at most 32 MiB)
straight from the kernel and unmaps it when it is freed, and gives each thread an
arena of its own whose extra heaps are unmapped whenever they fall empty. XLA
allocates the training step's buffers afresh at every call, so each call maps them
again and faults in every page, in kernel time. `keep_freed_memory` turns mmap off,
raises trimming and keeps one arena for all threads, so those buffers come from one
heap and are reused. Training does not set it: a step called directly runs faster
with it, but a whole training run through Keras's fit() ran slower
(docs/performance.md). See mallopt(3).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from typing import Optional

# mallopt(3) parameters by name: their codes in glibc's malloc.h and the names of the
# same settings in GLIBC_TUNABLES, which sets them as a process starts.
MALLOPT = {"M_TRIM_THRESHOLD": (-1, "glibc.malloc.trim_threshold"),
           "M_MMAP_THRESHOLD": (-3, "glibc.malloc.mmap_threshold"),
           "M_MMAP_MAX": (-4, "glibc.malloc.mmap_max"),
           "M_ARENA_MAX": (-8, "glibc.malloc.arena_max")}
# The largest value mallopt's int takes: never trim the heap in practice.
NEVER = 2**31 - 1
# Freed memory kept: mmap off, no trimming, one arena for all threads.
KEPT = {"M_MMAP_MAX": 0, "M_TRIM_THRESHOLD": NEVER, "M_ARENA_MAX": 1}


@functools.lru_cache(maxsize=None)
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
    """mallopt(name, value) for each parameter of MALLOPT given by name; False without
    glibc (nothing changed) or when glibc refuses a value (the others are still set)."""
    libc = glibc()
    if libc is None:
        return False
    accepted = [libc.mallopt(MALLOPT[name][0], value) == 1 for name, value in params.items()]
    return all(accepted)


def tunables(**params: int) -> str:
    """The GLIBC_TUNABLES value that gives a new process the same settings as
    set_allocator(**params)."""
    return ":".join(f"{MALLOPT[name][1]}={value}" for name, value in params.items())


def keep_freed_memory() -> bool:
    """Large buffers from one heap, kept there after they are freed (see the module's
    note: call it before TensorFlow starts its threads); True when set."""
    return set_allocator(**KEPT)


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
