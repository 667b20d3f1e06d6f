"""Backbone feature extractors from ``keras.applications``, built once and shared.

Weights follow the ``NST_WEIGHTS`` environment variable:

- unset or ``imagenet``: Keras downloads the ImageNet file once into ``$KERAS_HOME/models``;
- a path to an ``.h5`` file: loaded directly (offline installs);
- ``random``: deterministic untrained features (tests, offline demos).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import keras
import numpy as np
import tensorflow as tf

from nst.config import StyleConfig, default_layers, normalised, shallow_layer_count
from nst.cpu import cpu_precision

WEIGHT_FILES = {
    "vgg19": "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "vgg16": "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "resnet50": "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
}
WEIGHT_URLS = {
    "vgg19": "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/",
    "vgg16": "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/",
    "resnet50": "https://storage.googleapis.com/tensorflow/keras-applications/resnet/",
}
_APPLICATIONS = {
    "vgg19": (keras.applications.VGG19, keras.applications.vgg19.preprocess_input),
    "vgg16": (keras.applications.VGG16, keras.applications.vgg16.preprocess_input),
    "resnet50": (keras.applications.ResNet50, keras.applications.resnet50.preprocess_input),
}

RANDOM_SEED = 1234
# The losses and the networks have no Python control flow on tensors, so their traces skip
# AutoGraph's rewriting of the source, a cost paid by a fresh process's first run
# (docs/benchmarks.md, "Cheaper evaluations").
AUTOGRAPH = False


class WeightsError(RuntimeError):
    """The backbone's weights cannot be obtained; the message says how to fix it."""


def configure_devices() -> None:
    """Let TensorFlow grow GPU memory on demand instead of taking all of it at start."""
    for gpu in tf.config.list_physical_devices("GPU"):
        # Raises once the GPU is initialised; growth must be set before first use.
        with contextlib.suppress(RuntimeError):
            tf.config.experimental.set_memory_growth(gpu, True)


def has_gpu() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


# bfloat16 runs natively from compute capability 8.0 (Ampere); older GPUs emulate it slowly.
BF16_MIN_COMPUTE_CAPABILITY = (8, 0)


