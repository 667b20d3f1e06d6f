"""The front door of a run: both methods behind one entry, checked once.

``stylize`` is how the command line, the job kinds, the benchmarks and the studio's demos make a
picture, ``stylize_clip`` a clip. Each checks the run once (``check``, ``check_clip``: the
settings against the inputs, the images' shapes, the memory it needs), makes the instant
network's picture (``nst.instant``) and, for a painted run, hands it to the optimizer
(``nst.engine``) as its start. TensorFlow is imported only when a painted run is checked.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from nst.config import StyleConfig, field_spec
from nst.images import check_shape
from nst.records import (
    INSTANT_STEP,
    CancelToken,
    FrameDone,
    FrameStep,
    Progress,
    Result,
    VideoOutcome,
)
from nst.video_config import VideoConfig

Event = Progress | Result
logger = logging.getLogger(__name__)


# The longest side of the instant picture a painted run starts from and shows first.
PAINTED_INSTANT_SIDE = 1024


def available_memory() -> int:
    """Bytes this process could still use: what the system has available plus our own RSS."""
    import psutil  # only where memory is checked: a cold instant run pays for every import

    process = psutil.Process()
    return int(psutil.virtual_memory().available + process.memory_info().rss)


def needed_memory(
    config: StyleConfig, content_shape: Sequence[int], *, instant_picture: bool = True
) -> int:
    """Bytes a run of ``config`` on a photo of ``content_shape`` peaks at: the instant pass, or
    the optimizer's largest scale (``instant_picture``: whether the instant pass comes first;
    onnxruntime hands its memory back before the optimizer starts, so the larger one counts)."""
    from nst.instant import estimate_instant_memory

    if config.method == "instant":
        return estimate_instant_memory(config, content_shape)
    preview = config.replace(size=min(config.size, PAINTED_INSTANT_SIDE))
    instant = estimate_instant_memory(preview, content_shape) if instant_picture else 0
    from nst.memory import estimate_memory

    return max(instant, estimate_memory(config, content_shape))


def check(
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    config: StyleConfig,
    mask: np.ndarray | None = None,
    *,
    instant_picture: bool = True,
) -> None:
    """Raise ``ValueError`` (one plain sentence) if the run cannot start: the settings against
    the inputs, the images' shapes, the memory it needs. Nothing is allocated before it."""
    count = len(styles)
    if count < 1:
        raise ValueError("Give at least one style image.")
    blend = config.style_blend
    if blend and len(blend) != count:
        raise ValueError(
            f"{field_spec('style_blend').label}: give one weight per style ({count} chosen, "
            f"{len(blend)} given), or leave it empty for equal weights."
        )
    if mask is not None and count > 2:
        raise ValueError(
            f"A mask works with one or two styles (white: first, black: second); {count} are "
            "chosen."
        )
    check_shape(content, what="content image")
    for style in styles:
        check_shape(style, what="style image")
    needed = needed_memory(config, content.shape, instant_picture=instant_picture)
    available = available_memory()
    if needed > available:
        if config.method == "instant":
            amounts = f"about {needed / 1e9:.1f} GB of memory but only {available / 1e9:.1f} GB"
            what = f"An instant {config.size} px result"
        else:
            amounts = f"about {needed / 1e9:.0f} GB of memory but only {available / 1e9:.0f} GB"
            what = f"A {config.size} px result"
        raise ValueError(f"{what} needs {amounts} are available; choose a smaller output size.")


