"""A person's run: submitted to the job backend, followed live, settled into their results.

A run belongs to the browser (``studio.owner``), not to one script run. The job computes in the
backend (threads of this process, or RQ workers with ``NST_QUEUE``), its record (``PendingRun``)
waits in the person's store (``studio.store``), and the Stylize page follows it with a fragment
that reruns on its own every ``POLL_SECONDS``: a click elsewhere on the page, another page, a
canvas event or a reload reruns the page and the fragment simply follows the job again. Only
Stop, or a new Stylize (which says that it replaces the running one), ends it. Other pages show
a small badge that follows it too. Every status call is the job's heartbeat: when no page has
asked for ``nst.jobs.grace_seconds()`` (the tab was closed), the backend stops the run, which
keeps its picture; the person's next visit settles it into their results.

The page checks only what it must to submit (a photo, a painting, settings that make a
``StyleConfig``); the job checks the run once (``nst.front.check``) and its refusal comes back
as the run's one sentence. The page never builds a network.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import streamlit as st
from PIL import Image

from nst.config import StyleConfig
from nst.images import resize_longest, resize_to, to_png_bytes, to_uint8
from nst.jobs import (
    JobRequest,
    JobState,
    JobStatus,
    QueueUnavailableError,
    UnknownJobError,
    get_backend,
)
from nst.jobs.backend import PAGE_FIRST_POLL_SECONDS, PAGE_POLL_SECONDS, decode_png, picture_due
from nst.records import INSTANT_STEP
from studio.gallery import add_result, find_result, owner_store
from studio.owner import browser_key
from studio.results import loss_chart
from studio.session import (
    DISPLAY_SIDE,
    InputImage,
    MaskChoice,
    StudioResult,
    for_display,
    format_seconds,
    to_float,
)
from studio.store import CLAIM_SECONDS, PendingRun
from studio.store.records import T, same_job
from studio.widgets import build_config

logger = logging.getLogger(__name__)

POLL_SECONDS = PAGE_POLL_SECONDS  # how often the live view asks the queue for news
# How often the live view's loss chart takes in new steps. Between, the page sends the same
# chart, which the browser does not draw again: redrawing it at every poll cost Chromium about
# half a core, slowing the run beside it on a 2-core machine (docs/benchmarks.md).
CHART_SECONDS = 2.0
BADGE_SECONDS = 2.0  # how often another page's badge does
SETTLE_SECONDS = 10.0  # how long a stopped run may take to hand back its image
REPLACED = (
    "Your previous run was stopped to start this one; the picture it had painted is in the gallery."
)
REPLACED_KEY = "replaced_by"  # the run that replaced a running one, while this tab follows it
STOPPING = (
    "Stopping: the run ends when the step it is computing does (minutes at print sizes) and "
    "keeps what it has painted."
)


def session_owner() -> str:
    """Whose runs these are: the browser's key (the job backend shows a job only to it)."""
    return browser_key()


def run_settings(run: PendingRun, config: StyleConfig) -> dict[str, Any]:
    """What a picture of ``run`` embeds in its PNG: ``config`` and the mask used."""
    return {**config.to_dict(), "mask": run.mask_source}


