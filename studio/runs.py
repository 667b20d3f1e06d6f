"""Running a job on the process-wide job backend (``nst.jobs``) with a live view, and keeping it.

The page talks only to the backend's interface, so it works the same whether jobs run in this
process or on RQ workers (``NST_QUEUE``). On a remote backend the web process never builds a
network: the worker checks the weights, layers and memory, and its refusal comes back as the
job's error sentence.

Session state used here: ``mailbox`` (the ``RunMailbox``), ``queue_owner`` (this session's
secret, required by the backend for every call on its jobs), ``run_error`` and ``run_notice``.
"""

from __future__ import annotations

import io
import logging
import math
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st
from PIL import Image

from nst.config import StyleConfig, validate
from nst.images import resize_longest, resize_to, to_png_bytes, to_uint8
from nst.jobs import (
    JobRequest,
    JobState,
    JobStatus,
    QueueUnavailableError,
    UnknownJobError,
    get_backend,
)
from nst.jobs.backend import PAGE_POLL_SECONDS, decode_png, page_poll_seconds
from studio.gallery import add_result, find_result, next_result_id, results
from studio.network import ensure_model
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
from studio.widgets import build_config

logger = logging.getLogger(__name__)

POLL_SECONDS = PAGE_POLL_SECONDS  # how often the page asks the queue for news during a run
CHART_SECONDS = 1.0  # how often the live loss chart is redrawn
SETTLE_SECONDS = 10.0  # how long a stopped run may take to hand back its image
UNREACHABLE_SECONDS = 10.0  # how long the page keeps retrying a queue it cannot reach
WORKERS_SECONDS = 5.0  # how often a queued run on Redis checks that some worker listens


@dataclass(frozen=True)
class RunInfo:
    """What the page knows about a run besides the request: names for the gallery."""

    config: StyleConfig
    content: np.ndarray  # float32, as submitted (for the before/after view)
    content_name: str
    content_key: str
    style_names: tuple[str, ...]
    continued_from: int | None = None
    owner: str = ""  # the session's secret for the job backend
    mask: MaskChoice | None = None  # the run's mask (``MaskChoice.source`` names it)

    def settings(self, config: StyleConfig) -> dict[str, Any]:
        """What a picture of this run embeds in its PNG: ``config`` and the mask used."""
        return {**config.to_dict(), "mask": self.mask.source if self.mask else None}


def session_owner() -> str:
    """This browser session's secret: the job backend shows a job only to its owner."""
    return st.session_state.setdefault("queue_owner", secrets.token_urlsafe(24))


def start_run(
    content: InputImage | None,
    styles: Sequence[InputImage],
    values: dict[str, Any],
    mask: MaskChoice | None,
    stage: Any,
    *,
    continue_from: int | None = None,
) -> StudioResult | None:
    """Validate the inputs, then run the job in ``stage`` (see ``watch_job``).

    ``mask`` is the mask picked on the page. A run that continues from a result on another
    photo than the one picked keeps that result's own mask unless an uploaded mask is picked
    (a painted mask belongs to its photo). Problems are reported with one ``st.error``
    sentence and None is returned.
    """
    base = find_result(continue_from) if continue_from is not None else None
    if continue_from is not None and base is None:
        st.error("That result is no longer in the gallery; please start a new run.")
        return None
    if content is None and base is None:
        st.error("Add a photo first: upload one or take a picture with the camera.")
        return None
    if not styles:
        st.error("Choose a style first: upload a painting or pick one of the sample styles.")
        return None
    try:
        config = build_config(values)
    except ValueError as error:
        st.error(str(error))
        return None
    if base is not None and config.method == "instant":
        config = config.replace(method="optimize")  # continuing means painting on
    if base is not None and (content is None or content.key != base.content_key):
        info_content = (to_float(base.content), base.content_name, base.content_key)
    else:
        assert content is not None
        info_content = (content.as_float(), content.name, content.key)
    photo, name, key = info_content
    if mask is not None and not mask.fits(key):
        mask = None  # painted on the picked photo, not on the one this run paints
    if mask is None and base is not None and (content is None or content.key != key):
        mask = base.mask_choice()  # continuing on the result's own photo: its own mask
    try:
        validate(config, len(styles), mask is not None)
        backend = get_backend()
    except ValueError as error:  # a combination that cannot run, or a malformed NST_QUEUE
        st.error(str(error))
        return None
    init_image = None
    if base is not None:
        init_image = base.final_image()
    if not backend.remote and not _ready_here(config, photo.shape):
        return None
    photo = resize_longest(photo, config.size)  # the engine's working size: less to keep queued
    request = JobRequest(
        content=photo,
        styles=tuple(style.as_float() for style in styles),  # shrunk to what the run uses
        config=config,
        mask=None if mask is None else mask.as_float(),
        init_image=init_image,
    )
    info = RunInfo(
        config,
        photo,
        name,
        key,
        tuple(s.name for s in styles),
        continue_from,
        owner=session_owner(),
        mask=mask,
    )
    return watch_job(request, info, stage)


