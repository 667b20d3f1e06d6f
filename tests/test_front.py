"""The front door (``nst.front``): one entry for both methods, each run checked once, and the
instant picture never waiting for the optimizer's network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nst import front
from nst.config import StyleConfig
from nst.records import INSTANT_STEP, Progress, Result
from tests.test_app import _jpeg, _open, _results, _stylize, _upload

ROOT = Path(__file__).resolve().parents[1]


class Counter:
    """Wraps a function and counts its calls."""

    def __init__(self, function):
        self.function, self.calls = function, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.function(*args, **kwargs)


def _count_checks(monkeypatch: pytest.MonkeyPatch) -> dict[str, Counter]:
    """Counters of the run's checks: ``check`` itself, and the memory and shape checks made
    within it (the page's forecast reads the free memory at every rerun, which is no check)."""
    inside = {"check": False}
    real_check, real_memory = front.check, front.available_memory

    def check(*args, **kwargs):
        inside["check"] = True
        try:
            return real_check(*args, **kwargs)
        finally:
            inside["check"] = False

    def memory():
        if inside["check"]:
            counters["memory"].calls += 1
        return real_memory()

    counters = {
        "check": Counter(check),
        "memory": Counter(real_memory),
        "shape": Counter(front.check_shape),
    }
    monkeypatch.setattr(front, "check", counters["check"])
    monkeypatch.setattr(front, "available_memory", memory)
    monkeypatch.setattr(front, "check_shape", counters["shape"])
    return counters


def test_a_painted_run_from_the_page_is_checked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    counters = _count_checks(monkeypatch)
    at = _open()
    _upload(at, _jpeg(), [("a.jpg", _jpeg(seed=1)), ("b.jpg", _jpeg(seed=2))])
    _stylize(at, steps=2)
    (record,) = _results(at)
    assert record.steps_done == 2
    # One check of the run: its settings, its three images' shapes, its memory.
    assert counters["check"].calls == 1
    assert counters["memory"].calls == 1
    assert counters["shape"].calls == 3


def test_a_painted_run_yields_the_instant_picture_then_its_steps(content_image, style_image):
    config = StyleConfig(size=96, steps=2, precision="float32", preview_every=1)
    events = list(front.stylize(content_image, [style_image], config))
    first, steps, result = events[0], events[1:-1], events[-1]
    assert isinstance(first, Progress) and first.step == INSTANT_STEP
    assert [event.step for event in steps] == [1, 2] and isinstance(result, Result)
    np.testing.assert_array_equal(result.instant, first.preview)
    assert result.image.shape == first.preview.shape == (72, 96, 3)


def test_the_instant_method_is_one_result_without_steps(content_image, style_image):
    config = StyleConfig(size=128, method="instant")
    (result,) = list(front.stylize(content_image, [style_image], config))
    assert result.steps_done == 0 and result.history == [] and np.isnan(result.final_loss)
    assert result.image.shape == (96, 128, 3) and set(result.timings) >= {"build", "total"}


def test_refusals_are_one_sentence_before_anything_runs(content_image, style_image):
    config = StyleConfig(size=96, steps=1)
    with pytest.raises(ValueError, match=r"^Give at least one style image\.$"):
        next(front.stylize(content_image, [], config))
    mask = np.ones(content_image.shape[:2], np.float32)
    with pytest.raises(ValueError, match=r"^A mask works with one or two styles"):
        next(front.stylize(content_image, [style_image] * 3, config, mask=mask))
    with pytest.raises(ValueError, match=r"^Style blend: give one weight per style \(2 chosen"):
        next(front.stylize(content_image, [style_image] * 2, config.replace(style_blend=(1, 2, 3))))


def _fresh_process(script: str) -> dict:
    """The JSON that ``script`` prints last, run in a fresh Python on random weights."""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "NST_WEIGHTS": "random"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_an_instant_run_in_a_fresh_process_builds_no_vgg_network() -> None:
    script = f"""
import json, sys
sys.path.insert(0, {str(ROOT)!r})
from tests.test_app import _jpeg, _open, _results, _settle, _upload
at = _open()
_upload(at, _jpeg(), [("a.jpg", _jpeg(seed=1))])
at.radio(key="method").set_value("instant").run()
at.slider(key="size").set_value(64)
at.button(key="stylize").click()
at.run()
assert not at.exception, at.exception
_settle(at)
record = _results(at)[0]
print(json.dumps({{
    "method": record.config.method,
    "shape": list(record.image.shape),
    "tensorflow": "tensorflow" in sys.modules,
    "optimizer": "nst.engine.model" in sys.modules,
}}))
"""
    seen = _fresh_process(script)
    assert seen["method"] == "instant" and seen["shape"] == [48, 64, 3]
    assert not seen["optimizer"] and not seen["tensorflow"]


def test_a_fresh_painted_run_imports_the_optimizer_beside_the_instant_picture() -> None:
    script = f"""
import json, sys, threading
sys.path.insert(0, {str(ROOT)!r})
import numpy as np
from nst import front
from nst.config import StyleConfig
from nst.instant import networks
from nst.synthetic import synthetic_landscape

seen = {{}}
picture = front._instant_picture

def spy(*args, **kwargs):
    # The instant picture is made while the optimizer is imported on another thread, whose
    # networks were loaded before it started.
    seen["loaded"] = networks._loaded is not None
    seen["importing"] = [t.name for t in threading.enumerate() if t.name == "nst-engine-import"]
    return picture(*args, **kwargs)

front._instant_picture = spy
content = synthetic_landscape(48, 64, seed=1)
style = synthetic_landscape(40, 40, seed=2)
config = StyleConfig(size=64, steps=3, scales=1, optimizer="adam", precision="float32")
events = list(front.stylize(content, [style], config))
seen["steps"] = events[-1].steps_done
seen["shape"] = list(events[-1].image.shape)
seen["engine"] = "nst.engine" in sys.modules
seen["threads"] = [t.name for t in threading.enumerate() if t.name == "nst-engine-import"]
print(json.dumps(seen))
"""
    seen = _fresh_process(script)
    assert seen["loaded"] and seen["importing"] == ["nst-engine-import"]
    assert seen["steps"] == 3 and seen["shape"] == [48, 64, 3]
    assert seen["engine"] and seen["threads"] == []


def test_script_runs_leave_keras_session_alone_under_a_running_step() -> None:
    """Streamlit's clean-up after a script run must not clear the Keras session (it freed
    TensorFlow state under a job's running step and crashed the server)."""
    import keras
    from streamlit.runtime.scriptrunner import script_runner

    from studio.keras_guard import keep_keras_session

    cleared = []
    original = keras.backend.clear_session
    keras.backend.clear_session = lambda *args, **kwargs: cleared.append(True)
    try:
        keep_keras_session()
        script_runner._clean_problem_modules()
    finally:
        keras.backend.clear_session = original
    assert cleared == []


def test_the_warm_up_traces_everything_a_default_run_uses(content_image, style_image):
    from nst.engine import prepare

    # With a deep content layer in a pass of its own from 181 px on, a run has two structures
    # of the loss: content in the style's pass (128 px) and apart; each keeps its traces with
    # its own extractor. (The default, one pass at every size, is the first of them.)
    config = StyleConfig(content_scale=0.5, content_layers=("block5_conv2",))
    assert front.warm_up(config) > 0
    extractors = [
        prepare(content_image, [style_image], config.replace(size=size)).extractor
        for size in (128, 256)
    ]
    assert extractors[0] is not extractors[1]

    def traces() -> dict:
        return {
            (index, key): extractor.traced(key, lambda: None).experimental_get_tracing_count()
            for index, extractor in enumerate(extractors)
            for key in extractor.cached_traces()
        }

    before = traces()
    assert {index for index, _ in before} == {0, 1}
    # A default run of another size and steps: no new function, no new trace.
    run = front.stylize(content_image, [style_image], config.replace(size=320, steps=8))
    result = front.result_of(run)
    assert result.steps_done == 8 and result.image.shape[1] == 320
    assert traces() == before