def start_run(
    content: InputImage | None,
    styles: Sequence[InputImage],
    values: dict[str, Any],
    mask: MaskChoice | None,
    *,
    continue_from: int | None = None,
) -> None:
    """Submit a run of the picked pictures and settings; it replaces a run still going.

    ``mask`` is the mask picked on the page. A run that continues from a result on another
    photo than the one picked keeps that result's own mask unless an uploaded mask is picked
    (a painted mask belongs to its photo). Problems are one ``st.error`` sentence.
    """
    base = find_result(continue_from) if continue_from is not None else None
    if continue_from is not None and base is None:
        st.error("That result is no longer in the gallery; please start a new run.")
        return
    if content is None and base is None:
        st.error("Add a photo first: upload one or take a picture with the camera.")
        return
    if not styles:
        st.error("Choose a style first: upload a painting or pick one of the sample styles.")
        return
    try:
        config = build_config(values)
        backend = get_backend()
    except ValueError as error:  # settings that do not combine, or a malformed NST_QUEUE
        st.error(str(error))
        return
    if base is not None and config.method == "instant":
        config = config.replace(method="optimize")  # continuing means painting on
    if base is not None and (content is None or content.key != base.content_key):
        photo, name, key = to_float(base.content), base.content_name, base.content_key
    else:
        assert content is not None
        photo, name, key = content.as_float(), content.name, content.key
    if mask is not None and not mask.fits(key):
        mask = None  # painted on the picked photo, not on the one this run paints
    if mask is None and base is not None and (content is None or content.key != key):
        mask = base.mask_choice()  # continuing on the result's own photo: its own mask
    photo = resize_longest(photo, config.size)  # the engine's working size: less to keep queued
    request = JobRequest(
        content=photo,
        styles=tuple(style.as_float() for style in styles),  # shrunk to what the run uses
        config=config,
        mask=None if mask is None else mask.as_float(),
        init_image=base.final_image() if base is not None else None,
    )
    owner = session_owner()
    try:
        job_id = backend.submit(request, owner=owner)
        run = PendingRun(
            job_id=job_id,
            config=config,
            content=to_uint8(photo),
            content_name=name,
            content_key=key,
            style_names=tuple(style.name for style in styles),
            continued_from=continue_from,
            mask=None if mask is None else mask.pixels,
            mask_source=None if mask is None else mask.source,
            started=time.time(),
        )
        replaced = owner_store().set_run(owner, run)
    except QueueUnavailableError as error:
        st.error(str(error), icon=":material/cloud_off:")
        return
    if replaced is not None and replaced.job_id != job_id:
        kept = settle_job(owner, replaced, cancel=True)
        if kept is not None:
            st.session_state[REPLACED_KEY] = job_id  # said while this run is followed


def running(owner: str) -> PendingRun | None:
    """The person's run still going (or finished and not yet settled), if any."""
    try:
        return owner_store().run(owner)
    except QueueUnavailableError:  # the same Redis as the queue: Stylize says so, once
        return None


def live_view(values: dict[str, Any]) -> bool:
    """The running run, followed live (True), or nothing to show (False). ``values`` are the
    page's settings now: when they differ from the run's, one line says they apply next time."""
    owner = session_owner()
    run = running(owner)
    replacing = st.session_state.get(REPLACED_KEY)
    following = run is not None and replacing == run.job_id
    if replacing is not None and (run is None or following):
        # While this tab follows the run that replaced another, and once after it ends.
        st.info(REPLACED, icon=":material/swap_horiz:")
    if not following:
        st.session_state.pop(REPLACED_KEY, None)
    if run is None:
        return False
    try:
        changed = build_config(values).to_dict() != run.config.to_dict()
    except ValueError:
        changed = True
    _follow(owner, changed)
    return True


@st.fragment(run_every=POLL_SECONDS)
def _follow(owner: str, settings_changed: bool) -> None:
    """One look at the job: progress, preview, loss chart, Stop; settles it once finished."""
    queue = get_backend()
    run = running(owner)
    if run is None:  # settled meanwhile (by another tab, or a badge), or the store is down
        st.rerun()
    try:
        status = _fresh_status(queue, run, owner)
    except UnknownJobError:
        settle_job(owner, run)
        if settling(owner, run.job_id):
            st.caption("Keeping the finished picture…")
            return
        st.rerun()
    except QueueUnavailableError as error:
        st.warning(f"{error} Retrying…", icon=":material/cloud_off:")
        return
    bar_column = stop_row(
        "stop_run",
        owner,
        run.job_id,
        status,
        "The run keeps painting while you change settings, visit other pages or reload; Stop "
        "keeps the picture so far.",
    )
    if settings_changed:
        st.caption(":material/info: The settings you changed apply to your next run.")
    _show_status(bar_column, status, run, owner)
    if status.state.finished:
        record = settle_job(owner, run)
        if record is not None:
            st.session_state["current_id"] = record.result_id
        elif settling(owner, run.job_id):
            return  # another tab or server is keeping it: the next look finds the record
        st.rerun()


