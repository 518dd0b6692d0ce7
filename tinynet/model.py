"""Sequential: a network as a list of layers, plus saving and loading.

Backpropagation is the chain rule applied layer by layer. If the network computes
y = f_L(... f_2(f_1(x))), then for any layer k

    dL/d(input of k) = backward_k(dL/d(output of k))

so ``backward`` walks the layers in reverse, handing each one the gradient of the layer
after it. Each layer stores the gradients of its own parameters on the way.
"""

import json
import math
import os
import zipfile

import numpy as np

from . import ops
from .errors import ModelFileError
from .files import atomic_write
from .layers import LAYER_TYPES, BatchNorm, Conv2D, MaxPool2D, ReLU
from .losses import softmax

#: The newest file format this version reads: 1 is one network, 2 an ensemble of them
#: (``tinynet/ensemble.py``). A single network is still written as format 1.
FORMAT_VERSION = 2
SEQUENTIAL_FORMAT = 1
META_KEY = "__tinynet__"
#: Model files whose arrays unpack to more than this are refused before any array is read.
MAX_MODEL_BYTES = 2 * 1024 ** 3
#: ... and beyond that, more than this many times their size on disk (plus the slack below):
#: np.savez stores arrays uncompressed, and deflate cannot shrink trained weights much, so
#: only a forged file (a "zip bomb") asks for more.
MAX_UNPACK_RATIO = 64
UNPACK_SLACK = 16 * 1024 ** 2


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
        #: A fitted ``feature_distance.FeatureDistance`` (``predict(x, distance=True)``), or None.
        self.feature_distance = None

    #: Compute a Conv2D and the ReLU after it (with a 2x2 max-pool after them, or straight
    #: after the Conv2D, that too; at inference also a BatchNorm between them) as one op,
    #: and a BatchNorm and the ReLU after it (training, where the BatchNorm cannot be
    #: folded; with a 2x2 max-pool after them, that too), saving passes over memory; the
    #: same math. False: every layer on its own.
    fuse = True

    def forward(self, x, training=False):
        x, skip = _run(self.layers, x, training, self.fuse)
        if training:
            self._fused = skip
        return x

    def features(self, x):
        """What the last layer reads, at inference: the network's features of ``x`` (the
        input of its final Dense layer for the shipped networks; see feature_distance.py)."""
        return _run(self.layers[:-1], x, False, self.fuse)[0]

    def forward_with_distance(self, x):
        """(logits, relative feature distance) of a batch, from one pass."""
        h = self.features(x)
        return self.layers[-1].forward(h), self.feature_distance.relative([h])

    def backward(self, dout):
        skip = getattr(self, "_fused", ())
        for i in range(len(self.layers) - 1, -1, -1):
            if i not in skip:
                dout = self.layers[i].backward(dout)
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

    def predict(self, x, batch_size=500, distance=False):
        """Class probabilities for a batch of images.

        ``x``: float values in [0, 1], white digit on black (the MNIST convention), shaped
        as ``fit`` and ``forward`` take them: (N, 1, H, W), (N, 1, 28, 28) for the shipped
        networks. Grey images without the channel axis, (N, H, W) or one (H, W), get it
        added. Returns float32 (N, K) for a network with K outputs, each row summing to 1.

        With ``distance=True`` (a model with a fitted ``feature_distance``) it returns
        (probabilities, distances): each image's (N,) distance from every digit seen in
        training, in units of the test's threshold (above 1: far from them all; see
        ``tinynet/feature_distance.py``), from the same pass.
        """
        if distance and self.feature_distance is None:
            raise ValueError("this model has no fitted feature distance "
                             "(tinynet.feature_distance.fit)")
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
        starts = range(0, max(len(x), 1), batch_size)       # an empty batch still runs once,
        if not distance:                                     # giving (0, K)
            out = [softmax(self.forward(x[i:i + batch_size])) for i in starts]
            return np.concatenate(out).astype(np.float32)
        logits, distances = zip(*(self.forward_with_distance(x[i:i + batch_size])
                                  for i in starts))
        return (np.concatenate([softmax(z) for z in logits]).astype(np.float32),
                np.concatenate(distances).astype(np.float32))

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
        meta = {"format": "tinynet", "format_version": SEQUENTIAL_FORMAT,
                "layers": self.describe(), "metadata": {**self.metadata, **(extra_metadata or {})}}
        arrays = self.arrays()
        arrays.update(extra_arrays or {})
        with_feature_distance(self, meta, arrays)
        arrays[META_KEY] = np.array(json.dumps(meta))
        atomic_write(path, lambda f: np.savez(f, **arrays))