def stylize(
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    config: StyleConfig,
    *,
    mask: np.ndarray | None = None,
    init_image: np.ndarray | None = None,
    cancel: CancelToken | None = None,
    extra_loss: Any = None,
    instant_first: bool = True,
    checked: bool = False,
    optimizer: Any = None,
    tile_pixels: int | None = None,
) -> Iterator[Event]:
    """Repaint ``content`` in the style of ``styles`` with ``config.method``.

    Args:
        content: float32 RGB in [0, 1], any size (resized to ``config.size``).
        styles: one or more paintings, any size; blended by ``config.style_blend``.
        config: every setting of the run.
        mask: optional gray/RGB image in [0, 1]: white where the (first) style applies, black
            where the photo stays (or, with two styles, where the second style applies).
        init_image: a painted run's warm start (a previous result), refined at the output size.
        cancel: set it to end a painted run early; the result keeps the best image so far.
            An instant run is one pass of the network and always finishes.
        extra_loss: further loss terms of a painted run (``nst.engine.prepare``).
        instant_first: a painted run started afresh shows the instant picture first, as a
            ``Progress`` with step ``INSTANT_STEP``; False skips the picture unless the
            optimizer starts from it (``config.init`` "instant").
        checked: the caller has already called ``check`` for this run.
        optimizer: a painted run's optimizer in place of ``config.optimizer``'s (the
            benchmarks' scipy reference, ``nst.engine.run.ScaleOptimizer``).
        tile_pixels: the largest scale computed whole (``nst.plan.TILE_PIXELS`` unless
            given: the benchmarks compare tiled and untiled runs).

    Yields:
        For a painted run, the instant picture (see ``instant_first``) and a ``Progress`` after
        each step; then exactly one ``Result``, the last item.
    """
    started = time.perf_counter()
    fresh = init_image is None and extra_loss is None
    wants_instant = init_image is None and (config.init == "instant" or (instant_first and fresh))
    if not checked:
        check(content, styles, config, mask, instant_picture=wants_instant)
    if config.method == "instant":
        yield _instant_result(content, styles, config, mask, started)
        return
    cancel = cancel or CancelToken()
    instant, first_preview = None, None
    if wants_instant:
        # A print-size run starts from (and shows first) the instant picture at a screen's
        # size: at the print's, the network would take seconds and gigabytes for a start the
        # first scale (about 128 px) shrinks again.
        preview = config.replace(size=min(config.size, PAINTED_INSTANT_SIDE))
        _import_engine_meanwhile()
        instant = _instant_picture(content, styles, preview, mask)
        first_preview = time.perf_counter() - started
        if instant is not None and instant_first and fresh and not cancel.cancelled:
            yield Progress(INSTANT_STEP, config.steps, float("nan"), {}, first_preview, instant)
    from nst.engine import optimize

    for event in optimize(
        content,
        styles,
        config,
        mask=mask,
        init_image=init_image,
        instant=instant,
        cancel=cancel,
        extra_loss=extra_loss,
        started=started,
        optimizer=optimizer,
        tile_pixels=tile_pixels,
    ):
        if isinstance(event, Result):
            if first_preview is not None:
                event.timings["first_preview"] = first_preview
            if tile_pixels is None and not (event.stopped or event.error) and fresh:
                from nst.pace import record

                record(config, content.shape, [row["elapsed"] for row in event.history])
        yield event


# The warm-up run's output size: two scales (128 and 181 px), so that one tiny run builds and
# traces everything a default run of any size uses, the change of scale included (a content
# pass of its own, with ``content_scale`` under 1, from 181 px on).
WARM_UP_SIZE = 181
WARM_UP_STEPS = 4


def warm_up(config: StyleConfig | None = None) -> float:
    """Load both networks and trace the default painted run's loss now, on a small synthetic
    picture, so that a person's first run starts at once; returns the seconds it took. A
    server calls it in the background when it starts (``nst.jobs.start_warm_up``, the RQ
    worker); what it builds is kept in the processes' caches and shared by every run."""
    from nst.config import BACKBONES
    from nst.engine.model import WeightsError
    from nst.synthetic import synthetic_landscape

    started = time.perf_counter()
    config = (config or StyleConfig()).replace(
        size=WARM_UP_SIZE, steps=WARM_UP_STEPS, preview_every=WARM_UP_STEPS
    )
    photo = synthetic_landscape(96, 128, seed=1)
    painting = synthetic_landscape(96, 96, seed=2)[::-1].copy()
    # The default backbone, or the first one whose weights this server has (NST_WEIGHTS may
    # name one backbone's file): what the server cannot run needs no warming.
    others = [name for name in BACKBONES if name != config.backbone]
    for backbone in [config.backbone, *others]:
        try:
            result_of(stylize(photo, [painting], config.replace(backbone=backbone)))
            break
        except WeightsError:
            if backbone == others[-1]:
                raise
    return time.perf_counter() - started


def result_of(events: Iterable[Any], on_progress: Callable[[Any], Any] | None = None) -> Any:
    """Run a stream of ``stylize`` to its end and return its ``Result`` (``on_progress`` sees
    every other record)."""
    for event in events:
        if isinstance(event, Result):
            return event
        if on_progress is not None:
            on_progress(event)
    raise RuntimeError("the run ended without a result")


def _instant_result(
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    config: StyleConfig,
    mask: np.ndarray | None,
    started: float,
) -> Result:
    """The instant network's picture as a finished run (``steps_done`` 0, no loss history).

    ``timings`` holds ``build`` (loading the networks, once per process), ``stylize`` and
    ``total``; the losses are NaN, since the network does not compute the objective.
    """
    from nst.instant import load_networks, stylize_instant

    begun = time.perf_counter()
    networks = load_networks()
    loaded = time.perf_counter()
    image = stylize_instant(content, styles, config, mask=mask, networks=networks)
    done = time.perf_counter()
    timings = {"build": loaded - begun, "stylize": done - loaded, "total": done - started}
    return Result(image=image, history=[], timings=timings, config=config)


