"""Numba-compiled hot loops, each with a plain-NumPy twin of the same signature.

* ``conv``: im2col / col2im, turning convolution into BLAS matrix products;
* ``pool``: max pooling forward (with argmax) and backward;
* ``norm``: batch-norm per-channel sums and per-channel affine maps;
* ``elementwise``: ReLU, dropout, and the fused Adam update;
* ``augment``: bilinear affine/elastic warps for training-time data augmentation;
* ``parallel``: not a kernel but the tiny thread pool that splits a batch over the cores.

All kernels are ``@njit(cache=True)``: compiled once per machine, then loaded from
Numba's cache. Matrix products stay outside jitted code (Numba's np.dot needs SciPy); the
kernels are the loops around them. Each kernel is serial and releases the GIL
(``nogil=True``); the layers run it on slices of the batch in 2 threads (see ``parallel``).
"""
