"""Spreading a batch over the cores: a tiny thread pool that the layers share.

Why not let OpenBLAS (or Numba's ``prange``) do the threading? Measured on the 2-core
machine: OpenBLAS's worker threads busy-wait between products, and the serial Numba loops
between two products (im2col, col2im, pooling, ReLU) then compete with them for the cores.
When another process also runs on those cores, a 2-thread OpenBLAS product could take 30x
longer than a 1-thread one (one of its threads waits, spinning, for a descheduled partner).

So tinynet splits the *batch* instead: ``run_chunks(fn, n, chunk)`` calls ``fn(start, stop)``
for consecutive slices of the n images, on as many Python threads as NumPy's BLAS is allowed
to use (``tinynet.threads``: 2 by default here, 1 inside ``blas_threads(1)``), with the BLAS
set to one thread meanwhile. Each worker then runs its slice's whole pipeline (im2col, the
matrix product, col2im, ...) on its own core, on data small enough to stay in its cache.
NumPy's matrix product and the kernels (``nogil=True``) release the GIL, so the workers truly
run at the same time; the waiting thread sleeps instead of spinning. The results come back
in slice order, so the arithmetic, and therefore the result, does not depend on timing.
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from .. import threads

_pools = {}
_pool_lock = threading.Lock()
_local = threading.local()
_malloc_tuned = False
_CPUS = os.cpu_count() or 1         # read once: the call costs ~7 us (it reads /sys)


def _tune_malloc():
    """Keep freed memory for reuse instead of handing it back to the OS (glibc only).

    A training step allocates and frees arrays of a few MB to a few tens of MB (layer
    outputs and gradients). By default glibc serves each from a fresh ``mmap`` and unmaps it
    on free, so every step page-faults all of them in again, about 0.5 us per 4 KB page:
    measured, 20% of the CNN's inference time and 4% of its training step. Serving blocks up
    to 32 MB from the heap and trimming the heap only above 256 MB free removes that.
    Process-wide, so done once, when tinynet first computes; ``TINYNET_MALLOC=default``
    (environment) leaves the allocator alone.
    """
    global _malloc_tuned
    _malloc_tuned = True
    if os.environ.get("TINYNET_MALLOC", "") == "default":
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)
        libc.mallopt(M_TRIM_THRESHOLD, 256 << 20)
    except (OSError, AttributeError):
        pass                          # not glibc: nothing to tune


def workers():
    """Threads a layer may use: NumPy's BLAS thread count (1 when it cannot be read)."""
    n = threads.get_blas_threads()
    if n is None:
        return 1
    return max(1, min(int(n), _CPUS))


def _pool(n):
    with _pool_lock:
        pool = _pools.get(n)
        if pool is None:
            pool = _pools[n] = ThreadPoolExecutor(n, thread_name_prefix="tinynet")
        return pool


def chunks(n, chunk):
    """[(0, chunk), (chunk, 2*chunk), ..., (.., n)]."""
    chunk = max(1, int(chunk))
    return [(s, min(s + chunk, n)) for s in range(0, n, chunk)]


def run_chunks(fn, n, chunk):
    """``[fn(s, e) for s, e in chunks(n, chunk)]``, computed by ``workers()`` threads.

    With one worker everything runs in the calling thread and the BLAS keeps its own
    thread setting; with one chunk it runs in the calling thread on a 1-thread BLAS.
    """
    if not _malloc_tuned:
        _tune_malloc()
    ranges = chunks(n, chunk)
    nw = workers()
    if getattr(_local, "inside", False) or nw <= 1:
        return [fn(s, e) for s, e in ranges]
    if len(ranges) <= 1:
        with threads.blas_threads(1):    # never a spinning BLAS thread beside our workers
            return [fn(s, e) for s, e in ranges]
    pool = _pool(nw)

    def task(s, e):
        _local.inside = True          # a nested call runs serially in this worker
        return fn(s, e)

    with threads.blas_threads(1):
        futures = [pool.submit(task, s, e) for s, e in ranges]
        return [f.result() for f in futures]


def chunk_for(n, bytes_per_item, target=1 << 20):
    """A chunk size: about ``target`` bytes of work per slice, and at least two slices
    per worker so a slow core does not hold the others up; everything in one slice when
    the whole batch is under a quarter of ``target``."""
    if n * bytes_per_item <= target // 4:
        return max(1, n)              # too little work to be worth a thread hand-off
    by_size = max(1, int(target // max(1, bytes_per_item)))
    by_balance = max(1, -(-n // (2 * workers())))
    return min(by_size, by_balance)


def scratch(name, shape, dtype):
    """A per-thread reusable buffer (contents undefined), reallocated when shape changes."""
    store = getattr(_local, "scratch", None)
    if store is None:
        store = _local.scratch = {}
    buf = store.get(name)
    if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype:
        import numpy as np

        buf = store[name] = np.empty(shape, dtype=dtype)
    return buf


def flat_chunk(n, minimum=1 << 16):
    """Chunk size for an element-wise pass over n entries: two slices per worker, but
    none smaller than ``minimum`` entries (below that a thread hand-off costs more than
    it saves, and the pass runs in the calling thread)."""
    return max(minimum, -(-n // (2 * workers())))


def map_flat(kernel, n, *arrays):
    """``kernel(*[a[s:e] for a in arrays])`` over slices of flat arrays of n entries
    (non-array arguments are passed through unchanged)."""
    import numpy as np

    if n <= flat_chunk(n) or workers() <= 1:       # one slice: no hand-off at all
        kernel(*arrays)
        return

    def part(s, e):
        kernel(*[a[s:e] if isinstance(a, np.ndarray) and a.ndim == 1 else a for a in arrays])

    run_chunks(part, n, flat_chunk(n))
