"""The Video page's parts: the clip upload, the settings, the live run and the result.

Session state used here: ``video_clip`` (the checked upload), ``video_run`` (the clip being
stylized, a ``VideoRun``), ``video_result`` (the last ``VideoRecord``) and ``video_error``. The
run is followed by a fragment that reruns on its own, so that a slider, another page or any
other click leaves the job painting; only Stop, or a new clip, ends it. Widget keys start with
``video_`` so that the Video page keeps its own settings apart from the Stylize page's.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any

import streamlit as st

from nst.config import Adjustments, ServerLimits, StyleConfig
from nst.knobs import FieldSpec, specs_of
from nst.video_config import VideoConfig
from nst.videoio import VideoError, VideoInfo, probe
from studio.runs import POLL_SECONDS
from studio.session import InputImage, format_seconds
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


@dataclass(frozen=True)
class VideoRecord:
    """A finished (or stopped) video run, kept for the result panel and downloads."""

    name: str
    mp4: bytes | None
    webp: bytes | None
    gif: bytes | None
    frames: int
    frames_planned: int
    fps: float
    seconds: float
    stopped: bool
    error: str | None
    notice: str | None


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
    request = VideoJobRequest(
        clip=clip.data,
        styles=tuple(style.as_float() for style in styles),
        config=config,
        video=video,
        adjustments=adjustments,
    )
    watch(request, clip.name, planned.frames, video)


@dataclass(frozen=True)
class VideoRun:
    """A clip being stylized for this session: its job and what the live view needs to say."""

    job_id: str
    name: str
    frames: int
    video: VideoConfig
    config: StyleConfig
    started: float


RUN_KEY = "video_run"
STOPPED_EARLY = "The run was stopped before the first frame finished."


def watch(request: Any, name: str, frames: int, video: VideoConfig) -> None:
    """Submit the job; the page then follows it (``live_view``). A clip still running is
    stopped first, keeping its finished frames, and the page says so."""
    from nst.jobs import QueueUnavailableError, get_backend
    from studio.runs import session_owner

    queue = get_backend()
    owner = session_owner()
    previous: VideoRun | None = st.session_state.get(RUN_KEY)
    if previous is not None:
        _settle(queue, previous, owner)
        st.session_state.pop(RUN_KEY, None)
        st.info(REPLACED, icon=":material/swap_horiz:")
    try:
        job_id = queue.submit(request, owner=owner)
    except QueueUnavailableError as error:
        st.error(str(error), icon=":material/cloud_off:")
        return
    st.session_state[RUN_KEY] = VideoRun(
        job_id, name, frames, video, request.config, time.monotonic()
    )


REPLACED = "Your previous clip was stopped to start this one; its finished frames are below."


def live_view() -> bool:
    """The session's clip run, followed live (True), or none running (False)."""
    run: VideoRun | None = st.session_state.get(RUN_KEY)
    if run is None:
        return False
    _follow(run)
    return True


@st.fragment(run_every=POLL_SECONDS)
def _follow(run: VideoRun) -> None:
    """One look at the clip's job: frame count, time left, the newest frame and Stop. Clicks,
    other widgets and other pages rerun the page around it without ending the job."""
    from nst.jobs import JobState, QueueUnavailableError, UnknownJobError, get_backend
    from nst.jobs.video import steps_done, total_steps
    from studio.runs import session_owner, stop_row, waiting_note

    queue, owner = get_backend(), session_owner()
    if st.session_state.get(RUN_KEY) != run:
        st.rerun()  # settled meanwhile
    try:
        status = queue.status(run.job_id, owner=owner)  # also the job's heartbeat
    except UnknownJobError:
        st.session_state.pop(RUN_KEY, None)
        st.session_state["video_error"] = "The run was lost; please start it again."
        st.rerun()
    except QueueUnavailableError as error:
        st.warning(f"{error} Retrying…", icon=":material/cloud_off:")
        return
    bar_column = stop_row(
        "video_stop",
        owner,
        run.job_id,
        status,
        "The clip keeps being painted while you change settings or visit other pages; Stop "
        "keeps the frames finished so far as a shorter clip.",
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
        _settle(queue, run, owner)
        st.session_state.pop(RUN_KEY, None)
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


def _settle(queue: Any, run: VideoRun, owner: str) -> None:
    """Cancel the job if it still runs, wait for its result and keep it in the session."""
    job_id = run.job_id
    from nst.jobs import JobState, QueueUnavailableError, UnknownJobError
    from nst.jobs.video import VideoResult

    result = None
    try:
        queue.cancel(job_id, owner=owner)
        while True:  # a stopped run ends within a step, then encodes its frames
            status = queue.status(job_id, owner=owner)  # also the heartbeat
            result = queue.result(job_id, owner=owner)
            if result is not None or status.state.finished:
                break
            time.sleep(0.2)
        queue.forget(job_id, owner=owner)
    except UnknownJobError:
        st.session_state["video_error"] = "The run was lost; please start it again."
        return
    except QueueUnavailableError as error:
        st.session_state["video_error"] = str(error)
        return
    if not isinstance(result, VideoResult):
        stopped = status.state is JobState.CANCELLED
        st.session_state["video_error"] = status.error or (
            STOPPED_EARLY if stopped else "The run ended without a clip."
        )
        return
    if result.mp4 is None:
        st.session_state["video_error"] = result.error or status.error or STOPPED_EARLY
        return
    st.session_state["video_result"] = VideoRecord(
        name=run.name,
        mp4=result.mp4,
        webp=result.webp,
        gif=result.gif,
        frames=result.frames,
        frames_planned=result.frames_planned,
        fps=result.fps,
        seconds=time.monotonic() - run.started,
        stopped=result.stopped,
        error=result.error,
        notice=result.notice,
    )
    st.session_state.pop("video_error", None)


def show_error() -> None:
    error = st.session_state.pop("video_error", None)
    if error:
        st.error(error)


def result_panel(record: VideoRecord, title: str = "Result") -> None:
    """The clip, what happened, and the downloads (MP4 with sound; WebP and GIF when short)."""
    st.subheader(title, anchor=False)
    if record.error:
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
    if record.mp4 is not None:
        st.video(record.mp4)
    stem = record.name.rsplit(".", 1)[0] or "clip"
    downloads = [
        ("Download MP4", record.mp4, "video/mp4", "mp4"),
        ("Download animated WebP", record.webp, "image/webp", "webp"),
        ("Download GIF", record.gif, "image/gif", "gif"),
    ]
    columns = st.columns(len(downloads))
    for column, (label, data, mime, suffix) in zip(columns, downloads):
        if data is not None:
            column.download_button(
                label,
                data,
                file_name=f"{stem}-stylized.{suffix}",
                mime=mime,
                key=f"video_download_{suffix}",
                icon=":material/download:",
            )
    if record.webp is None:
        st.caption("Animated WebP and GIF are offered for short clips only.")