def gpu_has_bf16() -> bool:
    """True if every visible GPU computes bfloat16 natively (compute capability 8.0 or more)."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return False
    for gpu in gpus:
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if capability is None or tuple(capability) < BF16_MIN_COMPUTE_CAPABILITY:
            return False
    return True


def resolve_precision(precision: str) -> str:
    """'float32' or 'bfloat16' for a config's precision ('auto' picks what is fast here).

    ``auto`` picks bfloat16 where it is native and faster: a CPU with AMX, or an AMD one with
    AVX512_BF16 (``nst.cpu.cpu_prefers_bf16``; emulated bfloat16 on an AVX2-only CPU is much
    slower, and Intel's AVX512_BF16 without AMX slower too), or a GPU of compute capability
    8.0 or more. float16 is never chosen (much slower on CPUs). The
    same holds for both optimizers: on trained features L-BFGS in bfloat16 follows the float32
    loss curve iteration for iteration, faster (docs/benchmarks.md). Where bfloat16's rounding
    does stop its line search, the engine continues in float32 (``nst.engine.run``).
    """
    if precision != "auto" or not has_gpu():
        return cpu_precision(precision)
    return "bfloat16" if gpu_has_bf16() else "float32"


def chosen_layers(config: StyleConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(content layers, style layers) of a run: the config's, or the backbone's defaults."""
    default_content, default_style = default_layers(config.backbone)
    return config.content_layers or default_content, config.style_layers or default_style


def style_layer_shares(config: StyleConfig, count: int) -> list[float]:
    """Each of ``count`` style layers' share of the style loss, summing to 1: the config's
    ``style_layer_weights`` (empty: equal), the deeper layers scaled by ``subject_weight``."""
    weights = normalised(config.style_layer_weights, count, "style_layer_weights")
    shallow = shallow_layer_count(count)
    scaled = [
        weight if index < shallow else weight * config.subject_weight
        for index, weight in enumerate(weights)
    ]
    return normalised(scaled, count, "style_layer_weights")


def weighted_layers(config: StyleConfig) -> tuple[tuple[str, ...], dict[str, float]]:
    """(content layers, style layer -> share) of a run: the style layers without a share (the
    deeper ones at the default ``subject_weight``) are left out."""
    content_layers, style_layers = chosen_layers(config)
    shares = zip(style_layers, style_layer_shares(config, len(style_layers)))
    return content_layers, {name: share for name, share in shares if share > 0}


def run_layers(config: StyleConfig) -> tuple[str, ...]:
    """The layers a run's single pass reads (content, then the style layers with a share)."""
    content_layers, layer_weights = weighted_layers(config)
    return tuple(dict.fromkeys(content_layers + tuple(layer_weights)))


Value = TypeVar("Value")


class BuildCache(Generic[Value]):
    """A thread-safe LRU cache of built values, each key built at most once at a time.

    A value is built outside the cache's lock (a weight download or a model build then blocks
    only the callers that want that same key, never the others); callers asking for a key that
    is being built wait for that build and share its value or its exception. Failed builds are
    not cached. Beyond ``capacity`` values, the least recently used is dropped: it is freed once
    the runs still holding it finish.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._values: OrderedDict[Hashable, Value] = OrderedDict()
        self._building: dict[Hashable, Future[Value]] = {}

    def get(self, key: Hashable, build: Callable[[], Value]) -> Value:
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
            pending = self._building.get(key)
            if pending is None:
                future: Future[Value] = Future()
                self._building[key] = future
        if pending is not None:
            return pending.result()
        try:
            value = build()
        except BaseException as error:
            with self._lock:
                del self._building[key]
            future.set_exception(error)
            raise
        with self._lock:
            del self._building[key]
            self._values[key] = value
            while len(self._values) > self.capacity:
                self._values.popitem(last=False)
        future.set_result(value)
        return value

    def cached_keys(self) -> list[Hashable]:
        """The cached keys, least recently used first."""
        with self._lock:
            return list(self._values)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


# Memory bounds. A backbone with its weights is 60-100 MB (VGG16 59 MB, VGG19 80 MB, ResNet50
# 94 MB in float32), and every extractor is a truncated copy of one (up to the same size): each
# distinct layer choice would otherwise keep another copy for the life of the process. Three
# backbones cover each architecture once; four extractors cover the default layers in both
# precisions plus two custom layer choices, at most about 0.7 GB together.
BACKBONE_CACHE_SIZE = 3
EXTRACTOR_CACHE_SIZE = 6
# Traced losses kept per extractor: one per structure of a problem (a mask, blended styles,
# masked regions), whatever the size or the weights; a few graphs of a few MB each.
TRACED_FUNCTIONS_PER_EXTRACTOR = 8

_devices_configured = threading.Lock()
_backbones: BuildCache[keras.Model] = BuildCache(BACKBONE_CACHE_SIZE)
# Extractors built with no device pinned (TensorFlow places them: the first GPU, else the CPU)
# and, for each pinned device, extractors whose weights live on that device.
_extractors: BuildCache[Extractor] = BuildCache(EXTRACTOR_CACHE_SIZE)
_pinned_extractors: dict[str, BuildCache[Extractor]] = {}
_pinned_lock = threading.Lock()
_pinned = threading.local()


@contextlib.contextmanager
def on_device(device: str | None) -> Iterator[None]:
    """Run this thread's TensorFlow work on ``device`` (e.g. ``"/GPU:1"``); None: TensorFlow's
    own choice.

    Extractors fetched inside get their own copy of the weights on that device, so runs pinned
    to different GPUs never share (or copy) weights; the engine's helper threads (L-BFGS) follow
    the pin of the thread that started the run.
    """
    previous = getattr(_pinned, "device", None)
    _pinned.device = device
    try:
        if device is None:
            yield
        else:
            with tf.device(device):
                yield
    finally:
        _pinned.device = previous


def pinned_device() -> str | None:
    """The device this thread is pinned to by ``on_device``, or None."""
    return getattr(_pinned, "device", None)


def _extractor_cache(device: str | None) -> BuildCache[Extractor]:
    if device is None:
        return _extractors
    with _pinned_lock:
        return _pinned_extractors.setdefault(device, BuildCache(EXTRACTOR_CACHE_SIZE))


def load_backbone(backbone: str) -> keras.Model:
    """The full convolutional backbone with weights per ``NST_WEIGHTS``, cached per process."""
    spec = os.environ.get("NST_WEIGHTS", "").strip() or "imagenet"

    def build() -> keras.Model:
        with _devices_configured:
            configure_devices()
        return _build_backbone(backbone, spec)

    return _backbones.get((backbone, spec), build)


def _build_backbone(backbone: str, spec: str) -> keras.Model:
    if backbone not in _APPLICATIONS:
        raise ValueError(f"backbone: must be one of {', '.join(_APPLICATIONS)}; got {backbone!r}.")
    constructor = _APPLICATIONS[backbone][0]
    if spec == "random":
        model = constructor(weights=None, include_top=False)
        _randomize(model)
        return model
    if spec == "imagenet":
        try:
            return constructor(weights="imagenet", include_top=False)
        except Exception as error:  # Keras raises a bare Exception on URL failures
            cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"
            raise WeightsError(
                f"Could not get the ImageNet weights for {backbone} ({_first_line(error)}). "
                f"Download {WEIGHT_URLS[backbone]}{WEIGHT_FILES[backbone]} into {cache}/, or set "
                f"NST_WEIGHTS=/path/to/{WEIGHT_FILES[backbone]}, or NST_WEIGHTS=random for "
                "untrained features."
            ) from None
    path = Path(spec).expanduser()
    if not path.is_file():
        raise WeightsError(
            f"NST_WEIGHTS points to {path}, which is not a file; set it to the path of "
            f"{WEIGHT_FILES[backbone]}, to 'imagenet' or to 'random'."
        )
    try:
        return constructor(weights=str(path), include_top=False)
    except Exception as error:
        raise WeightsError(
            f"The weights file {path} does not fit the {backbone} backbone "
            f"({_first_line(error)}); use {WEIGHT_FILES[backbone]} or change the backbone."
        ) from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


def _randomize(model: keras.Model) -> None:
    """Deterministic He-normal kernels and zero biases, the same in every process.

    Keras's own initialisers are seeded per process; fixed weights make random-feature runs
    reproducible across processes (tests, CLI seeds). He scaling keeps ReLU activations from
    vanishing in deep layers.
    """
    rng = np.random.default_rng(RANDOM_SEED)
    for layer in model.layers:
        new_weights = []
        for weight in layer.get_weights():
            if weight.ndim == 4:
                fan_in = weight.shape[0] * weight.shape[1] * weight.shape[2]
                new_weights.append(rng.normal(0.0, np.sqrt(2.0 / fan_in), weight.shape))
            else:
                new_weights.append(weight)
        if new_weights:
            layer.set_weights([w.astype(np.float32) for w in new_weights])


@dataclass(frozen=True)
class Extractor:
    """A frozen feature extractor: float RGB in [0, 1] -> {layer name: float32 features}."""

    backbone: str
    model: keras.Model
    preprocess: Any
    layers: tuple[str, ...]
    precision: str

    # ``features`` traced once for every image size (the targets of each scale of a run), and
    # the functions traced around this extractor by the optimizers (``traced``).
    _traced: Any = field(default=None, init=False, repr=False, compare=False)
    _functions: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        traced = tf.function(
            self.__call__,
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)],
            autograph=AUTOGRAPH,
        )
        object.__setattr__(self, "_traced", traced)
        object.__setattr__(self, "_functions", BuildCache(TRACED_FUNCTIONS_PER_EXTRACTOR))

    def __call__(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """``images``: (batch, height, width, 3) float32 RGB in [0, 1]."""
        # The backbone's own preprocessing: caffe-style BGR, 0..255, ImageNet mean removed.
        inputs = self.preprocess(images * 255.0)
        outputs = self.model(inputs, training=False)
        return {name: tf.cast(outputs[name], tf.float32) for name in self.layers}

    def features(self, images: np.ndarray | tf.Tensor) -> dict[str, tf.Tensor]:
        """``self(images)`` as one graph for every size, outside a traced loss: at 512 px
        about half the time of the eager call on a 2-core CPU (docs/benchmarks.md)."""
        return self._traced(tf.convert_to_tensor(images, tf.float32))

    def traced(self, key: Hashable, build: Callable[[], Value]) -> Value:
        """A function built around this extractor once per ``key`` and kept with it (the
        ``TRACED_FUNCTIONS_PER_EXTRACTOR`` most recently used), so that its traces serve every
        run that uses this extractor."""
        return self._functions.get(key, build)

    def cached_traces(self) -> list[Hashable]:
        """The keys of the functions kept by ``traced``, least recently used first."""
        return self._functions.cached_keys()


def get_extractor(
    backbone: str = "vgg19",
    pooling: str = "max",
    layers: tuple[str, ...] | None = None,
    precision: str = "float32",
) -> Extractor:
    """An extractor for ``layers`` (default: the backbone's content and style layers).

    The network is truncated after the deepest requested layer. Built once per
    (backbone, pooling, layers, precision, weights) and device (see ``on_device``) and shared
    by all threads; the ``EXTRACTOR_CACHE_SIZE`` most recently used are kept per device.
    """
    if layers is None:
        content, style = default_layers(backbone)
        layers = tuple(dict.fromkeys(content + style))
    spec = os.environ.get("NST_WEIGHTS", "").strip() or "imagenet"
    key = (backbone, pooling, tuple(layers), precision, spec)
    device = pinned_device()

    def build() -> Extractor:
        # The build may run in whichever waiting thread got there first: pin it explicitly.
        with on_device(device):
            return _build_extractor(backbone, pooling, tuple(layers), precision)

    return _extractor_cache(device).get(key, build)


def _build_extractor(
    backbone: str, pooling: str, layers: tuple[str, ...], precision: str
) -> Extractor:
    base = load_backbone(backbone)
    for name in layers:
        layer_depth(backbone, name)  # a clear error for an unknown name
    truncated = keras.Model(base.input, {name: base.get_layer(name).output for name in layers})
    # bfloat16 runs keep the frozen weights in bfloat16 themselves rather than under Keras's
    # mixed policy: the values are the same ones the mixed policy casts to on every call, and no
    # call then depends on Keras's per-thread autocast scope. Under the mixed policy a run that
    # followed a cancelled one on the same worker thread failed in its first Conv2D ("Incompatible
    # type conversion requested to type bfloat16 for tf.Variable of type float32").
    dtype = "bfloat16" if precision == "bfloat16" else "float32"

    def clone_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        config["dtype"] = dtype
        config["trainable"] = False
        if pooling == "avg" and isinstance(layer, keras.layers.MaxPooling2D):
            # Gatys et al.: replacing max by average pooling improves gradient flow.
            return keras.layers.AveragePooling2D.from_config(config)
        return layer.__class__.from_config(config)

    model = keras.models.clone_model(truncated, clone_function=clone_layer)
    model.set_weights(truncated.get_weights())
    model.trainable = False
    return Extractor(
        backbone=backbone,
        model=model,
        preprocess=_APPLICATIONS[backbone][1],
        layers=layers,
        precision=precision,
    )


def layer_depth(backbone: str, name: str) -> int:
    """The position of layer ``name`` in ``backbone`` (deeper layers cost more to reach)."""
    known = [layer.name for layer in load_backbone(backbone).layers]
    if name not in known:
        usable = [n for n in known if n.endswith(("_conv1", "_conv2", "_relu", "_out"))]
        examples = ", ".join(usable[:: max(1, len(usable) // 3)][:4])
        raise ValueError(f"layers: {backbone} has no layer {name!r}; names look like {examples}.")
    return known.index(name)


def preload(backbone: str = "vgg19", pooling: str = "max", precision: str = "auto") -> Extractor:
    """Build (or fetch from cache) the extractor a default run of ``backbone`` uses, e.g. when
    a worker starts."""
    layers = run_layers(StyleConfig(backbone=backbone, pooling=pooling))
    return get_extractor(backbone, pooling, layers, resolve_precision(precision))
