"""The fast ops: the signatures of ``tinynet/ops/reference.py``, computed by Numba kernels and
BLAS calls spread over worker threads by ``scheduler.py``. Ops with no hot loop of their
own (softmax cross-entropy, the SGD update) are the reference functions themselves.

All kernels are ``@njit(cache=True)``: compiled once per machine, then loaded from Numba's
cache. Matrix products stay outside jitted code (Numba's np.dot needs SciPy); the kernels
are the loops around them, serial, releasing the GIL (``nogil=True``) so that the
scheduler's threads run them side by side.
"""

from ..reference import (  # noqa: F401
    sgd_update,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)
from . import scheduler  # noqa: F401
from .augment import blur_planes, warp_bilinear  # noqa: F401
from .conv import conv2d_backward, conv2d_forward  # noqa: F401
from .dense import dense_backward, dense_forward  # noqa: F401
from .elementwise import (  # noqa: F401
    adam_update,
    dropout_backward,
    dropout_forward,
    relu_backward,
    relu_forward,
)
from .norm import batchnorm_backward, batchnorm_forward, batchnorm_moments  # noqa: F401
from .pool import maxpool_backward, maxpool_forward  # noqa: F401
from .winograd import conv2d_winograd_backward, conv2d_winograd_forward  # noqa: F401
