"""The fast ops: the signatures of ``tinynet/ops/reference.py``, computed by Numba kernels and
BLAS calls spread over worker threads by ``scheduler.py``. Ops with no hot loop of their
own (softmax cross-entropy, the SGD update) are the reference functions themselves.

All kernels are ``@njit(cache=True)``: compiled once per machine, then loaded from Numba's
cache. Matrix products stay outside jitted code (Numba's np.dot needs SciPy); the kernels
are the loops around them, serial, releasing the GIL (``nogil=True``) so that the
scheduler's threads run them side by side.
"""

import sys

from ..reference import (  # noqa: F401
    sgd_update,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)
from . import scheduler  # noqa: F401
from .augment import blur_planes, break_strokes, pen_width, thin, warp_bilinear  # noqa: F401
from .conv import conv2d_backward, conv2d_forward, conv2d_reads_channels_last  # noqa: F401
from .dense import dense_backward, dense_forward  # noqa: F401
from .elementwise import (  # noqa: F401
    adam_update,
    dropout_backward,
    dropout_forward,
    relu_backward,
    relu_forward,
)
from .norm import (  # noqa: F401
    batchnorm_backward,
    batchnorm_forward,
    batchnorm_moments,
    batchnorm_relu_pool_backward,
    batchnorm_relu_pool_forward,
)
from .pool import maxpool_backward, maxpool_forward  # noqa: F401
from .winograd import conv2d_winograd_backward, conv2d_winograd_forward  # noqa: F401


def _numba_without_scipy():
    """Keep Numba from importing SciPy when the first kernel loads (~0.5-1 s of a cold
    ``model.predict`` on this machine, a third or more of it).

    The first time Numba compiles or loads a cached kernel it imports its implementations
    of NumPy functions, and one of them (``numba.np.arraymath``) imports ``scipy.linalg``
    just to note whether ``np.dot`` of two vectors may call a BLAS. No tinynet kernel does
    that (the products run in NumPy, outside jitted code), so while Numba loads them the
    import of SciPy's BLAS wrappers is made to fail. The one lasting effect, in this
    process: a jitted ``np.dot``/``np.vdot`` of 1-D arrays in someone else's code sums in a
    plain loop instead of calling the BLAS; matrix products and ``np.linalg`` still import
    SciPy when first compiled. Skipped when SciPy is already imported (nothing to save) or
    when Numba's internals are not the ones this was written against.
    """
    try:
        from numba.core import cpu
    except ImportError:
        return
    original = getattr(cpu.CPUContext, "load_additional_registries", None)
    if original is None or getattr(original, "_tinynet", False):
        return

    def load_additional_registries(self):
        if "scipy.linalg" in sys.modules:
            return original(self)
        name = "scipy.linalg.cython_blas"
        saved = sys.modules.get(name)
        sys.modules[name] = None              # "import scipy.linalg.cython_blas" fails
        try:
            return original(self)
        finally:
            if sys.modules.get(name, 0) is None:
                if saved is None:
                    del sys.modules[name]
                else:
                    sys.modules[name] = saved

    load_additional_registries._tinynet = True
    cpu.CPUContext.load_additional_registries = load_additional_registries


_numba_without_scipy()