def _fresh_status(queue: Any, run: PendingRun, owner: str) -> JobStatus:
    """The job's status. While a picture is due within the poll period (the instant picture
    in the run's first seconds, or the result when the engine expects to finish), it is asked
    for again at the quicker pace within one poll period, so that the picture shows as soon as
    it is made and not up to a period later."""
    status = queue.status(run.job_id, owner=owner)
    waited = 0.0
    while waited + PAGE_FIRST_POLL_SECONDS < POLL_SECONDS and picture_due(
        status, time.time() - run.started
    ):
        time.sleep(PAGE_FIRST_POLL_SECONDS)
        waited += PAGE_FIRST_POLL_SECONDS
        status = queue.status(run.job_id, owner=owner)
    return status


def _show_status(bar_slot: Any, status: JobStatus, run: PendingRun, owner: str) -> None:
    """The bar, the place in line, the preview and the loss chart of one status."""
    if status.state is JobState.QUEUED:
        bar_slot.progress(0.0, text="Waiting for a free slot…")
        waiting_note(status)
        return
    progress = status.progress
    if progress is None:
        bar_slot.progress(0.0, text="Preparing the network and the style targets…")
    else:
        bar_slot.progress(
            min(1.0, progress.step / max(1, progress.total)), text=_progress_text(progress)
        )
    preview_column, chart_column = st.columns(2)
    if status.preview is not None:
        instant = status.preview_step == INSTANT_STEP
        preview_column.image(
            _display_bytes(status.preview, run.job_id, status.preview_step),
            caption="The instant picture; the optimizer now paints it in detail"
            if instant
            else f"Preview at step {status.preview_step}",
            width="stretch",
        )
        if instant and run.instant_png is None:
            owner_store().note_instant(owner, run.job_id, status.preview)
    instant_png = run.instant_png or (
        status.preview if status.preview_step == INSTANT_STEP else None
    )
    if instant_png is not None and run.config.method == "optimize":
        preview_column.download_button(
            "Download the instant picture",
            data=_instant_download(run, instant_png),
            file_name="instant.png",
            mime="image/png",
            on_click="ignore",  # a download must not stop the painting
            key=f"instant_download_{run.job_id}",
            icon=":material/download:",
        )
    if status.history:
        with chart_column:
            loss_chart(_chart_history(run.job_id, status.history))


def _chart_history(job_id: str, history: Sequence[dict[str, Any]]) -> Sequence[dict[str, Any]]:
    """The steps the live chart shows: all of them, taken in every ``CHART_SECONDS``; the same
    steps in between, so that the chart sent is unchanged and the browser keeps it."""
    shown = st.session_state.get("chart_shown")
    now = time.monotonic()
    if shown is None or shown[0] != job_id or now - shown[1] >= CHART_SECONDS:
        shown = (job_id, now, len(history))
        st.session_state["chart_shown"] = shown
    return history[: shown[2]]


def _instant_download(run: PendingRun, instant_png: bytes) -> bytes:
    """The instant picture as a PNG with its settings, encoded once per run, not at every
    poll of the live view."""
    kept = st.session_state.get("instant_download")
    if kept is None or kept[0] != run.job_id:
        data = to_png_bytes(decode_png(instant_png), run_settings(run, instant_config(run.config)))
        kept = (run.job_id, data)
        st.session_state["instant_download"] = kept
    return kept[1]


def waiting_note(status: JobStatus, what: str = "run") -> None:
    """Where a queued job stands (``what``: "run", "clip"): no worker listening, its place in
    line, or starting."""
    queue = get_backend()
    if _no_workers(queue):
        st.warning(
            f"No worker is connected to the job queue right now; your {what} starts as soon as "
            "one is.",
            icon=":material/hourglass_disabled:",
        )
    elif status.position:
        st.info(
            f"The studio is busy: your {what} is number {status.position} in the queue and "
            "starts as soon as a slot is free.",
            icon=":material/hourglass_top:",
        )
    else:
        st.info(f"Your {what} is starting…", icon=":material/hourglass_top:")


