"""Sequential: a network as a list of layers, plus saving and loading.

Backpropagation is the chain rule applied layer by layer. If the network computes
y = f_L(... f_2(f_1(x))), then for any layer k

    dL/d(input of k) = backward_k(dL/d(output of k))

so ``backward`` walks the layers in reverse, handing each one the gradient of the layer
after it. Each layer stores the gradients of its own parameters on the way.
"""

import json
import os
import zipfile

import numpy as np

from .errors import ModelFileError
from .files import atomic_write
from .layers import LAYER_TYPES
from .losses import softmax

FORMAT_VERSION = 1
META_KEY = "__tinynet__"
#: Model files whose arrays unpack to more than this are refused before any array is read.
MAX_MODEL_BYTES = 2 * 1024 ** 3


class Sequential:
    """Layers applied in order. ``forward``/``backward`` for training, ``predict`` for use."""

    def __init__(self, layers, metadata=None):
        self.layers = list(layers)
        if not self.layers:
            raise ValueError("Sequential needs at least one layer")
        # The network's input is data, not a parameter: nobody needs its gradient.
        for layer in self.layers:
            layer.needs_input_grad = True
        self.layers[0].needs_input_grad = False
        self.metadata = dict(metadata or {})

    def forward(self, x, training=False):
        for layer in self.layers:
            x = layer.forward(x, training=training)
        return x

    def backward(self, dout):
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def parameters(self):
        """(array, grad getter) pairs for the optimizer, in a fixed order.

        The getter is a function because backward stores a fresh gradient array each step."""
        pairs = []
        for layer in self.layers:
            for name, value in layer.params.items():
                pairs.append((value, _grad_getter(layer, name)))
        return pairs

    def num_params(self):
        return sum(v.size for layer in self.layers for v in layer.params.values())

    def predict(self, x, batch_size=500):
        """Class probabilities for a batch of images.

        ``x``: float values in [0, 1], white digit on black (the MNIST convention), shaped
        as ``fit`` and ``forward`` take them: (N, 1, H, W), (N, 1, 28, 28) for the shipped
        networks. Grey images without the channel axis, (N, H, W) or one (H, W), get it
        added. Returns float32 (N, K) for a network with K outputs, each row summing to 1.
        """
        x = np.asarray(x, dtype=np.float32)
        if x.ndim in (2, 3):
            x = x.reshape((-1, 1) + x.shape[-2:])
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError("predict expects images of shape (N, 1, H, W) or (N, H, W), "
                             f"got {x.shape}")
        if x.size and (x.min() < 0 or x.max() > 1):
            raise ValueError(
                "predict expects pixel values in [0, 1] (divide uint8 images by 255); "
                f"got values in [{x.min():g}, {x.max():g}]"
            )
        out = [softmax(self.forward(x[i:i + batch_size]))
               for i in range(0, max(len(x), 1), batch_size)]   # an empty batch still runs
        return np.concatenate(out).astype(np.float32)            # once, giving (0, K)

    def describe(self):
        """JSON-able description of the architecture."""
        return [{"type": type(layer).__name__, "config": layer.config()}
                for layer in self.layers]

    def summary(self):
        lines = [f"{i:>2}  {layer!r}" for i, layer in enumerate(self.layers)]
        lines.append(f"{self.num_params():,} parameters")
        return "\n".join(lines)

    # -- saving and loading -------------------------------------------------------------

    def arrays(self):
        """Every parameter and buffer, keyed '<layer index>.<params|buffers>.<name>'."""
        out = {}
        for i, layer in enumerate(self.layers):
            for kind in ("params", "buffers"):
                for name, value in getattr(layer, kind).items():
                    out[f"{i}.{kind}.{name}"] = value
        return out

    def save(self, path, extra_arrays=None, extra_metadata=None):
        """Write the model to ``path`` as one .npz file, atomically.

        The arrays go in as they are; the architecture, format version and ``metadata``
        (e.g. training history) go in as a JSON string under ``__tinynet__``. The file is
        written next to its destination and renamed over it only once complete, so a crash
        mid-write leaves any previous file intact. ``extra_arrays`` and ``extra_metadata``
        are stored beside the model's own (a training checkpoint uses them).
        """
        meta = {"format": "tinynet", "format_version": FORMAT_VERSION,
                "layers": self.describe(), "metadata": {**self.metadata, **(extra_metadata or {})}}
        arrays = self.arrays()
        arrays.update(extra_arrays or {})
        arrays[META_KEY] = np.array(json.dumps(meta))
        atomic_write(path, lambda f: np.savez(f, **arrays))


def _grad_getter(layer, name):
    return lambda: layer.grads[name]


