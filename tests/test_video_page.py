"""The Video page, driven headless with ``streamlit.testing.v1.AppTest``: upload, run, download."""

from __future__ import annotations

import io
import time
from pathlib import Path

import av
from streamlit.testing.v1 import AppTest

from nst.config import StyleConfig
from nst.knobs import specs_of
from nst.video_config import VideoConfig
from studio.gallery import owner_store
from studio.store import ClipRecord, ClipRun
from studio.video import NOT_FOR_VIDEO, VIDEO_MANAGED
from tests.video_cases import audio_stream_seconds, make_clip

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 240


def _video_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/video.py")
    at.run()
    assert not at.exception, at.exception
    return at


def _upload_clip(at: AppTest, name: str, data: bytes) -> None:
    at.file_uploader(key="video_upload").set_value((name, data, "video/mp4"))
    at.run()
    assert not at.exception, at.exception


def _clip_run(at: AppTest) -> ClipRun | None:
    """This browser's clip run, as the store keeps it."""
    return owner_store().run(at.session_state["owner_key"], "clip")


def _clips(at: AppTest) -> list[ClipRecord]:
    """This browser's clips, oldest first, as the store keeps them."""
    return owner_store().results(at.session_state["owner_key"], "clip")


def _finish(at: AppTest, timeout: float = TIMEOUT) -> None:
    """Rerun the page, as its live view does on its own, until the clip's run is settled; the
    first rerun shows the run going on (the press only submits it)."""
    assert _clip_run(at) is not None and "video_run" in at.session_state
    assert any(button.key == "video_stop" for button in at.button)
    deadline = time.monotonic() + timeout
    while _clip_run(at) is not None:
        assert time.monotonic() < deadline, "the clip did not finish"
        time.sleep(0.2)
        at.run()
        assert not at.exception, at.exception


def test_video_page_offers_the_config_settings() -> None:
    at = _video_page()
    widgets = [*at.slider, *at.select_slider, *at.selectbox, *at.text_input, *at.number_input]
    widgets += [*at.radio]
    keys = {widget.key for widget in widgets}
    expected = {
        f"video_{spec.name}" for spec in specs_of(StyleConfig) if spec.name not in NOT_FOR_VIDEO
    }
    expected |= {
        f"video_{spec.name}" for spec in specs_of(VideoConfig) if spec.name not in VIDEO_MANAGED
    }
    assert expected <= keys
    assert at.select_slider(key="video_temporal_weight").label == "Steadiness"
    # The same Instant/Painted choice as the Stylize page; a clip proposes Instant.
    method = at.radio(key="video_method")
    assert method.value == "instant" and set(method.options) == {"Instant", "Painted"}


def test_a_bad_clip_gets_one_sentence_and_the_page_keeps_working() -> None:
    at = _video_page()
    _upload_clip(at, "notes.mp4", b"these are not moving pictures" * 20)
    errors = [element.value for element in at.error]
    assert any("not a video" in text for text in errors)
    at.button(key="video_start").click()
    at.run()
    assert not at.exception
    assert any("Upload a clip first" in element.value for element in at.error)