def stop_row(key: str, owner: str, job_id: str, status: JobStatus, caption: str) -> Any:
    """A live view's top: a slot for the progress bar, Stop beside it (disabled once the job
    has finished or was stopped), ``caption`` under them, or, once stopped, that it is
    stopping (a step of a print-size picture takes minutes); returns the bar's slot."""
    stopping = st.session_state.get("stopping") == job_id and not status.state.finished
    bar_column, stop_column = st.columns([5, 1], vertical_alignment="bottom")
    stop_column.button(
        "Stop",
        key=key,
        icon=":material/stop_circle:",
        on_click=_stop,
        args=(owner, job_id),
        disabled=status.state.finished or stopping,
    )
    st.caption(f":material/stop_circle: {STOPPING}" if stopping else caption)
    return bar_column


def _stop(owner: str, job_id: str) -> None:
    """Stop's callback: the job ends within a step, and the next look settles it."""
    with contextlib.suppress(UnknownJobError, QueueUnavailableError):  # the next look says so
        get_backend().cancel(job_id, owner=owner)
    st.session_state["stopping"] = job_id


def run_badge() -> None:
    """On the other pages: where the person's run is, followed while they look around."""
    owner = session_owner()
    if running(owner) is not None:
        with st.sidebar:
            _badge(owner)


@st.fragment(run_every=BADGE_SECONDS)
def _badge(owner: str) -> None:
    run = running(owner)
    if run is None:
        return
    try:
        status = get_backend().status(run.job_id, owner=owner)  # also its heartbeat
    except UnknownJobError:
        settle_job(owner, run)
        if settling(owner, run.job_id):
            return
        st.rerun()
    except QueueUnavailableError:
        st.caption(":material/cloud_off: Your run: the job queue cannot be reached.")
        return
    if status.state.finished:
        record = settle_job(owner, run)
        if record is not None:
            st.session_state["current_id"] = record.result_id
            st.toast(f"Your run #{record.result_id} is finished: it is in the gallery.")
        elif settling(owner, run.job_id):
            return
        st.rerun()
    progress = status.progress
    text = "waiting for a slot" if status.state is JobState.QUEUED else "starting"
    if progress is not None and progress.step > INSTANT_STEP:
        text = f"step {progress.step} of {progress.total}"
    st.page_link("pages/stylize.py", label=f"Painting: {text}", icon=":material/brush:")


def prepare_backend() -> None:
    """Create the job backend at a page's first run, so that the in-process one warms the
    engine up in the background (``nst.jobs.start_warm_up``) while the person picks a photo
    and a painting, and their first Stylize paints at once. A malformed or unreachable queue
    is said by the page that needs it."""
    with contextlib.suppress(ValueError, QueueUnavailableError):
        get_backend()


def collect_runs(owner: str | None = None) -> StudioResult | None:
    """Settle the person's run if it ended while no page followed it (a closed tab, a
    reload); call at the top of every page run. Returns the record kept, if any."""
    owner = owner or session_owner()
    run = running(owner)
    if run is None:
        return None
    try:
        status = get_backend().status(run.job_id, owner=owner)
        if not status.state.finished:
            return None
    except UnknownJobError:
        pass
    except QueueUnavailableError:
        return None
    record = settle_job(owner, run)
    if record is not None:
        st.session_state["current_id"] = record.result_id
    return record


def settle_job(owner: str, run: PendingRun, *, cancel: bool = False) -> StudioResult | None:
    """Put a run's picture in the person's results (once, whoever asks first) and forget
    the job; with ``cancel``, stop it first and wait up to a step for its picture.

    How it ended, when it kept no picture, becomes one of the person's notices. Uses only the
    backend and the store, never Streamlit elements.
    """
    store, queue = owner_store(), get_backend()
    return settle_once(
        store,
        queue,
        owner,
        run.job_id,
        "picture",
        lambda: _settle(owner, run, queue, cancel=cancel),
        cancel=cancel,
    )


