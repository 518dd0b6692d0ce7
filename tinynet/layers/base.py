"""The contract every layer follows.

A layer is a function y = f(x; params). Training needs two things from it:

* ``forward(x, training)`` computes y and, when ``training`` is true, keeps whatever the
  backward pass will need (the input, a mask, ...) in ``self.cache``;
* ``backward(dout)`` receives dL/dy (same shape as y), stores dL/dparam in ``self.grads``
  under the same names as ``self.params``, and returns dL/dx (same shape as x).

``Sequential`` chains these: forward left to right, backward right to left, each layer
handing its input gradient to the layer before it. That is the whole of backpropagation.

The arithmetic itself lives in ``tinynet/ops``: a layer holds parameters, configuration and
its saved state, and its forward and backward call one op each way.
"""


class Layer:
    """Base class. Subclasses fill ``params`` (trainable arrays) and ``buffers``
    (non-trainable state saved with the model, such as batch-norm running statistics)."""

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.buffers = {}
        self.cache = None       # what forward(training=True) kept for backward
        # The first layer of a network never needs dL/dx; Sequential clears this flag on it
        # so layers can skip that (often expensive) product.
        self.needs_input_grad = True

    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, dout):
        raise NotImplementedError

    def config(self):
        """Constructor arguments as a JSON-able dict; used to save and rebuild the layer."""
        return {}

    def astype(self, dtype):
        """Cast parameters and buffers (gradient checks run the same layer in float64)."""
        for store in (self.params, self.buffers):
            for name in store:
                store[name] = store[name].astype(dtype)
        self.grads = {}
        self.cache = None
        return self

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"
