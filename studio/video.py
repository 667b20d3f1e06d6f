"""The Video page's parts: the clip upload, the settings, the clip's run, its result and its
gallery card.

A clip's run belongs to the browser, as a picture's does (``studio.runs``): its record
(``ClipRun``) waits in the browser's store (``studio.store``, the "clip" shelf), so a reload, a
new tab or another web server finds it and follows it with a fragment that reruns on its own;
a slider, another page or any other click leaves the job painting. Only Stop, or a new clip
(which says that it replaces the running one), ends it; a closed tab's clip goes on for
``NST_GRACE_SECONDS`` and then keeps what it has. The finished clip (``ClipRecord``) goes to
the browser's gallery for ``NST_KEEP_HOURS``, within the clips' own budget ``NST_CLIPS_MB``.

Session state used here: ``video_clip`` (the checked upload), ``video_run`` (the clip run this
tab last saw, followed through a store outage), ``clip_id`` (the clip this tab shows),
``video_replaced`` and ``video_error``. Widget keys start with ``video_`` so that the Video
page keeps its own settings apart from the Stylize page's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import streamlit as st

from nst.config import Adjustments, ServerLimits, StyleConfig, clips_bytes
from nst.jobs import JobState
from nst.jobs.backend import encode_png
from nst.knobs import FieldSpec, specs_of
from nst.video_config import VideoConfig
from nst.videoio import VideoError, VideoInfo, probe
from studio.gallery import owner_store
from studio.runs import POLL_SECONDS, settle_once, settling
from studio.session import InputImage, format_seconds
from studio.store import ClipRecord, ClipRun
from studio.widgets import APP_MANAGED, friendly_error, spec_widget, widget_default

logger = logging.getLogger(__name__)

CLIP_TYPES = ["mp4", "mov", "m4v", "webm", "mkv", "gif"]

# Settings the Video page does not offer: each frame's steps are the video ones, and frames
# are stylized at one scale after the first.
NOT_FOR_VIDEO = frozenset({"steps", "scales", "final_share"}) | APP_MANAGED
VIDEO_MANAGED = frozenset({"max_video_pixels", "max_animation_frames"})
KEY_PREFIX = "video_"
# The Video page proposes the instant method: a clip is many pictures, and the optimizer takes
# many seconds a frame on a CPU where the instant network makes several frames a second
# (docs/video.md). The Stylize page keeps the engine's own default.
PAGE_DEFAULTS = {"method": "instant"}


@dataclass(frozen=True)
class Clip:
    """An uploaded clip that passed ``nst.videoio.probe``."""

    key: str
    name: str
    data: bytes
    info: VideoInfo


def clip_picker() -> Clip | None:
    """Upload a clip; it is checked at once (one sentence if unusable) and remembered."""
    upload = st.file_uploader(
        "Upload a clip",
        type=CLIP_TYPES,
        key="video_upload",
        help="MP4, MOV, WebM or an animated GIF. Only the first video track is used; the sound "
        "is kept in the MP4 you download.",
    )
    remembered: Clip | None = st.session_state.get("video_clip")
    if upload is None:
        if remembered is not None:
            st.caption(f"Kept from your earlier upload: {remembered.name}.")
        return remembered
    if remembered is not None and remembered.key == upload.file_id:
        clip = remembered
    else:
        data = upload.getvalue()
        try:
            info = probe(data, max_pixels=ServerLimits().max_pixels)
        except VideoError as error:
            st.error(f"{upload.name}: {error}")
            st.session_state.pop("video_clip", None)
            return None
        clip = Clip(upload.file_id, upload.name, data, info)
        st.session_state["video_clip"] = clip
    st.video(clip.data)
    st.caption(describe(clip.info))
    if clip.info.notice:
        st.info(clip.info.notice, icon=":material/speed:")
    return clip


def describe(info: VideoInfo) -> str:
    turned = f", turned upright by {info.rotation}°" if info.rotation else ""
    sound = "with sound" if info.has_audio else "no sound"
    return (
        f"{info.width}×{info.height}{turned} · {info.frames} frames at {info.fps:g} fps "
        f"({info.duration:.1f} s) · {sound}"
    )


def page_spec(spec: FieldSpec) -> FieldSpec:
    """The spec as the Video page offers it: with the page's own default where it has one."""
    if spec.name in PAGE_DEFAULTS:
        return dataclasses.replace(spec, default=PAGE_DEFAULTS[spec.name])
    return spec


