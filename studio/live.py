"""The Live page's parts: the camera stream, its settings, what it shows, and the snapshot.

The browser's camera reaches this process over WebRTC (``streamlit-webrtc`` on ``aiortc``);
each frame goes through the session's ``nst.instant.live.LiveProcessor`` and back. Session
state used here: ``live_processor`` (the session's processor, shared with the stream's thread)
and ``live_notice`` (the last snapshot's sentence). Widget keys start with ``live_``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import streamlit as st

from nst.config import StyleConfig, field_spec
from nst.instant.live import (
    LiveProcessor,
    LiveSettings,
    LiveStats,
    live_side_spec,
    live_slots,
    max_live_streams,
)
from nst.instant.video import instant_steadiness
from nst.knobs import specs_of
from nst.video_config import VideoConfig
from studio.gallery import add_result
from studio.session import InputImage, StudioResult, to_float
from studio.widgets import friendly_error, spec_widget

ICE_ENV = "NST_ICE_SERVERS"
CAMERA_KEY = "live_camera"
KEY_PREFIX = "live_"
STATUS_SECONDS = 0.5  # how often the frame rate and size under the stream are refreshed
STALLED_SECONDS = 3.0  # a playing stream with no camera frame for this long has stopped
# Asked of the camera; the browser gives the nearest it has. The network paints at the live
# size whatever the camera sends, and paints fewer than 15 frames a second on a CPU, so more
# camera frames would only cost decoding and encoding on the same cores.
CAMERA_CONSTRAINTS = {
    "video": {
        "width": {"ideal": 640},
        "height": {"ideal": 480},
        "frameRate": {"ideal": 15, "max": 15},
    },
    "audio": False,
}
# What the camera component says when the browser cannot give the page a camera.
TRANSLATIONS = {
    "start": "Start",
    "stop": "Stop",
    "select_device": "Camera",
    "media_api_not_available": "This browser gives no camera to this page: open the studio over "
    "https:// (or on localhost) in a current browser.",
    "device_ask_permission": "Allow the camera in the browser's prompt to start.",
    "device_not_available": "No camera was found: connect one, close other programs that use "
    "it, and press Start again.",
    "device_access_denied": "The browser was refused the camera: allow it in the site settings "
    "next to the address bar and press Start again.",
}


def ice_servers() -> list[dict[str, Any]] | None:
    """The ICE servers (STUN/TURN) the browser and this process try, from ``NST_ICE_SERVERS``.

    Unset or empty: none, which connects on the local network only and contacts nobody else.
    ``auto``: streamlit-webrtc's own choice (a public STUN server, or the TURN service whose
    credentials are in its environment variables); returns None. Else a JSON list of
    ``RTCIceServer`` objects, e.g. ``[{"urls": "turn:turn.example.org:3478", "username":
    "studio", "credential": "secret"}]``. Raises ``ValueError`` with one sentence otherwise.
    """
    text = os.environ.get(ICE_ENV, "").strip()
    if not text:
        return []
    if text.lower() == "auto":
        return None
    try:
        servers = json.loads(text)
    except json.JSONDecodeError:
        servers = None
    valid = isinstance(servers, list) and all(
        isinstance(server, dict) and isinstance(server.get("urls"), str | list)
        for server in servers
    )
    if not valid:
        raise ValueError(
            f'{ICE_ENV} must be "auto" or a JSON list of ICE servers such as '
            '[{"urls": "turn:turn.example.org:3478", "username": "u", "credential": "p"}].'
        )
    return servers


def session_processor() -> LiveProcessor:
    """This session's frame processor, made once and kept in the session state."""
    processor = st.session_state.get("live_processor")
    if not isinstance(processor, LiveProcessor):
        processor = LiveProcessor(slots=live_slots(), busy=jobs_computing)
        st.session_state["live_processor"] = processor
    return processor


def jobs_computing() -> bool:
    """Whether a stylization computes in this process now (the in-process job queue)."""
    from nst.jobs import get_backend

    try:
        backend = get_backend()
    except ValueError:  # a malformed NST_QUEUE: the Stylize page says so
        return False
    count = getattr(backend, "running_count", None)
    return not backend.remote and count is not None and count() > 0