def _import_engine_meanwhile() -> None:
    """In a fresh process, import the optimizer (TensorFlow: seconds) on another thread while
    this one makes the instant picture; ``from nst.engine import ...`` then waits for it.

    The instant networks (onnxruntime) are loaded first, so the two threads never import
    modules at the same time; their errors are left to the instant picture to report."""
    if "nst.engine" in sys.modules:
        return
    from nst.instant import InstantUnavailable, load_networks

    try:
        load_networks()
    except InstantUnavailable:
        return
    threading.Thread(target=_import_engine, name="nst-engine-import").start()


def _import_engine() -> None:
    try:
        importlib.import_module("nst.engine")
    except Exception:  # the run's own import raises it again, where it can be reported
        logger.debug("Importing the optimizer ahead of the run failed.", exc_info=True)


def _instant_picture(
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    config: StyleConfig,
    mask: np.ndarray | None,
) -> np.ndarray | None:
    """The instant network's picture at the output size, for a painted run.

    Raises ``InstantUnavailable`` when the optimizer is to start from it; when it is only the
    first preview, the run goes on without one (and the log says why).
    """
    from nst.instant import InstantUnavailable, stylize_instant

    try:
        return stylize_instant(content, styles, config, mask=mask)
    except InstantUnavailable:
        if config.init == "instant":
            raise
        logger.exception("No instant preview for this run.")
        return None


# ----- clips -----


def estimate_pixels(frames: int, shape: tuple[int, int]) -> int:
    """Frames x output pixels, the figure ``VideoConfig.max_video_pixels`` caps."""
    return int(frames) * int(shape[0]) * int(shape[1])


def check_clip_size(frames: int, shape: tuple[int, int], video: VideoConfig) -> None:
    """Raise ``ValueError`` with the figures if a clip would exceed the video pixel cap."""
    total = estimate_pixels(frames, shape)
    if total > video.max_video_pixels:
        per_frame = shape[0] * shape[1]
        most = max(1, video.max_video_pixels // per_frame)
        raise ValueError(
            f"The clip is too long for this size: {frames} frames x {shape[1]}x{shape[0]} px "
            f"= {total:,} pixels, over the cap of {video.max_video_pixels:,}; stylize at most "
            f"{most} frames at this size (max frames), or choose a smaller size."
        )


def stylize_clip(
    frames: Iterable[np.ndarray],
    styles: Sequence[np.ndarray],
    config: StyleConfig,
    video: VideoConfig,
    *,
    frame_count: int,
    cancel: CancelToken | None = None,
    temporal: bool = True,
    outcome: VideoOutcome | None = None,
) -> Iterator[FrameStep | FrameDone]:
    """Stylize ``frames`` (float32 RGB in [0, 1], all of one shape: the working size) in order.

    The run is checked once, at the first frame (every frame has the same shape and settings
    but for the step counts; the caller checks the clip's length with ``check_clip_size``).
    With ``config.method`` "instant" every frame goes through the instant network
    (``nst.instant.video``): one ``FrameDone`` per frame and no steps, steadied by
    ``video.temporal_weight``; else the optimizer paints every frame (``nst.engine.video``),
    yielding a ``FrameStep`` per step and a ``FrameDone`` per frame. ``temporal=False`` is frame
    by frame, the baseline. When ``cancel`` is set the loop ends; ``outcome`` (if given)
    collects the finished frames, ``stopped`` and any numerical ``error``.
    """
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        return
    check(first, styles, config.replace(size=max(first.shape[:2])), instant_picture=True)
    clip = _chain(first, frames)
    if config.method == "instant":
        from nst.instant.video import instant_steadiness, stylize_instant_video

        yield from stylize_instant_video(
            clip,
            styles,
            config,
            frame_count=frame_count,
            steadiness=instant_steadiness(video.temporal_weight) if temporal else 0.0,
            cancel=cancel,
            outcome=outcome,
        )
        return
    from nst.engine.video import optimize_clip

    def first_start(frame: np.ndarray) -> np.ndarray | None:
        if config.init != "instant":
            return None
        return _instant_picture(frame, styles, config.replace(size=max(frame.shape[:2])), None)

    yield from optimize_clip(
        clip,
        styles,
        config,
        video,
        frame_count=frame_count,
        first_start=first_start,
        cancel=cancel,
        temporal=temporal,
        outcome=outcome,
    )


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest
