"""Every op the layers and optimizers use, as functions with one signature per op, in two
implementations behind that signature:

* ``tinynet.ops.reference``: plain NumPy, each op short, with its math and shapes in the
  docstring. Read this one to learn how backpropagation computes each gradient.
* ``tinynet.ops.fast``: the same ops on Numba kernels and a small thread pool
  (``tinynet/ops/fast/scheduler.py`` owns threads, chunking, scratch buffers and BLAS threads).

The layers call ``ops.<name>(...)`` and never know which one runs. The environment variable
``TINYNET_OPS=reference|fast`` chooses at import (fast by default; reference, with a one-line
notice, when Numba cannot be imported). ``backend()`` names the active one; ``use(name)``
switches, and as a context manager switches back afterwards (the agreement tests run both
backends in one process that way).
"""

import contextlib
import importlib
import importlib.util
import os
import sys

BACKENDS = ("reference", "fast")

# Every op both backends define; tests/test_ops.py checks that they agree on each.
OPS = (
    "dense_forward", "dense_backward",
    "conv2d_forward", "conv2d_backward", "conv2d_reads_channels_last",
    "conv2d_winograd_forward", "conv2d_winograd_backward",
    "maxpool_forward", "maxpool_backward",
    "batchnorm_moments", "batchnorm_forward", "batchnorm_backward",
    "batchnorm_relu_pool_forward", "batchnorm_relu_pool_backward",
    "relu_forward", "relu_backward",
    "dropout_forward", "dropout_backward",
    "softmax_cross_entropy_forward", "softmax_cross_entropy_backward",
    "sgd_update", "adam_update",
    "warp_bilinear", "blur_planes", "pen_width", "break_strokes", "thin",
)

_active = None
_name = None


def _load(name):
    if name not in BACKENDS:
        raise ValueError(f"unknown ops backend {name!r}; choose one of {BACKENDS}")
    return importlib.import_module(f"{__name__}.{name}")


def use(name):
    """Make ``name`` ("reference" or "fast") the active backend. Returns a context manager
    that restores the previous one on exit, so both ``ops.use("fast")`` and
    ``with ops.use("reference"): ...`` work."""
    global _active, _name
    previous = _name
    module = _load(name)
    _active, _name = module, name
    # Bind every op here as a module attribute, so ``ops.dense_forward(...)`` in a layer is
    # one plain lookup and a switch takes effect at once everywhere.
    globals().update({op: getattr(module, op) for op in OPS})

    @contextlib.contextmanager
    def restore():
        try:
            yield module
        finally:
            use(previous)

    return restore()


def backend():
    """The name of the active backend: "reference" or "fast"."""
    return _name


def threads(n=None):
    """Context manager: run the block's ops on ``n`` threads (None: every available core, or
    ``TINYNET_THREADS``). The fast backend's scheduler does the threading; the reference ops
    are plain NumPy and ignore it."""
    scheduler = _fast_scheduler()
    return scheduler.threads(n) if scheduler is not None else contextlib.nullcontext()


def default_threads():
    """The threads ``threads(None)`` gives the ops: every available core, or
    ``TINYNET_THREADS`` (1 on the reference backend, whose products thread inside the BLAS)."""
    scheduler = _fast_scheduler()
    return scheduler.default_workers() if scheduler is not None else 1


def _fast_scheduler():
    """The fast backend's scheduler (started if need be), or None on the reference ops."""
    if _name == "fast" and _active is None:
        _start_fast()
    return _active.scheduler if _name == "fast" else None


# -- starting without Numba -------------------------------------------------------------------
#
# Importing Numba costs about a third of a second, more than reading a few images takes. So
# the fast backend starts with Numba not imported: the forward ops a prediction uses run their
# reference (NumPy) versions, the same results to float32 rounding, until an op is too big
# or a budget of work is spent, or any other op (a backward pass, an optimizer step) is
# called; then the fast module is imported and bound, once, and everything after runs on it.

_FORWARD = ("dense_forward", "conv2d_forward", "conv2d_winograd_forward", "maxpool_forward",
            "batchnorm_forward", "relu_forward")
# NumPy's convolutions run about 4x slower than the kernels, but loading the kernels (Numba,
# the cached kernels, the worker threads) costs more than a few dozen images take to read.
# Measured through `examples/mnist.py --load weights/mnist.npz --no-show --no-figure` on the
# 46 images of digits/ with the shipped ensemble of five networks (about 10^10
# multiply-adds): 1.5-1.7 s when the kernels were loaded past 2^31, 0.9-1.2 s in NumPy alone.
START_OP_WORK = 1 << 30     # multiply-adds (convolutions) or values (others) of one op
START_BUDGET = 1 << 33      # all the work done in NumPy before the kernels take over
_start_work = 0


def _op_work(op, args):
    x = args[0]
    if op.startswith("conv2d"):          # about N * OH * OW * (F * C * kh * kw)
        return x.shape[0] * x.shape[2] * x.shape[3] * args[1].size
    return x.size


def _start_fast():
    """Import and bind the fast backend (Numba's set-up is paid here), or fall back."""
    try:
        use("fast")
    except ImportError as exc:
        print(f"tinynet: Numba cannot be loaded ({exc}); using the reference (NumPy) ops",
              file=sys.stderr)
        use("reference")
        return


def _start_in_numpy(work):
    """Whether an op of ``work`` multiply-adds (or values) runs in NumPy before the fast
    backend is imported: yes while it is small and the budget is not spent."""
    global _start_work
    if work > START_OP_WORK or _start_work + work > START_BUDGET:
        return False
    _start_work += work
    return True


# Questions about layouts, answered by the reference until the kernels are loaded (the
# NumPy start reads no layout faster than another).
_ASKED_BEFORE_START = ("conv2d_reads_channels_last",)


def _starter(op, reference_op):
    def start(*args, **kwargs):
        if op in _ASKED_BEFORE_START:
            return reference_op(*args, **kwargs)
        if op in _FORWARD and _start_in_numpy(_op_work(op, args)):
            return reference_op(*args, **kwargs)
        _start_fast()
        return globals()[op](*args, **kwargs)

    start.__name__ = start.__qualname__ = op
    start.__doc__ = reference_op.__doc__
    return start


def _use_fast_when_needed():
    global _active, _name
    reference = _load("reference")
    _active, _name = None, "fast"
    globals().update({op: _starter(op, getattr(reference, op)) for op in OPS})


def _numba_installed():
    if "numba" in sys.modules:
        return sys.modules["numba"] is not None
    try:
        return importlib.util.find_spec("numba") is not None
    except (ImportError, ValueError):
        return False


def _choose():
    wanted = os.environ.get("TINYNET_OPS", "fast").strip().lower() or "fast"
    if wanted not in BACKENDS:
        raise ImportError(f"TINYNET_OPS={wanted!r}: choose 'reference' or 'fast'")
    if wanted == "fast" and not _numba_installed():
        print("tinynet: Numba is not installed; using the reference (NumPy) ops",
              file=sys.stderr)
        wanted = "reference"
    if wanted == "fast":
        _use_fast_when_needed()
    else:
        use(wanted)


_choose()
