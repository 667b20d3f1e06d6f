"""A run's time said before it starts: the plan's work at this machine's pace, measured by the
runs that finished here."""

import json

import pytest

from nst import pace
from nst.config import StyleConfig
from nst.plan import plan_scales

PHOTO = (768, 1024, 3)


@pytest.fixture
def pace_file(tmp_path, monkeypatch):
    path = tmp_path / "pace.json"
    monkeypatch.setenv("NST_PACE_FILE", str(path))
    return path


def test_the_estimate_is_the_plans_work_at_the_pace(pace_file) -> None:
    config = StyleConfig(size=2048)
    rows = pace.scale_work(config, PHOTO)
    assert [steps for steps, _, _ in rows] == [scale.steps for scale in plan_scales(config)]
    # The scales up to 512 px are computed whole, the 2048 x 1536 output tile by tile.
    assert [tiled for _, _, tiled in rows] == [False] * 5 + [True]
    assert rows[-1][1] == pytest.approx(1.1 * 2048 * 1536 / 1e6)
    plain, tiled = pace.paces(config)
    expected = sum(s * w * (tiled if t else plain) for s, w, t in rows)
    assert pace.estimate_seconds(config, PHOTO) == pytest.approx(expected)
    assert pace.estimate_seconds(config.replace(size=4096), PHOTO) > 3 * expected


def test_a_finished_run_keeps_this_machines_pace(pace_file) -> None:
    config = StyleConfig(size=1024)
    rows = pace.scale_work(config, PHOTO)
    # A run at a steady 2 s per megapixel-evaluation at every scale.
    elapsed, clock = [], 0.0
    for steps, work, _ in rows:
        for _ in range(steps):
            clock += 2.0 * work
            elapsed.append(clock)
    pace.record(config, PHOTO, elapsed)
    kept = json.loads(pace_file.read_text())
    assert kept[f"vgg19/lbfgs/{pace.cpu_precision('auto')}"]["plain"] == pytest.approx(2.0)
    assert pace.paces(config)[0] == pytest.approx(2.0)
    assert pace.estimate_seconds(config, PHOTO) == pytest.approx(elapsed[-1])
    # Another backbone's pace is its own.
    assert pace.paces(config.replace(backbone="vgg16"))[0] != pytest.approx(2.0)


def test_a_tiny_run_leaves_the_pace_alone(pace_file) -> None:
    config = StyleConfig(size=181, steps=4)
    pace.record(config, PHOTO, [0.5, 1.0, 1.5, 2.0])
    assert not pace_file.exists()