def settle_once(
    store: Any,
    queue: Any,
    owner: str,
    job_id: str,
    kind: str,
    keep: Callable[[], T],
    *,
    cancel: bool,
    lease: float = CLAIM_SECONDS,
) -> T | None:
    """``keep()`` (the run's record, kept in the store) done once, by whoever claims the run
    first; the run stays in the store until then, so a tab looking meanwhile sees the run or
    its record, and the job is forgotten last. A cancelled run (``cancel``: replaced, already
    off the store) is not claimed. None where another tab, page or server keeps it."""
    if not cancel and store.claim_run(owner, job_id, kind, lease=lease) is None:
        return None
    try:
        return keep()
    finally:
        if not cancel:
            with contextlib.suppress(QueueUnavailableError):
                store.take_run(owner, job_id, kind)
        with contextlib.suppress(UnknownJobError, QueueUnavailableError):
            queue.forget(job_id, owner=owner)


def settling(owner: str, job_id: str, kind: str = "picture") -> bool:
    """Whether the owner's run is still ``job_id`` after a settle that kept nothing: another
    tab or server is turning it into a record, so a follower keeps polling."""
    with contextlib.suppress(QueueUnavailableError):
        return same_job(owner_store().run(owner, kind), job_id)
    return False


def _settle(owner: str, run: PendingRun, queue: Any, *, cancel: bool) -> StudioResult | None:
    status: JobStatus | None = None
    result = None
    lost: str | None = None
    try:
        if cancel:
            queue.cancel(run.job_id, owner=owner)  # nothing happens if it has finished
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            status = queue.status(run.job_id, owner=owner)
            if status.state.finished or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if status.state.finished:
            result = queue.result(run.job_id, owner=owner)
        else:
            logger.warning(
                "Job %s still ran %s s after it was cancelled.", run.job_id, SETTLE_SECONDS
            )
    except UnknownJobError:
        lost = "Your run is no longer known to the studio (it restarted); please start it again."
    except QueueUnavailableError as error:
        lost = str(error)
    record = _outcome_record(run, status, result)
    record = _with_instant(run, record, result)
    failure = lost or (status.error if status is not None else None)
    if record is not None:
        if failure and record.config.method == "instant" and run.config.method == "optimize":
            _tell(owner, str(failure), error=True)  # the painting failed; its instant picture stays
        elif lost and record.error is None:
            record.error = lost
        return add_result(record, owner=owner)
    if lost or (status is not None and status.error):
        _tell(owner, lost or str(status.error), error=True)
    else:
        _tell(owner, "The run was stopped before its first step.")
    return None


def _tell(owner: str, text: str, *, error: bool = False) -> None:
    """How a run ended without a picture: shown on this page's next run, or kept as one of
    the person's notices when no page is there to show it."""
    try:
        st.session_state["run_error" if error else "run_notice"] = text
    except Exception:  # outside a script run
        owner_store().add_notice(owner, text)


def instant_config(config: StyleConfig) -> StyleConfig:
    """The settings of the instant picture a painted run showed first."""
    return config.replace(method="instant")


def _with_instant(run: PendingRun, record: StudioResult | None, result: Any) -> StudioResult | None:
    """A painted run's instant picture kept: on its painting's record, or, when the run was
    stopped before the painting's first step, as the record itself."""
    instant = getattr(result, "instant", None)
    if instant is None and run.instant_png is not None:
        instant = decode_png(run.instant_png)
    if instant is None:
        return record
    if record is None:
        seconds = float(getattr(result, "timings", {}).get("first_preview", 0.0))
        return _record(run, instant, instant_config(run.config), seconds=seconds)
    if record.config.method == "optimize":
        # At its own size: the output size up to 1024 px, a screen's size for a print
        # (``nst.front.PAINTED_INSTANT_SIDE``), not enlarged into the gallery's memory.
        record.instant = to_uint8(instant)
    return record


