"""Loading the instant networks: the any-size transformer graph, rewritten once and cached."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from nst.instant import networks


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(networks.CACHE_ENV, str(folder))
    return folder


def _run(graph: bytes, height: int, width: int) -> np.ndarray:
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    image, vector = (item.name for item in session.get_inputs())
    feeds = {
        image: np.full((1, height, width, 3), 0.5, np.float32),
        vector: np.zeros((1, 1, 1, networks.VECTOR_SIZE), np.float32),
    }
    return session.run(None, feeds)[0]


def test_the_rewritten_graph_is_cached_and_runs_at_any_size(cache: Path) -> None:
    graph = networks.any_size_transformer()
    cached = list(cache.glob("*.onnx"))
    assert len(cached) == 1 and cached[0].read_bytes() == graph
    digest = cached[0].with_suffix(".sha256").read_text()
    assert digest == hashlib.sha256(graph).hexdigest()
    assert networks.any_size_transformer() == graph  # read back, not rewritten
    assert _run(graph, 96, 160).shape == (1, 96, 160, 3)


def test_a_damaged_cache_is_rewritten(cache: Path) -> None:
    graph = networks.any_size_transformer()
    cached = next(cache.glob("*.onnx"))
    cached.write_bytes(graph[: len(graph) // 2])
    assert networks.any_size_transformer() == graph
    assert cached.read_bytes() == graph


def test_an_unwritable_cache_only_costs_the_rewrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv(networks.CACHE_ENV, str(blocked / "cache"))
    assert _run(networks.any_size_transformer(), 64, 64).shape == (1, 64, 64, 3)


def test_the_cache_folder_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(networks.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/somewhere/cache")
    assert networks.cache_dir() == Path("/somewhere/cache/nst")
    monkeypatch.setenv(networks.CACHE_ENV, "/elsewhere")
    assert networks.cache_dir() == Path("/elsewhere")


def test_the_cache_folder_is_in_each_systems_place(monkeypatch: pytest.MonkeyPatch) -> None:
    # platformdirs picks its class for the running system on import; swap in the others'.
    import platformdirs
    from platformdirs import macos, windows

    monkeypatch.delenv(networks.CACHE_ENV, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", "/Users/ana")
    monkeypatch.setattr(platformdirs, "PlatformDirs", macos.MacOS)
    assert networks.cache_dir() == Path("/Users/ana/Library/Caches/nst")
    local_app_data = {"CSIDL_LOCAL_APPDATA": "/C/Users/ana/AppData/Local"}
    monkeypatch.setattr(windows, "get_win_folder", local_app_data.__getitem__)
    monkeypatch.setattr(platformdirs, "PlatformDirs", windows.Windows)
    assert networks.cache_dir() == Path("/C/Users/ana/AppData/Local/nst/Cache")
    monkeypatch.setenv(networks.CACHE_ENV, "~/nst-cache")  # the variable wins everywhere
    assert networks.cache_dir() == Path("/Users/ana/nst-cache")