def camera(processor: LiveProcessor) -> Any:
    """The camera component (Start/Stop, the device picker and the stylized stream), or None
    with one sentence when this server cannot offer it."""
    try:
        servers = ice_servers()
        capacity = max_live_streams()
    except ValueError as error:
        st.error(str(error), icon=":material/error:")
        return None
    if capacity == 0:
        st.info("The Live page is turned off on this server.", icon=":material/videocam_off:")
        return None
    WebRtcMode, webrtc_streamer = _webrtc()
    if not _browser_session():
        st.info(
            "The camera needs the studio's web server: start it with `streamlit run app.py` "
            "and open the page in a browser.",
            icon=":material/videocam_off:",
        )
        return None

    async def on_frames(frames: list[Any]) -> list[Any]:
        # Only the newest of the queued frames is painted: the others are already late.
        import av

        newest = frames[-1]
        painted = processor.process(newest.to_ndarray(format="rgb24"))
        return [av.VideoFrame.from_ndarray(painted, format="rgb24")]

    return webrtc_streamer(
        key=CAMERA_KEY,
        mode=WebRtcMode.SENDRECV,
        rtc_configuration=None if servers is None else {"iceServers": servers},
        media_stream_constraints=CAMERA_CONSTRAINTS,
        queued_video_frames_callback=on_frames,
        on_video_ended=processor.close,
        async_processing=True,
        sendback_audio=False,
        video_html_attrs={
            "autoPlay": True,
            "controls": False,
            "muted": True,
            "style": {"width": "100%"},
        },
        translations=TRANSLATIONS,
    )


def _webrtc() -> tuple[Any, Any]:
    """``streamlit_webrtc``'s mode enum and component, imported safely after TensorFlow.

    aiortc's SRTP binding (``pylibsrtp``) carries its own OpenSSL, and once TensorFlow's
    libraries are loaded their BoringSSL symbols would take the place of it: the import
    crashes the process. Loaded with ``RTLD_DEEPBIND``, the binding keeps its own symbols.
    """
    if "pylibsrtp" not in sys.modules:
        flags = sys.getdlopenflags()
        sys.setdlopenflags(flags | getattr(os, "RTLD_DEEPBIND", 0))
        try:
            import pylibsrtp  # noqa: F401
        finally:
            sys.setdlopenflags(flags)
    from streamlit_webrtc import WebRtcMode, webrtc_streamer

    return WebRtcMode, webrtc_streamer


def _browser_session() -> bool:
    """Whether this script runs for a browser session of a Streamlit server (the stream's
    worker lives there); not so in bare mode or under ``AppTest``."""
    from streamlit_webrtc.session_info import get_this_session_info

    try:
        return get_this_session_info() is not None
    except AttributeError:  # a stand-in runtime without sessions
        return False


def settings_panel(style_count: int) -> dict[str, Any]:
    """Style intensity, steadiness, live size and the snapshot's size (and the blend, with
    several paintings); returns the widgets' values by config field name."""
    steadiness = next(spec for spec in specs_of(VideoConfig) if spec.name == "temporal_weight")
    specs = [field_spec("style_weight"), steadiness, live_side_spec(), field_spec("size")]
    values: dict[str, Any] = {}
    specs[-1] = dataclasses.replace(
        specs[-1],
        label="Snapshot size (px)",
        help="Longest side of a snapshot: Snapshot paints the camera's current picture again "
        "at this size and keeps it in the gallery.",
    )
    for column, spec in zip(st.columns(len(specs)), specs, strict=True):
        with column:
            values[spec.name] = spec_widget(spec, key=KEY_PREFIX + spec.name)
    if style_count > 1:
        values["style_blend"] = spec_widget(
            field_spec("style_blend"), key=KEY_PREFIX + "style_blend"
        )
    return values


def live_config(values: dict[str, Any], style_count: int) -> StyleConfig:
    """The instant settings of the stream and its snapshots; ``ValueError`` (one sentence,
    naming the control) if they do not fit the paintings."""
    try:
        config = StyleConfig(
            method="instant",
            style_weight=values["style_weight"],
            size=values["size"],
            style_blend=values.get("style_blend", ""),
        )
    except (TypeError, ValueError) as error:
        raise ValueError(friendly_error(error)) from None
    blend = config.style_blend
    if blend and len(blend) != style_count:
        raise ValueError(
            f"{field_spec('style_blend').label}: give one weight per painting ({style_count} "
            f"chosen, {len(blend)} given), or leave it empty for equal weights."
        )
    return config


def configure(
    processor: LiveProcessor, styles: Sequence[InputImage], values: dict[str, Any]
) -> StyleConfig | None:
    """Hand the page's choices to the stream; returns the config, or None (with the reason
    shown) when the settings do not fit."""
    try:
        config = live_config(values, len(styles))
        settings = LiveSettings(
            side=int(values["side"]),
            steadiness=instant_steadiness(float(values["temporal_weight"])),
        )
    except ValueError as error:
        st.error(str(error), icon=":material/error:")
        processor.set_style(None, [], StyleConfig())
        return None
    # The style vector is computed once per painting choice: this key names the choice.
    key = (tuple(style.key for style in styles), config.style_weight, config.style_blend)
    processor.set_style(key, [style.as_float() for style in styles], config)
    processor.set_settings(settings)
    return config


