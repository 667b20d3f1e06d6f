"""Feature extractors and weight resolution (random, .h5 path, ImageNet offline)."""

import threading
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.legacy.saving import legacy_h5_format

from nst.config import weights_mode
from nst.engine import model


def test_weights_mode(monkeypatch):
    for value, mode in [
        ("", "imagenet"),
        ("imagenet", "imagenet"),
        ("random", "random"),
        ("/x/vgg19.h5", "path"),
    ]:
        monkeypatch.setenv("NST_WEIGHTS", value)
        assert weights_mode() == mode


def test_random_weights_are_deterministic_across_builds():
    first = model._build_backbone("vgg19", "random").get_weights()
    second = model._build_backbone("vgg19", "random").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    kernel = first[0]
    assert kernel.shape == (3, 3, 3, 64) and 0.1 < kernel.std() < 0.4  # He scale sqrt(2/27)


def test_extractor_outputs_by_layer_name_with_expected_shapes():
    extractor = model.get_extractor("vgg19", "max", None, "float32")
    outputs = extractor(tf.random.stateless_uniform((1, 64, 96, 3), seed=(0, 1)))
    content, style = model.default_layers("vgg19")
    assert set(outputs) == set(content + style)
    assert outputs["block1_conv1"].shape == (1, 64, 96, 64)
    assert outputs["block3_conv1"].shape == (1, 16, 24, 256)
    assert outputs["block5_conv1"].shape == (1, 4, 6, 512)
    assert all(value.dtype == tf.float32 for value in outputs.values())
    assert extractor is model.get_extractor("vgg19", "max", None, "float32")  # built once
    assert not extractor.model.trainable_weights
    # Truncated after the deepest requested layer.
    assert "block5_conv2" not in [layer.name for layer in extractor.model.layers]


def test_bfloat16_extractor_is_close_to_float32():
    images = tf.random.stateless_uniform((1, 64, 64, 3), seed=(2, 3))
    exact = model.get_extractor("vgg19", "max", ("block3_conv1",), "float32")(images)
    fast = model.get_extractor("vgg19", "max", ("block3_conv1",), "bfloat16")(images)
    error = tf.norm(fast["block3_conv1"] - exact["block3_conv1"]) / tf.norm(exact["block3_conv1"])
    assert float(error) < 0.05


def test_bfloat16_extractor_holds_bfloat16_weights_and_needs_no_autocast_scope():
    """A run's calls must not depend on Keras's per-thread autocast scope: one that was missing
    or stale once failed a job's first Conv2D. The weights are bfloat16 themselves, so the same
    features come out inside a stale float32 scope, in a fresh thread, and as usual."""
    from keras.src.backend.common.variables import AutocastScope

    extractor = model.get_extractor("vgg19", "max", ("block2_conv1",), "bfloat16")
    kernels = [w for w in extractor.model.weights if len(w.shape) == 4]
    assert kernels and {w.dtype for w in kernels} == {"bfloat16"}
    images = tf.random.stateless_uniform((1, 32, 48, 3), seed=(4, 5))
    usual = extractor(images)["block2_conv1"].numpy()
    with AutocastScope("float32"):
        stale = extractor(images)["block2_conv1"].numpy()
    elsewhere: dict[str, np.ndarray] = {}
    worker = threading.Thread(
        target=lambda: elsewhere.setdefault("out", extractor(images)["block2_conv1"].numpy())
    )
    worker.start()
    worker.join()
    np.testing.assert_array_equal(stale, usual)
    np.testing.assert_array_equal(elsewhere["out"], usual)


def test_average_pooling_replaces_max_pooling():
    extractor = model.get_extractor("vgg16", "avg", ("block3_conv1",), "float32")
    kinds = {type(layer).__name__ for layer in extractor.model.layers}
    assert "AveragePooling2D" in kinds and "MaxPooling2D" not in kinds


def test_build_cache_keeps_the_most_recently_used():
    cache = model.BuildCache(2)
    assert cache.get("a", lambda: 1) == 1 and cache.get("b", lambda: 2) == 2
    assert cache.get("a", lambda: -1) == 1  # cached; "a" is now the most recent
    assert cache.get("c", lambda: 3) == 3
    assert cache.cached_keys() == ["a", "c"]  # "b", the least recently used, was dropped
    assert cache.get("b", lambda: 20) == 20  # built again when asked for again


def test_build_cache_builds_outside_its_lock_and_once_per_key():
    import threading

    cache = model.BuildCache(4)
    release = threading.Event()
    started = threading.Event()
    builds = []

    def slow_build():
        builds.append("slow")
        started.set()
        assert release.wait(30)
        return object()

    results = {}

    def ask(name):
        results[name] = cache.get("slow", slow_build)

    first = threading.Thread(target=ask, args=("first",))
    first.start()
    assert started.wait(30)
    second = threading.Thread(target=ask, args=("second",))
    second.start()
    # While "slow" is still building (a download, say), other keys are served at once.
    assert cache.get("fast", lambda: "ready") == "ready"
    assert "first" not in results and "second" not in results
    release.set()
    first.join(30)
    second.join(30)
    assert builds == ["slow"] and results["first"] is results["second"]


