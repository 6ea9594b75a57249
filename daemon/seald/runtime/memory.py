"""glibc malloc settings for the seald process (issue 20: memory bound).

Measured on a 3,000-document request: Python's own heap in seald stayed near 20 MB
(tracemalloc), yet seald's RSS grew by ~18 MiB per 1,000 documents. The growth was
native: glibc gives each thread that allocates its own arena (up to 8 per core) and,
once a large block is freed, raises its mmap threshold (up to 32 MiB), so the next
multi-megabyte buffers of a volume request (its JSON row, its SealRequest message,
the parsed copy) come from those arenas and stay there, fragmented, after they are
freed. Two arenas and a fixed 128 KiB mmap threshold (large blocks are mapped and
returned to the kernel when freed) took seald's growth to ~6 MiB per 1,000 documents
and its peak down by a sixth (`bench/bench_volume.py --docs 1000,5000`).

The same as ``MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072`` in the environment,
but set from inside, so it holds however seald is started (unit file, test harness,
by hand). Not glibc (musl, macOS): nothing to do. The seal workers are left alone: they
run one document at a time on one thread and stayed flat (~119 MiB each) either way.
"""

from __future__ import annotations

import ctypes

# mallopt(3) parameters (glibc's malloc.h).
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
ARENAS = 2
MMAP_THRESHOLD_BYTES = 128 * 1024


def _libc() -> ctypes.CDLL | None:
    """The C library already loaded into this process (no search on disk)."""
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") else None


def bound_native_heap() -> bool:
    """Apply the settings above to this process; True if glibc took them."""
    libc = _libc()
    if libc is None:
        return False
    arenas = int(libc.mallopt(M_ARENA_MAX, ARENAS)) == 1
    return int(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) == 1 and arenas