def _ready_here(config: StyleConfig, content_shape: tuple[int, ...]) -> bool:
    """In-process runs only: load the networks the run uses and check this machine's memory
    now, so a problem is one sentence before the run rather than a failure in its middle."""
    from nst.instant import InstantUnavailable, load_networks
    from nst.instant.transfer import check_instant_memory

    try:
        load_networks()  # both methods show the instant picture first
        check_instant_memory(config, content_shape)
    except (InstantUnavailable, ValueError) as error:
        st.error(str(error))
        return False
    if config.method == "instant":
        return True
    from nst.engine.memory import check_memory
    from nst.engine.model import WeightsError

    try:
        ensure_model(config)
        check_memory(config, content_shape)
    except (WeightsError, ValueError) as error:  # no weights, a missing layer, too large
        st.error(str(error))
        return False
    return True


@dataclass
class RunOutcome:
    """How one watched job ended: a gallery record (id still 0 until kept) or a message."""

    record: StudioResult | None = None
    error: str | None = None
    notice: str | None = None


class RunMailbox:
    """Hands the outcome of a run from the script thread that watched it to the next run.

    With ``runner.fastReruns`` a click *stops* the running script and starts a new script run
    at once, in parallel. The stopped script may not touch ``st.session_state`` any more (every
    access raises its ``StopException`` again), so its ``finally`` ends the job and posts the
    outcome here, a plain thread-safe object that the session holds; the next run collects it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._pending: set[str] = set()
        self._outcomes: list[RunOutcome] = []

    def begin(self, job_id: str) -> None:
        with self._lock:
            self._pending.add(job_id)

    def deliver(self, job_id: str, outcome: RunOutcome) -> None:
        with self._changed:
            self._pending.discard(job_id)
            self._outcomes.append(outcome)
            self._changed.notify_all()

    def wait_idle(self, timeout: float) -> None:
        """Wait until no watched job is still being settled by an interrupted script."""
        with self._changed:
            self._changed.wait_for(lambda: not self._pending, timeout)

    def peek(self) -> list[RunOutcome]:
        with self._lock:
            return list(self._outcomes)

    def discard(self, outcomes: Iterable[RunOutcome]) -> None:
        with self._lock:
            done = {id(outcome) for outcome in outcomes}
            self._outcomes = [item for item in self._outcomes if id(item) not in done]


def session_mailbox() -> RunMailbox:
    """This browser session's ``RunMailbox``."""
    return st.session_state.setdefault("mailbox", RunMailbox())