def _run(layers, x, training, fuse):
    """Apply ``layers`` in order, fusing them as ``Sequential.fuse`` describes when ``fuse``;
    returns the output and the indices of the layers whose backward a fused op took over."""
    skip, i = set(), 0
    while i < len(layers):
        layer, j = layers[i], i + 1
        if fuse and isinstance(layer, Conv2D):
            bn = None
            if (not training and j < len(layers) and isinstance(layers[j], BatchNorm)
                    and layers[j].num_features == layer.out_channels):
                bn, j = layers[j], j + 1
            relu = j < len(layers) and type(layers[j]) is ReLU
            if relu:
                skip.add(j)                 # its backward is part of the Conv2D's
                j += 1
            pool = _pool2x2(layers, j)
            if pool:
                skip.add(j)                 # and so is the max-pool's
                j += 1
            # at inference, an output that goes straight into a convolution that reads
            # a channels-last input faster is laid out so
            x = layer.forward(x, training=training, relu=relu, bn=bn, pool=pool,
                              channels_last=not training and _reads_channels_last(layers, j))
        elif fuse and isinstance(layer, BatchNorm) and j < len(layers) \
                and type(layers[j]) is ReLU:
            skip.add(j)                     # its backward is part of the BatchNorm's
            j += 1
            pool = (training and x.ndim == 4 and min(x.shape[2:]) >= 2
                    and _pool2x2(layers, j))
            if pool:
                skip.add(j)                 # and so is the max-pool's
                j += 1
            x = layer.forward(x, training=training, relu=True, pool=pool)
        else:
            x = layer.forward(x, training=training)
        i = j
    return x, skip


def _pool2x2(layers, j):
    """Whether layers[j] is a 2x2, stride-2 max-pool, the one the fused ops compute."""
    return (j < len(layers) and isinstance(layers[j], MaxPool2D)
            and layers[j].ph == layers[j].pw == layers[j].stride == 2)


def _reads_channels_last(layers, j):
    """Whether layers[j] is a Conv2D whose op reads a channels-last input faster."""
    conv = layers[j] if j < len(layers) else None
    return isinstance(conv, Conv2D) and ops.conv2d_reads_channels_last(
        conv.params["W"], conv.stride, conv.padding)


def _grad_getter(layer, name):
    return lambda: layer.grads[name]


def read_npz(path):
    """All arrays of an .npz as a dict, never unpickling anything. Raises ModelFileError.

    A small file cannot make this allocate much: the archive may unpack to at most
    ``MAX_UNPACK_RATIO`` times its size on disk (plus ``UNPACK_SLACK``, and never more than
    ``MAX_MODEL_BYTES``), and each array's header (shape and type) must account for exactly
    the bytes its archive entry holds before the array is allocated and read."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelFileError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ModelFileError(f"{path}: is a directory, not a model file")
    if not os.path.isfile(path):   # a FIFO would block forever, a device never end
        raise ModelFileError(f"{path}: not a regular file, so not a model file")
    try:
        with open(path, "rb") as f:
            start = f.read(4)
        size_on_disk = os.path.getsize(path)
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not zipfile.is_zipfile(path):
        if start == b"PK\x03\x04":   # a zip whose directory (at the end) is missing
            raise ModelFileError(f"{path}: damaged or truncated model file (the end of "
                                 "the zip archive is missing)")
        raise ModelFileError(f"{path}: not a tinynet model (.npz) file")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            unpacked = sum(info.file_size for info in infos)
            limit = min(MAX_MODEL_BYTES, UNPACK_SLACK + MAX_UNPACK_RATIO * size_on_disk)
            if unpacked > limit:
                raise ModelFileError(
                    f"{path}: unpacks to {unpacked} bytes, more than the {limit} byte limit "
                    f"for a model file of {size_on_disk} bytes" + (
                        "" if limit < MAX_MODEL_BYTES else " (the limit for any model file)"))
            arrays = {}
            for info in infos:
                if info.filename.endswith(".npy"):
                    arrays[info.filename[:-4]] = _read_member(archive, info, path)
            return arrays
    except ModelFileError:
        raise
    except Exception as exc:
        # A damaged zip or .npy header can fail in many ways (BadZipFile, zlib.error, EOFError,
        # NotImplementedError, SyntaxError from the header, ...); none of them can run code
        # (nothing is unpickled), so every one is reported as a damaged file.
        raise ModelFileError(f"{path}: damaged or truncated model file "
                             f"({type(exc).__name__}: {exc})") from None


def _read_member(archive, info, path):
    """One .npy entry of the archive, its header checked against the entry's size first."""
    name = info.filename[:-4]
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ModelFileError(f"{path}: array {name} has an unknown .npy version {version}")
        if dtype.hasobject:
            raise ModelFileError(
                f"{path}: contains pickled Python objects; refusing to load them "
                "(tinynet files only hold plain arrays)")
        header = f.tell()
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        if header + nbytes != info.file_size:
            raise ModelFileError(
                f"{path}: array {name} claims shape {shape} of {dtype} ({nbytes} bytes) but "
                f"its entry holds {info.file_size - header} bytes of data")
        buffer = bytearray(nbytes)
        view = memoryview(buffer)
        done = 0
        while done < nbytes:
            n = f.readinto(view[done:])
            if not n:
                raise ModelFileError(f"{path}: array {name} is truncated")
            done += n
    array = np.frombuffer(buffer, dtype=dtype, count=count)
    return array.reshape(shape, order="F" if fortran_order else "C")