def _widgets(specs: list[FieldSpec], columns: int) -> dict[str, Any]:
    values: dict[str, Any] = {}
    specs = [page_spec(spec) for spec in specs]
    slots = st.columns(columns)
    for index, spec in enumerate(specs):
        with slots[index % columns]:
            values[spec.name] = spec_widget(spec, key=KEY_PREFIX + spec.name)
    return values


def settings_panel() -> tuple[dict[str, Any], dict[str, Any]]:
    """Sliders from ``StyleConfig`` and ``VideoConfig``; returns (style values, video values)."""
    style_specs = [
        spec
        for spec in [*specs_of(StyleConfig), *specs_of(Adjustments)]
        if spec.name not in NOT_FOR_VIDEO
    ]
    video_specs = [spec for spec in specs_of(VideoConfig) if spec.name not in VIDEO_MANAGED]
    main = [spec for spec in style_specs if spec.group == "main"]
    # The method on a row of its own, above the sliders it decides the meaning of.
    style_values = _widgets([spec for spec in main if spec.choice_labels], 1)
    style_values.update(_widgets([spec for spec in main if not spec.choice_labels], 3))
    video_values = _widgets(video_specs, 4)
    with st.expander("Colour and adjustments", icon=":material/palette:"):
        style_values.update(
            _widgets([spec for spec in style_specs if spec.group in ("color", "adjust")], 3)
        )
    with st.expander("Advanced", icon=":material/tune:"):
        style_values.update(_widgets([spec for spec in style_specs if spec.group == "advanced"], 3))
        st.button(
            "Restore default settings",
            key="video_restore_defaults",
            on_click=_reset,
            icon=":material/restart_alt:",
        )
    return style_values, video_values


def _reset() -> None:
    for spec in [*specs_of(StyleConfig), *specs_of(Adjustments), *specs_of(VideoConfig)]:
        if KEY_PREFIX + spec.name in st.session_state:
            st.session_state[KEY_PREFIX + spec.name] = widget_default(page_spec(spec))


def build_configs(
    style_values: dict[str, Any], video_values: dict[str, Any]
) -> tuple[StyleConfig, VideoConfig, Adjustments]:
    """Validated configs and adjustments; a ValueError names the setting by its label."""
    adjusting = {spec.name for spec in specs_of(Adjustments)}
    try:
        adjustments = Adjustments(
            **{name: value for name, value in style_values.items() if name in adjusting}
        )
        engine_values = {k: v for k, v in style_values.items() if k not in adjusting}
        config = StyleConfig(**engine_values, preview_every=1000)
    except (TypeError, ValueError) as error:
        raise ValueError(friendly_error(error)) from None
    try:
        video = VideoConfig(**video_values)
    except (TypeError, ValueError) as error:
        name, _, rest = str(error).partition(": ")
        labels = {spec.name: spec.label for spec in specs_of(VideoConfig)}
        raise ValueError(f"{labels.get(name, name)}: {rest}" if rest else str(error)) from None
    return config, video, adjustments