def test_upload_run_a_few_frames_and_download() -> None:
    at = _video_page()
    _upload_clip(at, "walk.mp4", make_clip(fps=12, audio=True))
    assert any("12 frames at 12 fps" in caption.value for caption in at.caption)
    at.pills(key="style_samples").set_value(["mosaic"])
    at.radio(key="video_method").set_value("optimize")
    at.slider(key="video_size").set_value(64)
    at.slider(key="video_first_frame_steps").set_value(2)
    at.slider(key="video_frame_steps").set_value(1)
    at.number_input(key="video_max_frames").set_value(3)
    at.button(key="video_start").click()
    at.run()
    assert not at.exception, at.exception
    _finish(at)
    assert any("Finished 3 frames" in element.value for element in at.success)
    downloads = {button.label: button for button in at.get("download_button")}
    assert list(downloads) == ["Download MP4", "Download animated WebP", "Download GIF"]
    assert "video_run" not in at.session_state
    [record] = _clips(at)
    with av.open(io.BytesIO(record.mp4)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 3
    assert audio_stream_seconds(record.mp4) > 0.2  # the clip's sound, cut to 3 frames


def test_an_instant_run_gives_every_frame_and_its_frame_rate() -> None:
    at = _video_page()
    _upload_clip(at, "walk.mp4", make_clip(fps=12, audio=True))
    at.pills(key="style_samples").set_value(["mosaic"])
    at.slider(key="video_size").set_value(64)
    at.button(key="video_start").click()
    at.run()
    assert not at.exception, at.exception
    _finish(at)
    finished = [element.value for element in at.success if "Finished" in element.value]
    assert finished and "Finished 12 frames" in finished[0] and "frames/s" in finished[0]
    [record] = _clips(at)
    with av.open(io.BytesIO(record.mp4)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 12
    assert audio_stream_seconds(record.mp4) > 0.9


def _start_clip(at: AppTest, frames: int = 12, *, painted: bool = False) -> None:
    """Upload the test clip and start it: Instant, or Painted slowly enough (200 steps a
    frame after the first) to be looked at, stopped or replaced mid-clip."""
    _upload_clip(at, "walk.mp4", make_clip(fps=12))
    at.pills(key="style_samples").set_value(["mosaic"])
    at.slider(key="video_size").set_value(64)
    at.number_input(key="video_max_frames").set_value(frames)
    if painted:
        at.radio(key="video_method").set_value("optimize")
        at.slider(key="video_first_frame_steps").set_value(2)
        at.slider(key="video_frame_steps").set_value(200)
    at.button(key="video_start").click()
    at.run()
    assert not at.exception, at.exception


def _until_a_frame_is_done(at: AppTest) -> None:
    """Rerun the page until its progress says the first frame is finished."""
    deadline = time.monotonic() + TIMEOUT
    while not any("1 finished" in str(element.proto) for element in at.get("progress")):
        assert time.monotonic() < deadline, "the first frame did not finish"
        time.sleep(0.2)
        at.run()


def _same_browser(at: AppTest) -> AppTest:
    """A new session of the same browser (a reload, a new tab): the same key cookie."""
    again = AppTest.from_file(APP, default_timeout=TIMEOUT)
    again.session_state["owner_key"] = at.session_state["owner_key"]
    again.run()
    again.switch_page("pages/video.py")
    again.run()
    assert not again.exception, again.exception
    return again


def test_a_clip_belongs_to_the_browser_and_lands_in_its_gallery() -> None:
    at = _video_page()
    _start_clip(at, 4, painted=True)
    run = _clip_run(at)
    assert (run.name, run.frames, run.style_names) == ("walk.mp4", 4, ("mosaic",))
    # A reload: a new session of the same browser follows the same run; its Stop keeps the
    # finished frames as a shorter clip.
    again = _same_browser(at)
    assert again.session_state["video_run"] == run
    _until_a_frame_is_done(again)
    again.button(key="video_stop").click()
    again.run()
    while _clip_run(again) is not None:
        time.sleep(0.2)
        again.run()
    [record] = _clips(again)
    assert record.result_id == 1 and 1 <= record.frames < 4 and record.frames_planned == 4
    assert record.stopped and record.poster.startswith(b"\x89PNG") and record.webp and record.gif
    with av.open(io.BytesIO(record.mp4)) as container:
        assert sum(1 for _ in container.decode(video=0)) == record.frames
    # A third session of the browser (a new tab) opens on the kept clip.
    third = _same_browser(again)
    stopped = f"Stopped after {record.frames} of 4 frames; the shorter clip is below."
    assert [element.value for element in third.warning[1:]] == [stopped]
    labels = [button.label for button in third.get("download_button")]
    assert labels == ["Download MP4", "Download animated WebP", "Download GIF"]
    # The gallery lists it beside the pictures, with its length and settings; delete works.
    third.switch_page("pages/gallery.py")
    third.run()
    assert not third.exception, third.exception
    assert [image.proto.imgs[0].caption for image in third.image] == ["Clip #1 · walk.mp4"]
    card = f"{record.frames} of 4 frames · {record.frames / 12:.1f} s at 12 fps · stopped early"
    captions = [element.value for element in third.caption]
    assert any(text.startswith(f"{card} · Painted, 64 px, steadiness 5") for text in captions)
    third.button(key="clip_delete_1").click()
    third.run()
    assert _clips(third) == []
    assert any("No results yet" in element.value for element in third.info)


def test_another_browser_sees_no_clip() -> None:
    at = _video_page()
    _start_clip(at, 2)
    _finish(at)
    stranger = _video_page()
    assert stranger.session_state["owner_key"] != at.session_state["owner_key"]
    assert _clips(stranger) == [] and _clip_run(stranger) is None
    assert not [element for element in stranger.success if "Finished" in element.value]
    stranger.switch_page("pages/gallery.py")
    stranger.run()
    assert any("No results yet" in element.value for element in stranger.info)


def test_a_new_clip_says_it_replaces_the_running_one_and_keeps_its_frames() -> None:
    at = _video_page()
    _start_clip(at, 4, painted=True)
    first = _clip_run(at)
    _until_a_frame_is_done(at)
    at.radio(key="video_method").set_value("instant")
    at.number_input(key="video_max_frames").set_value(2)
    at.button(key="video_start").click()
    at.run()
    assert not at.exception, at.exception
    infos = [element.value for element in at.info]
    assert "Your previous clip was stopped to start this one" in " ".join(infos)
    replaced = _clips(at)[0]  # the new clip, two instant frames, may be done already
    assert replaced.stopped and 1 <= replaced.frames < 4 and replaced.frames_planned == 4
    if _clip_run(at) is not None:
        assert _clip_run(at).job_id != first.job_id
        _finish(at)
    assert [record.frames for record in _clips(at)] == [replaced.frames, 2]


def test_a_clip_over_the_clip_budget_is_refused_before_it_starts(monkeypatch) -> None:
    monkeypatch.setenv("NST_CLIPS_MB", "1")
    at = _video_page()
    _upload_clip(at, "walk.mp4", make_clip(fps=12))
    at.pills(key="style_samples").set_value(["mosaic"])
    at.slider(key="video_size").set_value(512)
    at.button(key="video_start").click()
    at.run()
    assert not at.exception, at.exception
    # 12 frames at 512x384 px, 3 bytes a pixel at most (MP4, WebP and GIF): about 7 MB.
    assert [element.value for element in at.error] == [
        "This clip would need about 7 MB of the studio's 1 MB for clips (NST_CLIPS_MB); "
        "choose fewer frames (max frames) or a smaller size."
    ]
    assert _clip_run(at) is None


def test_the_clip_estimate_bounds_what_a_clip_keeps() -> None:
    from nst.video_config import VideoConfig
    from studio.video import clip_bytes_estimate

    short, long = VideoConfig(), VideoConfig(max_animation_frames=10)
    assert clip_bytes_estimate(12, (48, 64), short) == int(12 * 48 * 64 * 3.0) + 48 * 64 * 3
    assert clip_bytes_estimate(12, (48, 64), long) == int(12 * 48 * 64 * 0.75) + 48 * 64 * 3


def test_a_clip_whose_worker_died_says_so_in_one_sentence(monkeypatch) -> None:
    from nst.jobs import JobState, JobStatus
    from nst.jobs.redis import WORKER_LOST
    from studio import video
    from studio.store import MemoryStore, new_owner_key

    class DeadWorker:
        """A backend whose job's worker died mid-clip: FAILED, no result."""

        def cancel(self, job_id: str, *, owner: str = "") -> None:
            pass

        def status(self, job_id: str, *, owner: str = "") -> JobStatus:
            return JobStatus(job_id, JobState.FAILED, error=WORKER_LOST, kind="video")

        def result(self, job_id: str, *, owner: str = "") -> None:
            return None

        def forget(self, job_id: str, *, owner: str = "") -> None:
            pass

    store, owner = MemoryStore(), new_owner_key()
    monkeypatch.setattr("nst.jobs.get_backend", lambda: DeadWorker())
    monkeypatch.setattr(video, "owner_store", lambda: store)
    run = ClipRun(
        "job-1", "walk.mp4", 4, StyleConfig(size=64), VideoConfig(), ("mosaic",), time.time()
    )
    store.set_run(owner, run)
    assert video.collect_clip(owner) is None
    assert store.run(owner, "clip") is None and store.results(owner, "clip") == []
    assert store.take_notices(owner) == [video.WORKER_LOST]


def test_a_clip_being_kept_is_never_missing_from_another_tab(monkeypatch) -> None:
    """While one tab keeps a finished clip, another tab (or server) looking at the store sees
    the run or the clip, never neither, and does not keep it twice; the job is forgotten only
    once the clip is kept."""
    import threading

    import numpy as np

    from nst.jobs import JobState, JobStatus
    from nst.jobs.video import VideoResult
    from studio import runs, video
    from studio.store import MemoryStore, new_owner_key

    owner, events = new_owner_key(), []
    adding, release = threading.Event(), threading.Event()
    frame = np.full((8, 8, 3), 0.5, np.float32)
    finished = VideoResult(
        frame, [], {}, StyleConfig(size=64), mp4=b"mp4", frames=2, frames_planned=2, fps=12.0
    )

    class Finished:
        """A backend whose clip job has finished and encoded its frames."""

        def cancel(self, job_id: str, *, owner: str = "") -> None:
            pass

        def status(self, job_id: str, *, owner: str = "") -> JobStatus:
            return JobStatus(job_id, JobState.DONE, kind="video")

        def result(self, job_id: str, *, owner: str = "") -> VideoResult:
            return finished

        def forget(self, job_id: str, *, owner: str = "") -> None:
            events.append("forget")

    class SlowStore(MemoryStore):
        def add(self, owner: str, record: ClipRecord) -> ClipRecord:
            adding.set()
            assert release.wait(10)
            events.append("add")
            return super().add(owner, record)

    store = SlowStore()
    monkeypatch.setattr("nst.jobs.get_backend", lambda: Finished())
    monkeypatch.setattr(video, "owner_store", lambda: store)
    monkeypatch.setattr(runs, "owner_store", lambda: store)
    run = ClipRun("job-1", "walk.mp4", 2, StyleConfig(size=64), VideoConfig(), ("m",), time.time())
    store.set_run(owner, run)
    kept: list[ClipRecord | None] = []
    first = threading.Thread(target=lambda: kept.append(video.collect_clip(owner)))
    first.start()
    assert adding.wait(10)
    # The other tab, meanwhile: the run is still there, being kept elsewhere.
    assert video.collect_clip(owner) is None
    assert store.run(owner, "clip") == run and runs.settling(owner, "job-1", "clip")
    release.set()
    first.join(10)
    [record] = kept
    assert record.result_id == 1 and record.frames == 2 and record.mp4 == b"mp4"
    assert store.run(owner, "clip") is None and not runs.settling(owner, "job-1", "clip")
    assert [item.result_id for item in store.results(owner, "clip")] == [1]
    assert events == ["add", "forget"]
