"""The fast backend's scheduler: the one place that owns threads, chunking, scratch buffers,
BLAS thread control and the allocator tuning. The fast ops call it; nothing else does.

Why tinynet splits the batch itself instead of letting OpenBLAS (or Numba's ``prange``)
thread each call: OpenBLAS's worker threads busy-wait between products, and the serial Numba
loops between two products (im2col, col2im, pooling, ReLU) then compete with them for the
cores. On a machine shared with other processes, a 2-thread OpenBLAS product was measured
taking 30x longer than a 1-thread one (one of its threads spinning for a descheduled partner).

So ``run_chunks(fn, n, chunk)`` calls ``fn(start, stop)`` for consecutive slices of the n
images on ``workers()`` Python threads, with the BLAS set to one thread meanwhile. Each worker
runs its slice's whole pipeline (im2col, the product, col2im, ...) on its own core, on data
small enough to stay in its cache. NumPy's products and the kernels (``nogil=True``) release
the GIL, so the workers truly run at once; a waiting thread sleeps instead of spinning. The
results come back in slice order, so the arithmetic, and the result, never depends on timing.

The worker count is explicit: the cores this process may run on, or ``TINYNET_THREADS=N``
from the environment, or ``threads(n)`` for a block of code. It never depends on the BLAS
NumPy was built with (OpenBLAS, MKL, Accelerate: all get the same workers); the BLAS thread
count is only set, where the BLAS lets us (OpenBLAS), never read back to decide anything.
"""

import concurrent.futures
import contextlib
import ctypes
import glob
import itertools
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# -- how many workers -----------------------------------------------------------------------


def default_workers():
    """``TINYNET_THREADS`` if set, else the number of cores this process may run on."""
    value = os.environ.get("TINYNET_THREADS", "").strip()
    if value:
        try:
            n = int(value)
        except ValueError:
            raise ValueError(f"TINYNET_THREADS={value!r} is not a whole number") from None
        if n < 1:
            raise ValueError(f"TINYNET_THREADS={value!r} must be at least 1")
        return n
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:               # not Linux
        return os.cpu_count() or 1


_workers = default_workers()     # for threads that have not called threads(n)
_local = threading.local()         # per thread: its worker count, scratch, "inside a worker"


def workers():
    """Threads the fast ops called from this thread use."""
    return getattr(_local, "workers", None) or _workers


@contextlib.contextmanager
def threads(n=None):
    """``with threads(n): ...`` runs the block's ops on n worker threads (None: the default),
    with the BLAS on one thread throughout (every product tinynet makes runs inside one
    worker; setting the BLAS once here saves switching it around every op).

    The count belongs to the calling thread: two threads may each train a network with
    ``threads(1)`` side by side (an ensemble's networks, one per core), and neither changes
    the other's slicing."""
    previous = getattr(_local, "workers", None)
    _local.workers = default_workers() if n is None else max(1, int(n))
    try:
        with single_blas():
            yield
    finally:
        _local.workers = previous


# -- BLAS threads ---------------------------------------------------------------------------

_SETTERS = ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_",
            "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
            "openblas_get_num_threads")


def _find_openblas():
    """OpenBLAS's (set, get) thread-count functions in the library NumPy loaded, or None."""
    root = os.path.dirname(np.__file__)
    candidates = glob.glob(os.path.join(os.path.dirname(root), "numpy.libs", "*openblas*"))
    candidates += glob.glob(os.path.join(root, ".dylibs", "*openblas*"))
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        setter = next((getattr(lib, s) for s in _SETTERS if hasattr(lib, s)), None)
        getter = next((getattr(lib, g) for g in _GETTERS if hasattr(lib, g)), None)
        if setter is not None and getter is not None:
            setter.argtypes, setter.restype = [ctypes.c_int], None
            getter.argtypes, getter.restype = [], ctypes.c_int
            return setter, getter
    return None


_openblas = _find_openblas()