def run_video(
    clip: Clip | None,
    styles: list[InputImage],
    style_values: dict[str, Any],
    video_values: dict[str, Any],
) -> None:
    """Check the clip, then run it on the job queue; ``live_view`` follows it.

    Problems are one ``st.error`` sentence each; the previous result stays. The job checks the
    settings against the paintings, the weights and the memory (``nst.front``), and its
    refusal is shown as the run's error.
    """
    from nst.jobs.video import VideoJobRequest, plan

    if clip is None:
        st.error("Upload a clip first: an MP4, MOV, WebM or animated GIF.")
        return
    if not styles:
        st.error("Choose a style first: upload a painting or pick one of the sample styles.")
        return
    try:
        config, video, adjustments = build_configs(style_values, video_values)
        planned = plan(clip.data, config, video)
    except ValueError as error:
        st.error(str(error))
        return
    planned_bytes = clip_bytes_estimate(planned.frames, planned.shape, video)
    budget = clips_bytes()
    if planned_bytes > budget:
        st.error(
            f"This clip would need about {planned_bytes / 2**20:,.0f} MB of the studio's "
            f"{budget / 2**20:,.0f} MB for clips (NST_CLIPS_MB); choose fewer frames (max "
            "frames) or a smaller size."
        )
        return
    request = VideoJobRequest(
        clip=clip.data,
        styles=tuple(style.as_float() for style in styles),
        config=config,
        video=video,
        adjustments=adjustments,
    )
    watch(request, clip.name, planned.frames, tuple(style.name for style in styles))


# Bytes a clip's files may take per pixel of every frame, measured on frames of noise (the
# worst case: a painted frame compresses better): MP4 0.70, animated WebP 0.70, GIF 1.39.
MP4_BYTES_PER_PIXEL = 0.75
ANIMATION_BYTES_PER_PIXEL = 0.75 + 1.5


def clip_bytes_estimate(frames: int, shape: tuple[int, int], video: VideoConfig) -> int:
    """At most how many bytes a clip of ``frames`` frames of ``shape`` keeps (its MP4, its
    animations when it is short, and its poster frame)."""
    pixels = frames * shape[0] * shape[1]
    per_pixel = MP4_BYTES_PER_PIXEL
    if frames <= video.max_animation_frames:
        per_pixel += ANIMATION_BYTES_PER_PIXEL
    return int(pixels * per_pixel) + shape[0] * shape[1] * 3


RUN_KEY = "video_run"  # the clip run this tab last saw (followed through a store outage)
SHOWN_KEY = "clip_id"  # the clip this tab shows
REPLACED_KEY = "video_replaced"  # the clip run that replaced a running one
STOPPED_EARLY = "The run was stopped before the first frame finished."
REPLACED = (
    "Your previous clip was stopped to start this one; its finished frames are in the gallery."
)
LOST = "Your clip is no longer known to the studio (it restarted); please start it again."
WORKER_LOST = (
    "The worker painting your clip stopped (its process or machine went down) before any "
    "frame was finished; please start the clip again."
)
SETTLE_SECONDS = 120.0  # how long a stopped clip may take to encode its frames
CLAIM_SECONDS = SETTLE_SECONDS + 60.0  # one settler's lease: the encoding wait, then the record


def watch(request: Any, name: str, frames: int, style_names: tuple[str, ...]) -> None:
    """Submit the job and keep it as the browser's clip run; the page then follows it
    (``live_view``). A clip still running is stopped first, keeping its finished frames in the
    gallery, and the page says so."""
    from nst.jobs import QueueUnavailableError, get_backend
    from studio.runs import session_owner

    owner = session_owner()
    try:
        job_id = get_backend().submit(request, owner=owner)
        run = ClipRun(job_id, name, frames, request.config, request.video, style_names, time.time())
        replaced = owner_store().set_run(owner, run)
    except QueueUnavailableError as error:
        st.error(str(error), icon=":material/cloud_off:")
        return
    st.session_state[RUN_KEY] = run
    replacing = replaced is not None and replaced.job_id != job_id
    if replacing and settle_clip(owner, replaced, cancel=True) is not None:
        st.session_state[REPLACED_KEY] = job_id  # said while this tab follows the new clip


def _clip_run(owner: str) -> ClipRun | None:
    """The browser's running clip: from the store, or, while the store cannot be reached, the
    one this tab last saw."""
    from nst.jobs import QueueUnavailableError

    try:
        run = owner_store().run(owner, "clip")
    except QueueUnavailableError:
        return st.session_state.get(RUN_KEY)
    if run is None:
        st.session_state.pop(RUN_KEY, None)
    else:
        st.session_state[RUN_KEY] = run
    return run