def collect_runs() -> StudioResult | None:
    """Keep the outcomes of finished or interrupted runs (call at the top of every page run).

    Returns the newest record kept, if any.
    """
    mailbox = session_mailbox()
    mailbox.wait_idle(SETTLE_SECONDS + 2.0)
    outcomes = mailbox.peek()
    newest = None
    for outcome in outcomes:
        record = outcome.record
        if record is not None:
            if record.result_id == 0:
                record.result_id = next_result_id()
            if all(item is not record for item in results()):
                add_result(record)
            newest = record
        elif outcome.error:
            st.session_state["run_error"] = outcome.error
        elif outcome.notice:
            st.session_state["run_notice"] = outcome.notice
    mailbox.discard(outcomes)
    return newest


def watch_job(request: Any, info: RunInfo, stage: Any) -> StudioResult | None:
    """Submit to the job backend and show queue position, progress, preview and loss chart.

    A click anywhere (Stop, another widget, another page) or a closed tab interrupts this
    script at its next ``st.*`` call; the ``finally`` then cancels the job (within a step) and
    posts the image so far to the mailbox, from where the next run puts it in the gallery.
    """
    queue = get_backend()
    mailbox = session_mailbox()
    try:
        job_id = queue.submit(request, owner=info.owner)
        submitted = time.monotonic()
    except QueueUnavailableError as error:
        st.error(str(error), icon=":material/cloud_off:")
        return None
    mailbox.begin(job_id)
    seen: list[JobStatus] = []  # the latest status: what is kept if the queue goes away
    instant_png: bytes | None = None  # the instant picture, once the page has seen it
    try:
        with stage.container():
            bar, message = live_header(
                "stop_run",
                "Stop keeps the picture so far. Changing a setting or leaving the page also "
                "stops the run.",
            )
            preview_column, chart_column = st.columns(2)
            preview_slot = preview_column.empty()
            chart_slot = chart_column.empty()
        shown_step: int | None = None
        chart_drawn = 0.0
        download_slot = preview_column.empty()
        poller = StatusPoller(queue, job_id, info.owner, message)
        while (status := poller.next()) is not None:
            seen[:] = [status]
            if status.state is JobState.QUEUED:
                poller.show_waiting(status, bar, "run")
            elif status.state is JobState.RUNNING:
                progress = status.progress
                if progress is None:
                    bar.progress(0.0, text="Preparing the network and the style targets…")
                else:
                    bar.progress(
                        min(1.0, progress.step / max(1, progress.total)),
                        text=_progress_text(progress),
                    )
                message.empty()
                if status.preview is not None and status.preview_step != shown_step:
                    shown_step = status.preview_step
                    preview_slot.image(
                        _display_bytes(status.preview),
                        caption=f"Preview at step {shown_step}"
                        if shown_step
                        else "The instant picture; the optimizer now paints it in detail",
                        width="stretch",
                    )
                    if shown_step == 0 and info.config.method == "optimize" and not instant_png:
                        instant_png = status.preview
                        download_slot.download_button(
                            "Download the instant picture",
                            data=to_png_bytes(
                                decode_png(instant_png), info.settings(instant_config(info.config))
                            ),
                            file_name="instant.png",
                            mime="image/png",
                            on_click="ignore",  # a download must not stop the painting
                            key=f"instant_download_{job_id}",
                            icon=":material/download:",
                        )
                if status.history and time.monotonic() - chart_drawn >= CHART_SECONDS:
                    chart_drawn = time.monotonic()
                    with chart_slot.container():
                        loss_chart(status.history)
            if status.state.finished:
                break
            time.sleep(min(POLL_SECONDS, page_poll_seconds(time.monotonic() - submitted)))
    finally:
        # No st.* calls in here: after an interruption they would raise again.
        try:
            outcome = settle_job(job_id, info, seen[0] if seen else None, instant_png)
        except Exception:  # never leave the next run waiting for this one
            logger.exception("Settling job %s failed.", job_id)
            outcome = RunOutcome(error="The run ended unexpectedly; please try again.")
        mailbox.deliver(job_id, outcome)
    return collect_runs()  # only reached when the run ended by itself