def read_npz(path):
    """All arrays of an .npz as a dict, never unpickling anything. Raises ModelFileError."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelFileError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ModelFileError(f"{path}: is a directory, not a model file")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            if f.read(4) == b"PK\x03\x04":   # a zip whose directory (at the end) is missing
                raise ModelFileError(f"{path}: damaged or truncated model file (the end of "
                                     "the zip archive is missing)")
        raise ModelFileError(f"{path}: not a tinynet model (.npz) file")
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except Exception as exc:
        raise ModelFileError(f"{path}: damaged or truncated model file ({exc})") from None
    if unpacked > MAX_MODEL_BYTES:
        raise ModelFileError(f"{path}: unpacks to {unpacked} bytes, more than the "
                             f"{MAX_MODEL_BYTES} byte limit for a model file")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise ModelFileError(
                f"{path}: contains pickled Python objects; refusing to load them "
                "(tinynet files only hold plain arrays)") from None
        raise ModelFileError(f"{path}: damaged model file ({exc})") from None
    except Exception as exc:
        # A damaged zip or .npy header can fail in many ways (BadZipFile, zlib.error, EOFError,
        # NotImplementedError, SyntaxError from the header, ...); with allow_pickle=False none
        # of them can run code, so every one is reported as a damaged file.
        raise ModelFileError(f"{path}: damaged or truncated model file "
                             f"({type(exc).__name__}: {exc})") from None


def load(path):
    """Rebuild a model saved by ``Sequential.save``. Raises ModelFileError on any problem."""
    arrays = read_npz(path)
    return model_from_arrays(arrays, path)


def model_from_arrays(arrays, path="<model>"):
    if META_KEY not in arrays:
        raise ModelFileError(f"{path}: not a tinynet model (no {META_KEY} entry)")
    try:
        meta = json.loads(str(arrays[META_KEY]))
        version = int(meta["format_version"])
        specs = meta["layers"]
        metadata = meta.get("metadata") or {}
        if not isinstance(specs, list) or not isinstance(metadata, dict):
            raise TypeError("'layers' must be a list and 'metadata' an object")
    except (ValueError, KeyError, TypeError, OverflowError, AttributeError,
            RecursionError) as exc:
        raise ModelFileError(f"{path}: unreadable model description ({exc})") from None
    # Every array a layer builds is also stored in the file, so a layer's size can't exceed
    # the file's: this stops a forged config (Dense(10**6, 10**6)) from allocating terabytes.
    budget = max(sum(int(a.size) for a in arrays.values()), 1 << 16)
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: written by a newer tinynet (format {version}; this version reads "
            f"up to {FORMAT_VERSION}); upgrade tinynet to load it")
    layers = []
    for i, spec in enumerate(specs):
        kind = spec.get("type") if isinstance(spec, dict) else None
        if kind not in LAYER_TYPES:
            raise ModelFileError(f"{path}: layer {i} has unknown type {kind!r}")
        config = spec.get("config", {})
        if isinstance(config, dict) and "rng" in config:
            raise ModelFileError(f"{path}: layer {i} ({kind}) has a bad config: "
                                 "unexpected key 'rng'")
        if isinstance(config, dict) and _config_size(config) > budget:
            raise ModelFileError(f"{path}: layer {i} ({kind}) has a config too large for "
                                 f"the arrays in the file: {config}")
        try:
            layer = LAYER_TYPES[kind](**config)
        except (TypeError, ValueError, OverflowError, MemoryError) as exc:
            raise ModelFileError(f"{path}: layer {i} ({kind}) has a bad config: {exc}") from None
        for store_name in ("params", "buffers"):
            store = getattr(layer, store_name)
            for name, current in store.items():
                key = f"{i}.{store_name}.{name}"
                if key not in arrays:
                    raise ModelFileError(f"{path}: missing array {key}")
                value = arrays[key]
                if value.shape != current.shape:
                    raise ModelFileError(
                        f"{path}: array {key} has shape {value.shape}, "
                        f"the layer {kind} needs {current.shape}")
                if not np.issubdtype(value.dtype, np.floating):
                    raise ModelFileError(f"{path}: array {key} has dtype {value.dtype}, "
                                         "expected floating point")
                if not np.all(np.isfinite(value)):
                    raise ModelFileError(f"{path}: array {key} holds NaN or infinite values")
                store[name] = value.astype(current.dtype)
        layers.append(layer)
    if not layers:
        raise ModelFileError(f"{path}: the model has no layers")
    return Sequential(layers, metadata=metadata)


def _config_size(config):
    """Product of the numbers in a layer config (numeric strings included, as ``int()`` takes
    them): at least the number of elements of the layer's largest array."""
    size = 1.0
    for value in config.values():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            try:
                number = abs(float(item))
            except (TypeError, ValueError, OverflowError):
                continue
            if number == number:  # NaN is left for the layer's own check
                size *= max(number, 1.0)
    return size