class _SingleBlas:
    """See ``single_blas``. A class rather than a generator-based context manager: it is
    entered around every op, and this costs a fraction of a microsecond."""

    def __init__(self):
        self.lock = threading.Lock()
        self.depth = 0            # how many blocks are open, in any thread
        self.before = None

    def __enter__(self):
        with self.lock:
            if self.depth == 0:
                self.before = _openblas[1]()
                _openblas[0](1)
            self.depth += 1

    def __exit__(self, *exc):
        with self.lock:
            self.depth -= 1
            if self.depth == 0:
                _openblas[0](self.before)
        return False


_SINGLE_BLAS = _SingleBlas() if _openblas is not None else contextlib.nullcontext()


def single_blas():
    """Context manager: run the block with the BLAS on one thread (OpenBLAS; other BLAS
    libraries are left alone). Nested and concurrent blocks share one switch: the count
    goes back to what it was when the last block closes."""
    return _SINGLE_BLAS


@contextlib.contextmanager
def blas_threads(n):
    """Context manager for measurements: the BLAS (OpenBLAS) on ``n`` threads in the block,
    then back to what it was. Yields False, and changes nothing, for another BLAS. Not for
    use around the fast ops, which keep the BLAS on one thread themselves."""
    if _openblas is None:
        yield False
        return
    before = _openblas[1]()
    _openblas[0](n)
    try:
        yield True
    finally:
        _openblas[0](before)


# -- the allocator --------------------------------------------------------------------------

_malloc_tuned = False


def tune_malloc():
    """Keep freed memory for reuse instead of handing it back to the OS (glibc only).

    A training step allocates and frees arrays of a few MB to a few tens of MB (layer
    outputs and gradients). By default glibc serves each from a fresh ``mmap`` and unmaps it
    on free, so every step page-faults all of them in again, about 0.5 us per 4 KB page:
    measured, 20% of the CNN's inference time and 4% of its training step. Serving blocks up
    to 32 MB from the heap, and trimming the heap only above 256 MB free, removes that.
    Process-wide, so done once, the first time the fast ops run; ``TINYNET_MALLOC=default``
    in the environment leaves the allocator alone.
    """
    global _malloc_tuned
    _malloc_tuned = True
    if os.environ.get("TINYNET_MALLOC", "") == "default":
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)
        libc.mallopt(M_TRIM_THRESHOLD, 256 << 20)
    except (OSError, AttributeError):
        pass                          # not glibc: nothing to tune


# -- running slices of a batch --------------------------------------------------------------

_pools = {}
_pool_lock = threading.Lock()


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


def tapered(n, chunk, count):
    """``chunks(n, chunk)`` with the last ``count`` slices cut in two, when there are at least
    two slices per worker: the workers then finish within half a slice of each other. With
    equal slices the last one often ran alone while the other core waited: for conv2 of the
    examples CNN (batch 64, 16 slices of 4 images, 2 threads) 1.75 ms of idle core time in
    the forward and 1.75 in the backward, which take about 12 and 16 ms; cutting the last two
    made forward + backward 5% faster (24.1 -> 22.7 ms, medians of 6 alternating processes)."""
    ranges = chunks(n, chunk)
    if count <= 1 or len(ranges) < 2 * count or int(chunk) < 2:
        return ranges
    head = ranges[:-count]
    tail = []
    for s, e in ranges[-count:]:
        m = (s + e + 1) // 2
        tail += [(s, m), (m, e)] if e - s >= 2 else [(s, e)]
    return head + tail