def _outcome_record(run: PendingRun, status: Any, result: Any) -> StudioResult | None:
    """A gallery record (id still 0) from a job's result, or else from its last preview."""
    if result is not None and (result.stopped or result.error) and result.steps_done < 1:
        return None  # ended before its first step: nothing was painted (a sentence says why)
    if result is not None:
        image, config, history = result.image, result.config, list(result.history)
        seconds = float(result.timings.get("total", 0.0))
        steps_done, stopped, error = int(result.steps_done), bool(result.stopped), result.error
        note = result.note
    elif status is not None and status.preview is not None and status.preview_step > INSTANT_STEP:
        # The run did not hand back its result in time (a step of a print-size picture takes
        # minutes): keep the last preview, at the output size (the photo's shape here) as the
        # engine keeps a run stopped before its last scale.
        progress = status.progress
        image = resize_to(decode_png(status.preview), *run.content.shape[:2])
        config, history = run.config, list(status.history)
        seconds = float(progress.elapsed) if progress is not None else 0.0
        steps_done = int(status.preview_step)
        stopped, error, note = True, status.error, None
    else:
        return None
    return _record(
        run,
        image,
        config,
        seconds=seconds,
        steps_done=steps_done,
        stopped=stopped,
        error=error,
        note=note,
        history=history,
    )


def _record(
    run: PendingRun,
    image: np.ndarray,
    config: StyleConfig,
    *,
    seconds: float,
    steps_done: int = 0,
    stopped: bool = False,
    error: str | None = None,
    note: str | None = None,
    history: list[dict[str, Any]] | None = None,
) -> StudioResult:
    """A gallery record (id still 0) of one picture of a run."""
    mask = None
    if run.mask is not None:
        mask = to_uint8(resize_to(to_float(run.mask)[..., None], *image.shape[:2])[..., 0])
    return StudioResult(
        result_id=0,
        image=to_uint8(image),
        content=to_uint8(resize_to(to_float(run.content), *image.shape[:2])),
        config=config,
        content_name=run.content_name,
        content_key=run.content_key,
        style_names=run.style_names,
        created=time.time(),
        seconds=seconds,
        steps_done=steps_done,
        stopped=stopped,
        error=error,
        note=note,
        history=list(history or []),
        continued_from=run.continued_from,
        mask=mask,
        mask_source=run.mask_source,
    )


def show_run_error() -> None:
    """How the last run ended when it kept no picture (one ``st.error`` or ``st.info``
    sentence), then the person's notices (results removed for space or age); each once."""
    error = st.session_state.pop("run_error", None)
    if error:
        st.error(error, icon=":material/error:")
    notice = st.session_state.pop("run_notice", None)
    if notice:
        st.info(notice, icon=":material/info:")


def _no_workers(queue: Any) -> bool:
    """True when a remote backend has no worker listening (a queued run would wait forever)."""
    count = getattr(queue, "worker_count", None)
    if count is None:
        return False
    try:
        return count() == 0
    except QueueUnavailableError:
        return False  # the next status call reports it


def _display_bytes(png: bytes, job_id: str, step: int) -> Any:
    """A preview as sent to the browser: the PNG itself, or a smaller copy if it is large,
    made once per preview: the page asks for news every second, and a print-size preview has
    up to 17 megapixels to decode and shrink."""
    with Image.open(io.BytesIO(png)) as image:
        small = max(image.size) <= DISPLAY_SIDE
    if small:
        return png
    shown = (job_id, step, len(png))
    kept = st.session_state.get("preview_shown")
    if kept is None or kept[0] != shown:
        kept = (shown, for_display(decode_png(png)))
        st.session_state["preview_shown"] = kept
    return kept[1]


def _progress_text(progress: Any) -> str:
    if progress.step <= INSTANT_STEP:  # the instant picture came first
        return f"Instant picture ready; starting the {progress.total} painting steps…"
    text = f"Step {progress.step} of {progress.total}"
    if getattr(progress, "frames", None):
        text = f"Frame {progress.frame} of {progress.frames} · {text.lower()}"
    scales = getattr(progress, "scales", 1) or 1
    if scales > 1:
        text += f" · at {progress.scale_size} px, scale {progress.scale} of {scales}"
    if progress.step < progress.total:
        # The engine weighs each step by its scale's pixels; without that, the even pace.
        left = getattr(progress, "time_left", float("nan"))
        left = left if math.isfinite(left) else progress.seconds_left
        text += f" · about {format_seconds(left)} left"
    if math.isfinite(progress.loss):
        text += f" · loss {progress.loss:.4g}"
    return text