def test_build_cache_does_not_keep_failures():
    cache = model.BuildCache(2)

    def broken():
        raise model.WeightsError("no weights")

    with pytest.raises(model.WeightsError, match="no weights"):
        cache.get("k", broken)
    assert cache.cached_keys() == [] and cache.get("k", lambda: 5) == 5


def test_extractor_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(model, "_extractors", model.BuildCache(2))
    layers = [("block1_conv1",), ("block1_conv2",), ("block2_conv1",)]
    first = model.get_extractor("vgg16", "max", layers[0], "float32")
    assert model.get_extractor("vgg16", "max", layers[0], "float32") is first
    for chosen in layers[1:]:
        model.get_extractor("vgg16", "max", chosen, "float32")
    assert [key[2] for key in model._extractors.cached_keys()] == layers[1:]
    assert model.get_extractor("vgg16", "max", layers[0], "float32") is not first  # rebuilt


def test_resnet50_default_layers():
    extractor = model.get_extractor("resnet50", "max", None, "float32")
    outputs = extractor(tf.random.stateless_uniform((1, 64, 64, 3), seed=(4, 5)))
    assert outputs["conv1_relu"].shape == (1, 32, 32, 64)
    assert outputs["conv4_block6_out"].shape == (1, 4, 4, 1024)


def test_unknown_layer_is_a_clear_error():
    with pytest.raises(
        ValueError, match="vgg19 has no layer 'block9_conv9'; names look like block1_conv1, "
    ):
        model.get_extractor("vgg19", "max", ("block9_conv9",), "float32")


def test_weights_from_an_h5_path(tmp_path, monkeypatch):
    source = model._build_backbone("vgg16", "random")
    path = tmp_path / model.WEIGHT_FILES["vgg16"]
    with h5py.File(path, "w") as handle:  # the legacy layout of Keras's downloadable files
        legacy_h5_format.save_weights_to_hdf5_group(handle, source)
    loaded = model._build_backbone("vgg16", str(path))
    assert all(np.array_equal(a, b) for a, b in zip(source.get_weights(), loaded.get_weights()))
    monkeypatch.setenv("NST_WEIGHTS", str(path))
    assert weights_mode() == "path"
    extractor = model.get_extractor("vgg16", "max", ("block1_conv1",), "float32")
    assert np.array_equal(extractor.model.get_weights()[0], source.get_weights()[0])


def test_weights_path_errors_are_actionable(tmp_path):
    with pytest.raises(model.WeightsError, match="not a file; set it to the path of vgg19_weights"):
        model._build_backbone("vgg19", str(tmp_path / "missing.h5"))
    wrong = tmp_path / "wrong.h5"
    with h5py.File(wrong, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(
            handle, model._build_backbone("vgg16", "random")
        )
    with pytest.raises(model.WeightsError, match="does not fit the vgg19 backbone"):
        model._build_backbone("vgg19", str(wrong))


def test_imagenet_offline_says_how_to_get_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise Exception(
            "URL fetch failure on https://storage.googleapis.com/...: None -- "
            "[Errno -2] Name or service not known"
        )

    monkeypatch.setattr(keras.src.applications.vgg19.file_utils, "get_file", offline)
    with pytest.raises(model.WeightsError) as error:
        model._build_backbone("vgg19", "imagenet")
    message = str(error.value)
    assert "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert f"into {tmp_path}/models/" in message
    assert "NST_WEIGHTS=/path/to/" in message and "NST_WEIGHTS=random" in message


def test_precision_resolution(monkeypatch):
    assert model.resolve_precision("float32") == "float32"
    monkeypatch.setattr(model, "has_gpu", lambda: False)
    monkeypatch.setattr("nst.cpu.cpu_prefers_bf16", lambda: False)
    assert model.resolve_precision("auto") == "float32"
    monkeypatch.setattr("nst.cpu.cpu_prefers_bf16", lambda: True)
    assert model.resolve_precision("auto") == "bfloat16"


AVX512_FLAGS = frozenset({"avx2", "avx512f", "avx512bw", "avx512vl", "avx512dq"})


def _simulate_cpu(monkeypatch, flags, cap: str | None, vendor: str | None = None) -> None:
    """A CPU with ``flags`` (and ``vendor``), oneDNN capped at ``cap`` (None: no cap)."""
    from nst import cpu

    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(cpu, "cpu_vendor", lambda: vendor)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    if cap is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)


@pytest.mark.parametrize(
    ("flags", "cap", "bf16", "kernels"),
    [
        ({"avx2", "fma"}, None, False, "avx2"),
        (AVX512_FLAGS, None, False, "avx512"),
        (AVX512_FLAGS | {"avx512_bf16"}, None, True, "avx512"),
        (AVX512_FLAGS | {"amx_bf16"}, "DEFAULT", True, "avx512"),
        # oneDNN capped below a level does not use it, whatever the CPU has.
        (AVX512_FLAGS | {"avx512_bf16", "amx_bf16"}, "AVX2", False, "avx2"),
        (AVX512_FLAGS | {"avx512_bf16"}, "avx512_core_vnni", False, "avx512"),
        (AVX512_FLAGS | {"avx512_bf16"}, "AVX512_CORE_AMX", True, "avx512"),
        # AVX512F alone is not oneDNN's AVX-512 level (Knights Landing lacks BW/VL/DQ).
        ({"avx2", "avx512f"}, None, False, "avx2"),
    ],
)
def test_cpu_kernels_and_bfloat16_follow_the_flags_and_onednns_cap(
    monkeypatch, flags, cap, bf16, kernels
):
    from nst import cpu

    _simulate_cpu(monkeypatch, flags, cap)
    assert cpu.cpu_has_bf16() is bf16
    assert cpu.cpu_kernels() == kernels


@pytest.mark.parametrize(
    ("flags", "vendor", "cap", "prefers"),
    [
        # Intel with AMX: bfloat16 (AMX tiles), unless oneDNN is capped below AMX.
        (AVX512_FLAGS | {"avx512_bf16", "amx_bf16"}, "GenuineIntel", None, True),
        (AVX512_FLAGS | {"avx512_bf16", "amx_bf16"}, "GenuineIntel", "AVX512_CORE_BF16", False),
        # Intel's AVX512_BF16 alone (Cooper Lake, AMX hidden): float32 is faster.
        (AVX512_FLAGS | {"avx512_bf16"}, "GenuineIntel", None, False),
        # AMD's AVX512_BF16 (Zen 4 on): bfloat16, unless capped below it.
        (AVX512_FLAGS | {"avx512_bf16"}, "AuthenticAMD", None, True),
        (AVX512_FLAGS | {"avx512_bf16"}, "AuthenticAMD", "AVX2", False),
        (AVX512_FLAGS, "AuthenticAMD", None, False),
        ({"avx2", "fma"}, None, None, False),
    ],
)
def test_auto_precision_takes_bfloat16_only_where_it_is_faster(
    monkeypatch, flags, vendor, cap, prefers
):
    from nst import cpu

    _simulate_cpu(monkeypatch, flags, cap, vendor)
    assert cpu.cpu_prefers_bf16() is prefers
    monkeypatch.setattr(model, "has_gpu", lambda: False)
    assert model.resolve_precision("auto") == ("bfloat16" if prefers else "float32")


def test_cpu_flags_are_read_from_this_machine():
    from nst import cpu

    flags = cpu.cpu_flags()
    assert isinstance(flags, frozenset)
    if Path("/proc/cpuinfo").exists():
        assert flags and all(flag == flag.strip() and flag for flag in flags)


@pytest.mark.parametrize(("capability", "expected"), [((7, 5), "float32"), ((8, 0), "bfloat16")])
def test_gpus_get_bfloat16_only_where_native(monkeypatch, capability, expected):
    gpu = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")
    monkeypatch.setattr("nst.cpu.cpu_prefers_bf16", lambda: True)  # the GPU decides, not the CPU
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [gpu])
    monkeypatch.setattr(
        tf.config.experimental,
        "get_device_details",
        lambda device: {"compute_capability": capability},
    )
    assert model.resolve_precision("auto") == expected


class _CaptureInput(keras.Model):
    """Stands in for a backbone: returns what it was given under every layer's name."""

    def __init__(self, layers):
        super().__init__()
        self.layer_names = layers

    def call(self, inputs, training=False):
        return {name: inputs for name in self.layer_names}


@pytest.mark.parametrize("backbone", ["vgg19", "vgg16", "resnet50"])
def test_each_backbone_gets_the_input_it_was_trained_on(backbone):
    """The ImageNet weights of all three expect caffe-style input: 0-255, BGR, mean removed."""
    import dataclasses

    extractor = model.get_extractor(backbone, "max", None, "float32")
    captured = dataclasses.replace(extractor, model=_CaptureInput(extractor.layers))
    rgb = tf.constant([[[[1.0, 0.5, 0.0]]]])  # orange in [0, 1]
    seen = captured(rgb)[extractor.layers[0]].numpy().ravel()
    imagenet_mean_bgr = np.array([103.939, 116.779, 123.68])
    np.testing.assert_allclose(seen, np.array([0.0, 127.5, 255.0]) - imagenet_mean_bgr, atol=1e-3)