def load(path):
    """Rebuild a model saved by ``Sequential.save``. Raises ModelFileError on any problem."""
    arrays = read_npz(path)
    return model_from_arrays(arrays, path)


def model_from_arrays(arrays, path="<model>"):
    """Build the model an .npz's arrays describe. Every value of the description is checked
    (type and range) before anything is built from it; raises ModelFileError naming ``path``."""
    if META_KEY not in arrays:
        raise ModelFileError(f"{path}: not a tinynet model (no {META_KEY} entry)")
    try:
        meta = json.loads(str(arrays[META_KEY]))
        if not isinstance(meta, dict):
            raise TypeError("the description is not a JSON object")
        version = meta["format_version"]
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(f"format_version is {version!r}, not a version number")
        specs = meta["members"] if "members" in meta else meta["layers"]
        metadata = meta.get("metadata") or {}
        if not isinstance(specs, list) or not isinstance(metadata, dict):
            raise TypeError("'layers' (or 'members') must be a list and 'metadata' an object")
        _check_metadata(metadata)
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
    if "members" in meta:
        return _ensemble_from_arrays(arrays, meta, specs, metadata, path)
    layers = []
    for i, spec in enumerate(specs):
        kind = spec.get("type") if isinstance(spec, dict) else None
        if not isinstance(kind, str) or kind not in LAYER_TYPES:
            raise ModelFileError(f"{path}: layer {i} has unknown type {kind!r}")
        config = spec.get("config", {})
        where = f"{path}: layer {i} ({kind}) has a bad config"
        if not isinstance(config, dict):
            raise ModelFileError(f"{where}: {config!r} is not an object")
        if "rng" in config:
            raise ModelFileError(f"{where}: unexpected key 'rng'")
        for key, value in config.items():
            problem = _config_value_problem(value)
            if problem:
                raise ModelFileError(f"{where}: {key} is {value!r}, {problem}")
        if _config_size(config) > budget:
            raise ModelFileError(f"{path}: layer {i} ({kind}) has a config too large for "
                                 f"the arrays in the file: {config}")
        try:
            layer = LAYER_TYPES[kind](**config)
        except Exception as exc:
            # Whatever a constructor trips over (int(None), [][0], a zero fan-in) is a setting
            # it cannot use; the size check above has already ruled out huge allocations.
            raise ModelFileError(f"{where}: {exc} (settings {config})") from None
        # The layer converts what it is given (int("3"), int(2.5), int(True)); a value that
        # does not survive unchanged had the wrong type, and would build a different layer
        # from the one that was saved.
        built = layer.config()
        for key, value in config.items():
            if key in built and not _same_value(value, built[key]):
                raise ModelFileError(f"{where}: {key} is {value!r}, expected "
                                     f"{_kind_of(built[key])} such as {built[key]!r}")
        for key, (test, needs) in _LIMITS.get(kind, {}).items():
            if key in built and not test(built[key]):
                raise ModelFileError(f"{where}: {key} is {built[key]!r}, it must be {needs}")
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
                if (kind, name) in _NON_NEGATIVE and np.any(value < 0):
                    raise ModelFileError(f"{path}: array {key} holds negative values "
                                         "(a variance cannot be negative)")
                store[name] = value.astype(current.dtype)
        layers.append(layer)
    if not layers:
        raise ModelFileError(f"{path}: the model has no layers")
    return read_feature_distance(Sequential(layers, metadata=metadata), arrays, meta, path)