def status_text(stats: LiveStats) -> str:
    """One line on the stream: frame rate, the size painted and the size shown."""
    shown = stats.frame_shape
    painted = stats.work_shape
    text = f"{stats.fps:.1f} frames a second ({1000 * stats.frame_seconds:.0f} ms of work each)"
    if shown is not None:
        text += f" · shown at {shown[1]}×{shown[0]}"
    if painted is not None:
        text += f" · painted at {painted[1]}×{painted[0]}"
        if stats.reduced:
            text += " (smaller than the live size, to keep up)"
    return text


def show_status(processor: LiveProcessor, context: Any) -> None:
    """What the stream is doing, refreshed every ``STATUS_SECONDS`` while the page is open."""

    @st.fragment(run_every=STATUS_SECONDS)
    def status() -> None:
        playing = bool(context is not None and context.state.playing)
        stats = processor.stats()
        if not playing:
            st.caption(
                "Press Start and allow the camera: you see yourself painted in the chosen "
                "style. Nothing is recorded; Snapshot keeps the current picture in the gallery."
            )
            return
        stalled = stats.last_frame_age is not None and stats.last_frame_age > STALLED_SECONDS
        if stats.state == "stopped" or stalled:
            st.warning(
                "The camera stopped sending pictures: check that it is connected and not used "
                "by another program, then press Stop and Start.",
                icon=":material/videocam_off:",
            )
        elif stats.state == "refused":
            slots = live_slots()
            st.warning(
                f"All {slots.capacity} live slots of this server are in use; please try again "
                "in a few minutes (Stylize and Video work meanwhile).",
                icon=":material/hourglass_top:",
            )
        elif stats.state == "no_style":
            st.info(
                "Choose a painting (upload one or pick a sample) to see the camera painted.",
                icon=":material/palette:",
            )
        elif stats.state == "painting":
            st.caption(status_text(stats))
            if stats.yielding:
                st.info(
                    "A stylization is computing on this server: the live view paints fewer "
                    "frames a second to leave it the processor.",
                    icon=":material/speed:",
                )
        else:
            st.caption("Connecting to the camera…")

    status()


def take_snapshot(
    processor: LiveProcessor, styles: Sequence[InputImage], config: StyleConfig | None
) -> None:
    """Paint the camera's current frame again at the snapshot size and keep it in the gallery;
    the outcome is one sentence in ``live_notice``."""
    frame = processor.latest_frame()
    if frame is None:
        message = "Start the camera first: a snapshot paints its current picture."
        st.session_state["live_notice"] = ("error", message)
        return
    if config is None or not styles:
        message = "Choose a painting first: upload one or pick one of the sample styles."
        st.session_state["live_notice"] = ("error", message)
        return
    from nst.front import check
    from nst.instant import InstantUnavailable, stylize_instant

    photo = to_float(frame)
    paintings = [style.as_float() for style in styles]
    started = time.perf_counter()
    try:
        check(photo, paintings, config)  # the blend, the shapes, the memory it needs
        image = stylize_instant(photo, paintings, config)
    except (InstantUnavailable, ValueError) as error:
        st.session_state["live_notice"] = ("error", str(error))
        return
    seconds = time.perf_counter() - started
    record = add_result(snapshot_record(image, photo, config, styles, seconds))
    st.session_state["live_notice"] = (
        "success",
        f"Snapshot #{record.result_id} ({record.size_text}) is in the gallery.",
    )


def snapshot_record(
    image: Any,
    photo: Any,
    config: StyleConfig,
    styles: Sequence[InputImage],
    seconds: float,
) -> StudioResult:
    """A gallery record (id still 0) of a snapshot: the painted frame, the frame itself and
    the settings."""
    from nst.images import resize_to, to_uint8

    created = time.time()
    return StudioResult(
        result_id=0,  # the gallery gives it its number
        image=to_uint8(image),
        content=to_uint8(resize_to(photo, *image.shape[:2])),
        config=config,
        content_name="Camera snapshot",
        content_key=f"live:{created:.3f}",
        style_names=tuple(style.name for style in styles),
        created=created,
        seconds=seconds,
        steps_done=0,
        stopped=False,
    )


def show_notice() -> None:
    """The last snapshot's sentence, once."""
    notice = st.session_state.pop("live_notice", None)
    if notice is None:
        return
    kind, text = notice
    if kind == "success":
        st.success(text, icon=":material/photo_camera:")
    else:
        st.error(text, icon=":material/error:")