def live_header(stop_key: str, caption: str) -> tuple[Any, Any]:
    """A live view's top, inside its container: the progress bar with a Stop button beside it,
    ``caption`` under them, then a slot for messages; returns (bar, message)."""
    bar_column, stop_column = st.columns([5, 1], vertical_alignment="bottom")
    bar = bar_column.empty()
    stop_column.button("Stop", key=stop_key, icon=":material/stop_circle:")
    st.caption(caption)
    return bar, st.empty()


class StatusPoller:
    """The live views' status calls on one job: a queue that cannot be reached is retried with
    a warning in ``message`` for up to ``UNREACHABLE_SECONDS``; a waiting job shows its place in
    line, or that no worker is connected."""

    def __init__(self, queue: Any, job_id: str, owner: str, message: Any) -> None:
        self.queue, self.job_id, self.owner, self.message = queue, job_id, owner, message
        self.workers_checked, self.no_workers = -math.inf, False

    def next(self) -> JobStatus | None:
        """The job's status (also its heartbeat); None once the queue stayed unreachable."""
        lost_since: float | None = None
        while True:
            try:
                status = self.queue.status(self.job_id, owner=self.owner)
            except QueueUnavailableError as error:
                lost_since = lost_since or time.monotonic()
                if time.monotonic() - lost_since > UNREACHABLE_SECONDS:
                    return None  # the caller's settling step keeps what it has and says why
                self.message.warning(f"{error} Retrying…", icon=":material/cloud_off:")
                time.sleep(POLL_SECONDS * 2)
                continue
            if lost_since is not None:
                self.message.empty()
            return status

    def show_waiting(self, status: JobStatus, bar: Any, what: str) -> None:
        """A queued job: an empty bar and where it stands (``what``: "run", "clip")."""
        bar.progress(0.0, text="Waiting for a free slot…")
        if time.monotonic() - self.workers_checked >= WORKERS_SECONDS:
            self.workers_checked = time.monotonic()
            self.no_workers = _no_workers(self.queue)
        if self.no_workers:
            self.message.warning(
                f"No worker is connected to the job queue right now; your {what} starts as "
                "soon as one is.",
                icon=":material/hourglass_disabled:",
            )
        elif status.position:
            self.message.info(
                f"The studio is busy: your {what} is number {status.position} in the queue and "
                "starts as soon as a slot is free.",
                icon=":material/hourglass_top:",
            )
        else:
            self.message.info(f"Your {what} is starting…", icon=":material/hourglass_top:")


def _no_workers(queue: Any) -> bool:
    """True when a remote backend has no worker listening (a queued run would wait forever)."""
    count = getattr(queue, "worker_count", None)
    if count is None:
        return False
    try:
        return count() == 0
    except QueueUnavailableError:
        return False  # the next status call reports it


def _display_bytes(png: bytes) -> Any:
    """A preview as sent to the browser: the PNG itself, or a smaller copy if it is large."""
    with Image.open(io.BytesIO(png)) as image:
        small = max(image.size) <= DISPLAY_SIDE
    return png if small else for_display(decode_png(png))


def _progress_text(progress: Any) -> str:
    if progress.step < 1:  # the instant picture came first
        return f"Instant picture ready; starting the {progress.total} painting steps…"
    text = f"Step {progress.step} of {progress.total}"
    if getattr(progress, "frames", None):
        text = f"Frame {progress.frame} of {progress.frames} · {text.lower()}"
    if progress.step < progress.total:
        text += f" · about {format_seconds(progress.seconds_left)} left"
    if math.isfinite(progress.loss):
        text += f" · loss {progress.loss:.4g}"
    return text