def live_view() -> bool:
    """The browser's clip run, followed live (True), or none running (False): a reload, a new
    tab or another web server finds it in the store."""
    from studio.runs import session_owner

    owner = session_owner()
    if _clip_run(owner) is None:
        return False
    _follow(owner)
    return True


@st.fragment(run_every=POLL_SECONDS)
def _follow(owner: str) -> None:
    """One look at the clip's job: frame count, time left, the newest frame and Stop. Clicks,
    other widgets, other pages and reloads rerun the page around it without ending the job."""
    from nst.jobs import JobState, QueueUnavailableError, UnknownJobError, get_backend
    from nst.jobs.video import steps_done, total_steps
    from studio.runs import stop_row, waiting_note

    queue = get_backend()
    run = _clip_run(owner)
    if run is None:
        st.rerun()  # settled meanwhile (by another tab, a badge or another server)
    try:
        status = queue.status(run.job_id, owner=owner)  # also the job's heartbeat
    except UnknownJobError:
        settle_clip(owner, run)
        if settling(owner, run.job_id, "clip"):
            st.caption("Keeping the finished clip…")
            return
        st.rerun()
    except QueueUnavailableError as error:
        st.warning(f"{error} Retrying…", icon=":material/cloud_off:")
        return
    bar_column = stop_row(
        "video_stop",
        owner,
        run.job_id,
        status,
        "The clip keeps being painted while you change settings, visit other pages or reload; "
        "Stop keeps the frames finished so far as a shorter clip.",
    )
    if status.state is JobState.QUEUED:
        bar_column.progress(0.0, text="Waiting for a free slot…")
        waiting_note(status, "clip")
    elif status.state is JobState.RUNNING:
        progress = status.progress
        if progress is None or progress.frame is None:
            bar_column.progress(0.0, text="Reading the clip and preparing the network…")
        else:
            planned_steps = total_steps(run.frames, run.video, run.config)
            done = steps_done(progress.frame, progress.step, run.video, run.config)
            left = progress.elapsed / max(done, 1) * (planned_steps - done)
            finished = progress.frame - (0 if progress.step >= progress.total else 1)
            bar_column.progress(
                min(1.0, done / planned_steps),
                text=f"Frame {progress.frame} of {run.frames} · {finished} finished "
                f"({frame_rate(finished, progress.elapsed)}) · "
                f"about {format_seconds(left)} left",
            )
    if status.preview is not None:
        st.image(status.preview, caption="The newest finished frame", width="content")
    if status.state.finished:
        if settle_clip(owner, run) is None and settling(owner, run.job_id, "clip"):
            return  # another tab or server is keeping it: the next look finds the clip
        st.rerun()


def frame_rate(frames: int, seconds: float) -> str:
    """Frames per second as a person reads it: frames a second, or seconds a frame when a
    frame takes longer than a second."""
    if frames <= 0 or seconds <= 0:
        return "starting"
    rate = frames / seconds
    if rate >= 1.0:
        return f"{rate:.1f} frames/s"
    return f"{format_seconds(seconds / frames)} a frame"


def settle_clip(owner: str, run: ClipRun, *, cancel: bool = False) -> ClipRecord | None:
    """Keep a clip run's frames in the browser's gallery (once, whoever asks first: a tab, a
    badge, another server) and forget the job; with ``cancel`` (a replaced run, already off
    the store) stop it first. How it ended without a clip is said once, on this page or as
    one of the person's notices."""
    from nst.jobs import get_backend

    queue, store = get_backend(), owner_store()
    return settle_once(
        store,
        queue,
        owner,
        run.job_id,
        "clip",
        lambda: _settle_clip(owner, run, queue, store, cancel=cancel),
        cancel=cancel,
        lease=CLAIM_SECONDS,
    )


def _settle_clip(
    owner: str, run: ClipRun, queue: Any, store: Any, *, cancel: bool
) -> ClipRecord | None:
    from nst.jobs import QueueUnavailableError, UnknownJobError
    from nst.jobs.video import VideoResult

    result, status = None, None
    try:
        if cancel:
            queue.cancel(run.job_id, owner=owner)
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:  # a stopped run ends within a step, then encodes its frames
            status = queue.status(run.job_id, owner=owner)  # also the heartbeat
            if status.state.finished or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        result = queue.result(run.job_id, owner=owner)
    except UnknownJobError:
        _tell(owner, LOST)
        return None
    except QueueUnavailableError as error:
        _tell(owner, str(error))
        return None
    if not isinstance(result, VideoResult) or result.mp4 is None:
        error = getattr(result, "error", None) or (status.error if status else None)
        if result is None and error == _worker_lost():
            error = WORKER_LOST  # no frame was kept: the worker's sentence promises a picture
        _tell(owner, error or STOPPED_EARLY)
        return None
    record = ClipRecord(
        result_id=0,
        name=run.name,
        mp4=result.mp4,
        webp=result.webp,
        gif=result.gif,
        poster=encode_png(result.image),
        frames=result.frames,
        frames_planned=result.frames_planned,
        fps=result.fps,
        seconds=max(0.0, time.time() - run.started),
        stopped=result.stopped,
        error=result.error or (status.error if status else None),
        notice=result.notice,
        config=run.config,
        video=run.video,
        style_names=run.style_names,
        created=time.time(),
    )
    kept = store.add(owner, record)
    with contextlib.suppress(Exception):  # outside a script run: a new tab opens on it
        st.session_state[SHOWN_KEY] = kept.result_id
    return kept


def _worker_lost() -> str:
    """The Redis backend's sentence for a job whose worker died."""
    from nst.jobs.redis import WORKER_LOST as JOB_WORKER_LOST

    return JOB_WORKER_LOST


def _worker_lost_clip(frames: int) -> str:
    """The Redis backend's sentence for a clip whose worker died after ``frames`` finished."""
    from nst.jobs.redis import worker_lost_clip

    return worker_lost_clip(frames)


def _tell(owner: str, text: str) -> None:
    """How a clip ended without frames: on this tab's Video page, or, with no page there, as
    one of the person's notices."""
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    if get_script_run_ctx() is None:  # outside a script run
        owner_store().add_notice(owner, text)
    else:
        st.session_state["video_error"] = text


def collect_clip(owner: str) -> ClipRecord | None:
    """Keep the browser's clip if its run ended while no page followed it (a closed tab, a
    reload); the app calls it on every page run."""
    from nst.jobs import QueueUnavailableError, UnknownJobError, get_backend

    try:
        run = owner_store().run(owner, "clip")
        if run is None or not get_backend().status(run.job_id, owner=owner).state.finished:
            return None
    except UnknownJobError:
        pass
    except QueueUnavailableError:
        return None
    return settle_clip(owner, run)


def clip_badge() -> None:
    """On the other pages: where the browser's clip is, followed while they look around."""
    from studio.runs import session_owner

    owner = session_owner()
    if _clip_run(owner) is not None:
        with st.sidebar:
            _badge(owner)


@st.fragment(run_every=2.0)
def _badge(owner: str) -> None:
    from nst.jobs import QueueUnavailableError, UnknownJobError, get_backend

    run = _clip_run(owner)
    if run is None:
        return
    try:
        status = get_backend().status(run.job_id, owner=owner)  # also its heartbeat
    except UnknownJobError:
        settle_clip(owner, run)
        if settling(owner, run.job_id, "clip"):
            return
        st.rerun()
    except QueueUnavailableError:
        st.caption(":material/cloud_off: Your clip: the job queue cannot be reached.")
        return
    if status.state.finished:
        kept = settle_clip(owner, run)
        if kept is not None:
            st.toast(f"Your clip #{kept.result_id} is finished: it is in the gallery.")
        elif settling(owner, run.job_id, "clip"):
            return
        st.rerun()
    progress = status.progress
    text = "waiting for a slot" if status.state is JobState.QUEUED else "starting"
    if progress is not None and progress.frame is not None:
        text = f"frame {progress.frame} of {run.frames}"
    st.page_link("pages/video.py", label=f"Clip: {text}", icon=":material/movie:")


def show_error() -> None:
    """How the last clip ended without frames (once), and, while this tab follows a clip that
    replaced a running one, that it did."""
    error = st.session_state.pop("video_error", None)
    if error:
        st.error(error)
    following: ClipRun | None = st.session_state.get(RUN_KEY)
    replacing = st.session_state.get(REPLACED_KEY)
    if replacing is not None and following is not None and following.job_id == replacing:
        st.info(REPLACED, icon=":material/swap_horiz:")
    else:
        st.session_state.pop(REPLACED_KEY, None)


def clips() -> list[ClipRecord]:
    """This browser's clips, oldest first."""
    from studio.gallery import read_or
    from studio.owner import browser_key

    return read_or([], lambda: owner_store().results(browser_key(), "clip"))


def current_clip() -> ClipRecord | None:
    """The clip this tab shows: a new tab (a reload, another server) opens on the newest."""
    kept = clips()
    if SHOWN_KEY not in st.session_state:
        st.session_state[SHOWN_KEY] = kept[-1].result_id if kept else None
    wanted = st.session_state.get(SHOWN_KEY)
    return next((record for record in kept if record.result_id == wanted), None)


def delete_clip(result_id: int) -> None:
    """Callback: remove one clip from the gallery."""
    from studio.owner import browser_key

    owner_store().delete(browser_key(), result_id, "clip")
    if st.session_state.get(SHOWN_KEY) == result_id:
        st.session_state[SHOWN_KEY] = None


def result_panel(record: ClipRecord, title: str = "Result") -> None:
    """The clip, what happened, and the downloads (MP4 with sound; WebP and GIF when short)."""
    st.subheader(title, anchor=False)
    if record.error and record.error == _worker_lost_clip(record.frames):
        st.error(record.error)  # it already says the frames are kept as a shorter clip
    elif record.error:
        st.error(f"{record.error} The {record.frames} frames finished before are kept.")
    elif record.stopped:
        st.warning(
            f"Stopped after {record.frames} of {record.frames_planned} frames; the shorter clip "
            "is below.",
            icon=":material/stop_circle:",
        )
    else:
        st.success(
            f"Finished {record.frames} frames in {format_seconds(record.seconds)} "
            f"({frame_rate(record.frames, record.seconds)}).",
            icon=":material/check_circle:",
        )
    st.video(record.mp4)
    downloads(record, "video_download")
    if record.webp is None:
        st.caption("Animated WebP and GIF are offered for short clips only.")


def downloads(record: ClipRecord, key: str) -> None:
    """The clip's download buttons in a row (keys start with ``key``)."""
    stem = record.name.rsplit(".", 1)[0] or "clip"
    files = [
        ("Download MP4", record.mp4, "video/mp4", "mp4"),
        ("Download animated WebP", record.webp, "image/webp", "webp"),
        ("Download GIF", record.gif, "image/gif", "gif"),
    ]
    columns = st.columns(len(files))
    for column, (label, data, mime, suffix) in zip(columns, files):
        if data is not None:
            column.download_button(
                label,
                data,
                file_name=f"{stem}-stylized.{suffix}",
                mime=mime,
                on_click="ignore",
                key=f"{key}_{suffix}",
                icon=":material/download:",
            )


def clip_card(record: ClipRecord) -> None:
    """A gallery card: the poster frame, length, settings, downloads and delete."""
    st.image(record.poster, caption=record.label, width="stretch")
    method = "Painted" if record.config.method == "optimize" else "Instant"
    ended = "stopped early" if record.stopped or record.error else "finished"
    st.caption(
        f"{record.frames} of {record.frames_planned} frames · {record.length:.1f} s at "
        f"{record.fps:g} fps · {ended} · {method}, {record.config.size} px, steadiness "
        f"{record.video.temporal_weight:g} · {', '.join(record.style_names)} · "
        f"{datetime.fromtimestamp(record.created):%H:%M}"
    )
    downloads(record, f"clip_{record.result_id}")
    st.button(
        "Delete",
        key=f"clip_delete_{record.result_id}",
        on_click=delete_clip,
        args=(record.result_id,),
        icon=":material/delete:",
    )