def run_chunks(fn, n, chunk):
    """``[fn(s, e) for s, e in tapered(n, chunk, workers())]``, computed by ``workers()``
    threads with the BLAS on one thread. A call made from inside a worker runs serially in
    that worker.

    The calling thread is one of the workers, and every worker takes the next slice not yet
    taken until none is left. So a call wakes ``workers() - 1`` pool threads, however many
    slices there are: waking a thread costs tens of microseconds on a virtual machine, and
    handing each slice over on its own (a future per slice) was measured at 310 us for 11
    empty slices, against the 1-3 ms that a batch-norm or pooling pass takes. Which thread
    computes a slice does not change its result, and results come back in slice order."""
    if not _malloc_tuned:
        tune_malloc()
    count = workers()
    ranges = tapered(n, chunk, count)
    with single_blas():
        if len(ranges) <= 1 or count <= 1 or getattr(_local, "inside", False):
            return [fn(s, e) for s, e in ranges]
        results = [None] * len(ranges)
        taken = itertools.count()           # next() on it is atomic under the GIL
        failed = []

        def work():
            # a helper slices any nested work as its caller would, so that which thread
            # runs a slice never changes the result
            inside, own = getattr(_local, "inside", False), getattr(_local, "workers", None)
            _local.inside, _local.workers = True, count
            try:
                while True:
                    i = next(taken)
                    if i >= len(ranges) or failed:
                        break
                    results[i] = fn(*ranges[i])
            except BaseException:
                failed.append(True)         # the others stop at their next slice
                raise
            finally:
                _local.inside, _local.workers = inside, own

        helpers = [_pool(count - 1).submit(work) for _ in range(min(count, len(ranges)) - 1)]
        try:
            work()
        finally:
            for h in helpers:               # never leave a helper writing into our arrays
                concurrent.futures.wait([h])
        for h in helpers:
            h.result()                      # a helper's exception, if any
        return results


def chunk_for(n, bytes_per_item, target=1 << 20):
    """A chunk size: about ``target`` bytes of work per slice, and at least two slices
    per worker so a slow core does not hold the others up; everything in one slice when
    the whole batch is under a quarter of ``target``."""
    if n * bytes_per_item <= target // 4:
        return max(1, n)              # too little work to be worth a thread hand-off
    by_size = max(1, int(target // max(1, bytes_per_item)))
    by_balance = max(1, -(-n // (2 * workers())))
    return min(by_size, by_balance)


def flat_chunk(n, minimum=1 << 16):
    """Slice size for work on n entries of flat arrays: two slices per worker, none under
    ``minimum`` entries (below that a thread hand-off costs more than it saves)."""
    return max(minimum, -(-n // (2 * workers())))


def map_flat(kernel, n, *arrays, minimum=1 << 16):
    """``kernel(*arrays)`` over slices of flat arrays of n entries (arguments that are not
    1-D arrays are passed whole): two slices per worker, none under ``minimum`` entries
    (below that a thread hand-off costs more than it saves, and the kernel runs here)."""
    chunk = flat_chunk(n, minimum)
    if n <= chunk or workers() <= 1:
        kernel(*arrays)
        return

    def part(s, e):
        kernel(*[a[s:e] if isinstance(a, np.ndarray) and a.ndim == 1 else a for a in arrays])

    run_chunks(part, n, chunk)


# -- scratch buffers ------------------------------------------------------------------------

SCRATCH_PER_THREAD = 32      # buffers each thread keeps, least recently used dropped first


def scratch(name, shape, dtype):
    """A reusable buffer (contents undefined) for this thread, keyed by name, shape and
    dtype, so layers of different shapes (four convolutions in the shipped CNN) each keep
    their own instead of reallocating each other's on every call."""
    store = getattr(_local, "scratch", None)
    if store is None:
        store = _local.scratch = OrderedDict()
    key = (name, tuple(shape), dtype)
    buf = store.get(key)
    if buf is None:
        buf = store[key] = np.empty(shape, dtype=dtype)
        if len(store) > SCRATCH_PER_THREAD:
            store.popitem(last=False)
    else:
        store.move_to_end(key)
    return buf


def row_scratch(name, rows, n, dtype):
    """``scratch`` of (rows, n + a cache line): C-contiguous rows of n values, each a cache
    line longer than it needs. Kernels that stream through several rows at once would
    otherwise, whenever n values are a multiple of 4096 bytes (a 64 x 144 float32 matrix is
    nine), have every stream on the same cache sets, evicting each other (measured 3-5x
    slower with 16 streams). Contiguous, so Numba compiles them for unit strides, which
    vectorise (an array strided to the same effect did not). Use ``[:, :n]``."""
    return scratch(name, (rows, n + 64 // np.dtype(dtype).itemsize), dtype)