def with_feature_distance(model, meta, arrays):
    """Add a model's fitted feature distance, if it has one, to what its file will hold."""
    if model.feature_distance is not None:
        meta["feature_distance"] = model.feature_distance.describe()
        arrays.update(model.feature_distance.arrays())


def read_feature_distance(model, arrays, meta, path):
    """Give ``model`` the feature distance its file holds, if any; returns the model."""
    if "feature_distance" in meta:
        from .feature_distance import FeatureDistance, networks_of

        model.feature_distance = FeatureDistance.from_arrays(
            arrays, meta["feature_distance"], networks_of(model), path)
    return model


def _ensemble_from_arrays(arrays, meta, members, metadata, path):
    """An ``Ensemble`` from a format-2 file: each member checked as a one-network file."""
    from .ensemble import Ensemble, member_arrays

    temperature = meta.get("temperature", 1.0)
    if (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
            or not math.isfinite(temperature) or temperature <= 0):
        raise ModelFileError(f"{path}: the ensemble's temperature is {temperature!r}, "
                             "not a positive number")
    if not members:
        raise ModelFileError(f"{path}: the ensemble has no members")
    built = [model_from_arrays(member_arrays(arrays, k, layers), f"{path} (member {k})")
             for k, layers in enumerate(members)]
    if len({m.describe()[-1]["config"].get("out_features") for m in built}) > 1:
        raise ModelFileError(f"{path}: the ensemble's members have different outputs")
    return read_feature_distance(Ensemble(built, temperature=temperature, metadata=metadata),
                                 arrays, meta, path)


# Values a layer's constructor accepts but that make no working layer.
_LIMITS = {
    "Dense": {"in_features": (lambda v: v >= 1, "at least 1"),
              "out_features": (lambda v: v >= 1, "at least 1")},
    "BatchNorm": {"eps": (lambda v: v > 0, "positive")},
    "MaxPool2D": {"stride": (lambda v: v is None or v >= 1, "at least 1")},
}
_NON_NEGATIVE = {("BatchNorm", "running_var")}


def _config_value_problem(value):
    """Why ``value`` cannot be a layer setting (None if it can): settings are numbers, text
    or lists of numbers, and JSON's NaN and Infinity are not numbers a layer can use."""
    if isinstance(value, bool):
        return "not a number"
    if isinstance(value, float) and not math.isfinite(value):
        return "not a finite number"
    if isinstance(value, list):
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                   and math.isfinite(v) for v in value):
            return "not a list of numbers"
        return None
    if value is None or isinstance(value, (int, float, str)):
        return None
    return "not a number or text"


def _same_value(given, built):
    if isinstance(built, bool) or isinstance(given, bool):
        return given is built
    if isinstance(built, int):
        return isinstance(given, int) and given == built
    if isinstance(built, float):
        return isinstance(given, (int, float)) and given == built
    if isinstance(built, (list, tuple)):
        return (isinstance(given, list) and len(given) == len(built)
                and all(_same_value(g, b) for g, b in zip(given, built)))
    return type(given) is type(built) and given == built


def _kind_of(value):
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, (list, tuple)):
        return "a list of whole numbers"
    if isinstance(value, str):
        return "text"
    return "null"


def _check_metadata(metadata):
    """The metadata entries tinynet itself reads back (for figures and reports)."""
    history = metadata.get("history")
    if history is not None:
        if not isinstance(history, dict):
            raise TypeError("'metadata.history' must be an object")
        for key, values in history.items():
            if not isinstance(values, list) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                    for v in values):
                raise TypeError(f"'metadata.history.{key}' must be a list of numbers")
    for key, high in (("test_accuracy", 1), ("test_loss", None), ("train_seconds", None)):
        value = metadata.get(key)
        if value is None:
            continue
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value) or value < 0 or (high is not None and value > high)):
            raise ValueError(f"'metadata.{key}' is {value!r}, not a possible value")


def _config_size(config):
    """Product of the numbers in a layer config (numeric strings included, as ``int()`` takes
    them): at least the number of elements of the layer's largest array."""
    size = 1.0
    for value in config.values():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            try:
                number = abs(float(item))
            except OverflowError:      # an integer too large for a float: too large, full stop
                return math.inf
            except (TypeError, ValueError):
                continue
            if number == number:  # NaN is left for the layer's own check
                size *= max(number, 1.0)
    return size
