"""Numba-compiled hot loops, each with a plain-NumPy twin of the same signature.

* ``conv``: im2col / col2im, turning convolution into BLAS matrix products;
* ``pool``: max pooling forward (with argmax) and backward;
* ``augment``: bilinear affine/elastic warps for training-time data augmentation.

All kernels are ``@njit(cache=True)``: compiled once per machine, then loaded from
Numba's cache. Matrix products stay outside jitted code (Numba's np.dot needs SciPy); the
kernels are the loops around them. The kernels are serial: see the note in ``conv``.
"""
