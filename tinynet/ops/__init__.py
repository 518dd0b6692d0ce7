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
import os
import sys

BACKENDS = ("reference", "fast")

# Every op both backends define; tests/test_ops.py checks that they agree on each.
OPS = (
    "dense_forward", "dense_backward",
    "conv2d_forward", "conv2d_backward",
    "conv2d_winograd_forward", "conv2d_winograd_backward",
    "maxpool_forward", "maxpool_backward",
    "batchnorm_moments", "batchnorm_forward", "batchnorm_backward",
    "relu_forward", "relu_backward",
    "dropout_forward", "dropout_backward",
    "softmax_cross_entropy_forward", "softmax_cross_entropy_backward",
    "sgd_update", "adam_update",
    "warp_bilinear", "blur_planes",
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
    if _name == "fast":
        return _active.scheduler.threads(n)
    return contextlib.nullcontext()


def _choose():
    wanted = os.environ.get("TINYNET_OPS", "fast").strip().lower() or "fast"
    if wanted not in BACKENDS:
        raise ImportError(f"TINYNET_OPS={wanted!r}: choose 'reference' or 'fast'")
    if wanted == "fast":
        try:
            import numba  # noqa: F401
        except ImportError:
            print("tinynet: Numba is not installed; using the reference (NumPy) ops",
                  file=sys.stderr)
            wanted = "reference"
    use(wanted)


_choose()
