"""Test settings shared by every test module."""

import os

# No internet here: tests use untrained features (see DESIGN.md, "Model weights").
os.environ.setdefault("NST_WEIGHTS", "random")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path

import numpy as np
import pytest

# The classic test photos and paintings live beside the checkout and are never committed.
IMAGES = Path(os.environ.get("NST_TEST_IMAGES", Path(__file__).parents[2] / "shared" / "images"))
CONTENT = IMAGES / "content" / "tubingen.jpg"
STYLE = IMAGES / "style" / "starry_night.jpg"


@pytest.fixture(scope="session")
def content_path() -> Path:
    if not CONTENT.is_file():
        pytest.skip(f"test image {CONTENT} is not available")
    return CONTENT


@pytest.fixture(scope="session")
def style_path() -> Path:
    if not STYLE.is_file():
        pytest.skip(f"test image {STYLE} is not available")
    return STYLE


@pytest.fixture(scope="session")
def content_image(content_path: Path) -> np.ndarray:
    from nst.images import load_image, resize_longest

    return resize_longest(load_image(content_path), 256)


@pytest.fixture(scope="session")
def style_image(style_path: Path) -> np.ndarray:
    from nst.images import load_image, resize_longest

    return resize_longest(load_image(style_path), 256)
