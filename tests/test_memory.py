"""benchmarks.memory: with freed memory kept, a large buffer allocated again
reuses pages already faulted in, also from a thread started afterwards; under
glibc's default it is mapped afresh."""

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO
from benchmarks.memory import glibc

SCRIPT = textwrap.dedent("""
    import ctypes, resource, sys, threading
    from benchmarks.memory import default_allocator, glibc, keep_freed_memory
    libc = glibc()
    libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]

    def faults():
        # A 64 MiB malloc, every page written, then freed: plain malloc as XLA's
        # buffers are (numpy would ask for huge pages).
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        buffer = libc.malloc(64 << 20)
        ctypes.memset(buffer, 1, 64 << 20)
        libc.free(buffer)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    def thread_faults():
        # Three 40 MiB buffers at once from a new thread: under glibc's default its own
        # arena, in heaps of at most 64 MiB that are unmapped when they fall empty.
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        buffers = [libc.malloc(40 << 20) for _ in range(3)]
        for buffer in buffers:
            ctypes.memset(buffer, 1, 40 << 20)
        for buffer in buffers:
            libc.free(buffer)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    def in_thread(rounds):
        counts = []
        thread = threading.Thread(target=lambda: counts.extend(thread_faults()
                                                               for _ in range(rounds)))
        thread.start()
        thread.join()
        return counts

    if sys.argv[1:] == ["as_started"]:    # the settings this process started with
        print(faults(), faults(), faults())
        sys.exit()
    # glibc's default in its end state (mmap threshold 32 MiB), then kept memory.
    assert default_allocator()
    default = [faults(), faults()]
    assert keep_freed_memory()
    kept = [faults(), faults(), faults()]
    print(default[1], kept[2], in_thread(3)[2])
""")
PAGES = (64 << 20) // os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(glibc() is None, reason="the allocator settings are glibc's")
def test_kept_memory_is_reused_where_the_default_maps_it_afresh():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                            timeout=120, env=dict(os.environ, PYTHONPATH=REPO))
    assert result.returncode == 0, result.stderr[-2000:]
    default, kept, thread = map(int, result.stdout.split())
    assert default > 0.9 * PAGES, (default, PAGES)       # every page faulted in again
    assert kept < 0.05 * PAGES, (kept, PAGES)            # the heap's pages reused
    assert thread < 0.05 * PAGES, (thread, PAGES)        # also from a thread started later


@pytest.mark.skipif(glibc() is None, reason="the allocator settings are glibc's")
def test_the_tunables_start_a_process_with_memory_kept():
    """benchmarks.allocator_ab's arm: GLIBC_TUNABLES from memory.KEPT, no mallopt call."""
    from benchmarks.memory import KEPT, tunables

    def faults(env):
        result = subprocess.run([sys.executable, "-c", SCRIPT, "as_started"], text=True,
                                capture_output=True, timeout=120,
                                env=dict(os.environ, PYTHONPATH=REPO, **env))
        assert result.returncode == 0, result.stderr[-2000:]
        return list(map(int, result.stdout.split()))

    assert tunables(**KEPT) == ("glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold="
                                f"{2**31 - 1}:glibc.malloc.arena_max=1")
    assert faults({"GLIBC_TUNABLES": tunables(**KEPT)})[2] < 0.05 * PAGES
    assert faults({})[2] > 0.9 * PAGES       # as glibc starts: mapped afresh each time