def settle_job(
    job_id: str,
    info: RunInfo,
    last_seen: JobStatus | None = None,
    instant_png: bytes | None = None,
) -> RunOutcome:
    """End a job (cancel it if it still runs, wait up to a step) and say how it ended.

    Uses only the backend, never Streamlit, so it is safe in a ``finally`` after an
    interruption. If the backend cannot be reached, ``last_seen`` (the page's latest status)
    provides the picture so far, and ``instant_png`` (the instant picture as the page saw it)
    the instant picture.
    """
    queue = get_backend()
    status = last_seen
    result = None
    unreachable: str | None = None
    try:
        queue.cancel(job_id, owner=info.owner)  # nothing happens if it has finished
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            status = queue.status(job_id, owner=info.owner)
            if status.state.finished or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if status.state.finished:
            result = queue.result(job_id, owner=info.owner)
        else:
            logger.warning(
                "Job %s still ran %s s after it was cancelled; its last preview is kept.",
                job_id,
                SETTLE_SECONDS,
            )
        queue.forget(job_id, owner=info.owner)
    except UnknownJobError:
        pass
    except QueueUnavailableError as error:
        unreachable = str(error)
    record = _outcome_record(info, status, result)
    if record is not None and unreachable and record.error is None:
        record.error = unreachable
    record = _with_instant(info, record, result, instant_png)
    if record is not None or status is None:
        return RunOutcome(record=record, error=None if record is not None else unreachable)
    if unreachable or status.error:
        return RunOutcome(error=unreachable or status.error)
    return RunOutcome(notice="The run was stopped before its first step.")


def instant_config(config: StyleConfig) -> StyleConfig:
    """The settings of the instant picture a painted run showed first."""
    return config.replace(method="instant")


def _with_instant(
    info: RunInfo, record: StudioResult | None, result: Any, instant_png: bytes | None
) -> StudioResult | None:
    """A painted run's instant picture kept: on its painting's record, or, when the run was
    stopped before the painting's first step, as the record itself."""
    instant = getattr(result, "instant", None)
    if instant is None and instant_png is not None:
        instant = decode_png(instant_png)
    if instant is None:
        return record
    if record is None:
        seconds = float(getattr(result, "timings", {}).get("first_preview", 0.0))
        return _record(info, instant, instant_config(info.config), seconds=seconds)
    if record.config.method == "optimize":
        record.instant = to_uint8(resize_to(instant, *record.image.shape[:2]))
    return record


def _outcome_record(info: RunInfo, status: Any, result: Any) -> StudioResult | None:
    """A gallery record (id still 0) from a job's result, or else from its last preview."""
    if result is not None and result.stopped and not result.error and result.steps_done < 1:
        return None  # stopped before its first step: nothing was painted (the notice says so)
    if result is not None:
        image, config, history = result.image, result.config, list(result.history)
        seconds = float(result.timings.get("total", 0.0))
        steps_done, stopped, error = int(result.steps_done), bool(result.stopped), result.error
        note = result.note
    elif status is not None and status.preview is not None and status.preview_step >= 1:
        # the run did not hand back its result in time: keep the last preview
        progress = status.progress
        image, config, history = decode_png(status.preview), info.config, list(status.history)
        seconds = float(progress.elapsed) if progress is not None else 0.0
        steps_done = int(status.preview_step)
        stopped, error, note = True, status.error, None
    else:
        return None
    return _record(
        info,
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
    info: RunInfo,
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
    if info.mask is not None:
        mask = to_uint8(resize_to(info.mask.as_float()[..., None], *image.shape[:2])[..., 0])
    return StudioResult(
        result_id=0,
        image=to_uint8(image),
        content=to_uint8(resize_to(info.content, *image.shape[:2])),
        config=config,
        content_name=info.content_name,
        content_key=info.content_key,
        style_names=info.style_names,
        created=time.time(),
        seconds=seconds,
        steps_done=steps_done,
        stopped=stopped,
        error=error,
        note=note,
        history=list(history or []),
        continued_from=info.continued_from,
        mask=mask,
        mask_source=info.mask.source if info.mask is not None else None,
    )


def show_run_error() -> None:
    """The one-sentence error (or notice) of the last run, if it ended without an image."""
    error = st.session_state.pop("run_error", None)
    if error:
        st.error(error, icon=":material/error:")
    notice = st.session_state.pop("run_notice", None)
    if notice:
        st.info(notice, icon=":material/info:")
