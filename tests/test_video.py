"""Video: flow, mask, warping, reading/writing clips, bad clips, the temporal loop and the CLI."""

from __future__ import annotations

import io
import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from nst.cli import main
from nst.config import StyleConfig
from nst.front import check_clip_size, stylize_clip
from nst.motion import frame_motion, temporal_error, warp
from nst.records import FrameDone, VideoOutcome
from nst.synthetic import disc_box, synthetic_frames
from nst.video_config import VideoConfig
from nst.videoio import (
    VideoError,
    encode_animation,
    encode_mp4,
    frame_shape,
    probe,
    read_frames,
)
from tests.video_cases import (
    audio_stream_seconds,
    gif_bytes,
    make_clip,
    png_bytes,
    zero_frame_clip,
)

# ----- flow, warping and the reliability mask -----


def test_warp_samples_along_the_flow() -> None:
    image = np.random.default_rng(0).uniform(size=(20, 30, 3)).astype(np.float32)
    flow = np.zeros((20, 30, 2), np.float32)
    flow[..., 0] = 2.0  # each pixel takes the colour two pixels to its right
    warped = warp(image, flow)
    np.testing.assert_allclose(warped[:, :-2], image[:, 2:], atol=1e-6)


def test_mask_is_zero_where_the_shape_uncovers_background() -> None:
    height, width = 72, 96
    frames = synthetic_frames(8, height, width, shape_speed=6.0)
    motion = frame_motion(frames[4], frames[5])
    yy, xx = np.mgrid[0:height, 0:width]
    (x_prev, y, radius), (x_now, _, _) = (
        disc_box(index, height, width, shape_speed=6.0) for index in (4, 5)
    )
    distance_prev = np.hypot(xx - x_prev, yy - y)
    distance_now = np.hypot(xx - x_now, yy - y)
    # Covered by the disc in frame 4, background in frame 5 (two pixels in from either edge).
    uncovered = (distance_prev < radius - 2) & (distance_now > radius + 2)
    assert uncovered.sum() > 25
    assert motion.mask[uncovered].max() == 0.0
    # Away from the disc, the flow is reliable.
    far = (distance_prev > radius + 6) & (distance_now > radius + 6)
    assert motion.mask[far].mean() > 0.8


def test_temporal_error_is_zero_for_a_perfectly_warped_sequence() -> None:
    frames = synthetic_frames(3, 48, 64)
    motion = frame_motion(frames[0], frames[1])
    assert temporal_error(warp(frames[0], motion.backward), frames[0], motion) == pytest.approx(
        0.0, abs=1e-6
    )
    assert temporal_error(frames[1] * 0 + 1, frames[0], motion) > 0.1


# ----- reading and writing clips -----


def test_probe_and_read_a_clip() -> None:
    clip = make_clip(fps=12)
    info = probe(clip)
    assert (info.width, info.height, info.frames) == (64, 48, 12)
    assert info.fps == pytest.approx(12.0)
    assert not info.variable_rate and info.notice is None and not info.has_audio
    assert frame_shape(info, 64) == (48, 64)
    assert frame_shape(info, 97) == (72, 96)  # even sides, for H.264
    frames = list(read_frames(clip, info, (24, 32), max_frames=5))
    assert len(frames) == 5
    assert frames[0].shape == (24, 32, 3) and frames[0].dtype == np.float32
    expected = synthetic_frames(12, 48, 64)[0]
    small = np.asarray(Image.fromarray((expected * 255).astype(np.uint8)).resize((32, 24)))
    assert np.abs(frames[0] * 255 - small).mean() < 12  # H.264 at its default quality


def test_rotation_metadata_gives_upright_frames() -> None:
    frame = np.zeros((48, 64, 3), np.float32)
    frame[:24, :32, 0] = 1.0  # red top-left quadrant of the stored picture
    clip = make_clip([frame] * 3, rotation=90)
    info = probe(clip)
    assert info.rotation == 90 and (info.width, info.height) == (48, 64)
    upright = next(read_frames(clip, info, (64, 48)))
    assert upright.shape == (64, 48, 3)
    # Turned 90 degrees counterclockwise: the stored top-left lands bottom-left.
    assert upright[40:, :20, 0].mean() > 0.8 and upright[:20, :20, 0].mean() < 0.2


def test_a_variable_frame_rate_is_resampled_and_said() -> None:
    frames = [np.full((48, 64, 3), index / 10, np.float32) for index in range(10)]
    times = [0, 120, 160, 200, 320, 360, 400, 520, 560, 600]
    clip = make_clip(frames, pts_ms=times, fps=50)
    info = probe(clip)
    assert info.variable_rate and info.fps == pytest.approx(15.0)
    assert "variable frame rate" in info.notice and "15 frames per second" in info.notice
    read = list(read_frames(clip, info, (24, 32)))
    levels = [round(float(frame.mean()) * 10) for frame in read]
    assert levels == [0, 0, 1, 3, 3, 4, 6, 6, 7, 9]  # the frame showing at each k / 15 s


def test_an_animated_gif_with_uneven_delays_is_read() -> None:
    frames = synthetic_frames(5, 48, 64)
    info = probe(gif_bytes(frames, [100, 100, 300, 100, 100]))
    assert info.variable_rate and info.frames >= 5
    assert (info.width, info.height) == (64, 48)


def test_audio_survives_a_round_trip_and_is_cut_to_the_frames() -> None:
    clip = make_clip(fps=12, audio=True)
    info = probe(clip)
    assert info.has_audio
    frames = list(read_frames(clip, info, (48, 64)))
    full = encode_mp4(frames, info.fps, audio_from=clip)
    assert audio_stream_seconds(full) == pytest.approx(1.0, abs=0.05)
    half = encode_mp4(frames[:6], info.fps, audio_from=clip)
    assert audio_stream_seconds(half) == pytest.approx(0.5, abs=0.05)
    with av.open(io.BytesIO(half)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 6
    silent = encode_mp4(frames, info.fps, audio_from=make_clip(fps=12))
    assert audio_stream_seconds(silent) == 0.0


def test_animations_loop_with_every_frame() -> None:
    frames = synthetic_frames(4, 24, 32)
    for fmt in ("webp", "gif"):
        image = Image.open(io.BytesIO(encode_animation(frames, 12, format=fmt)))
        assert image.n_frames == 4 and image.size == (32, 24)


# ----- bad clips: one sentence each -----


def _truncated(data: bytes) -> bytes:
    return data[: len(data) * 6 // 10]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"this is a text file, not a clip at all" * 10, "not a video"),
        (png_bytes(), "still image, not a video"),
        (zero_frame_clip(), "no frames"),
        (_truncated(make_clip()), "broken or truncated"),
        (_truncated(make_clip(faststart=True)), "broken or truncated"),
    ],
    ids=["text", "still-image", "zero-frames", "truncated", "truncated-faststart"],
)
def test_bad_clips_get_one_sentence(data: bytes, message: str) -> None:
    with pytest.raises(VideoError, match=message) as caught:
        probe(data)
    text = str(caught.value)
    assert text.endswith(".") and "\n" not in text


def test_too_long_a_clip_is_refused_with_the_figures() -> None:
    video = VideoConfig(max_video_pixels=1_000_000)
    check_clip_size(100, (72, 96), video)  # 691,200 pixels: fine
    with pytest.raises(ValueError, match=r"200 frames x 96x72 px = 1,382,400 pixels") as caught:
        check_clip_size(200, (72, 96), video)
    assert "at most 144 frames" in str(caught.value)


def test_video_config_validates_and_derives_its_steps() -> None:
    assert VideoConfig().first_frame_steps == StyleConfig().steps
    assert VideoConfig().frame_steps < VideoConfig().first_frame_steps
    with pytest.raises(ValueError, match="temporal_weight"):
        VideoConfig(temporal_weight=-1)


# ----- the temporal loop (untrained features, tiny sizes) -----

# Adam: a fixed number of steps per frame (L-BFGS may end early on tiny untrained runs).
SMALL = StyleConfig(size=64, optimizer="adam", preview_every=100)
FAST = VideoConfig(first_frame_steps=8, frame_steps=4)


@pytest.fixture(scope="module")
def style() -> np.ndarray:
    rng = np.random.default_rng(3)
    stripes = np.sin(np.arange(64) / 2.0)[None, :, None] * np.ones((64, 1, 3))
    return np.clip(0.5 + 0.4 * stripes + 0.1 * rng.uniform(size=(64, 64, 3)), 0, 1).astype(
        np.float32
    )


def _run(frames: list[np.ndarray], style: np.ndarray, **options: object) -> list[FrameDone]:
    return [
        event
        for event in stylize_clip(frames, [style], SMALL, FAST, frame_count=len(frames), **options)
        if isinstance(event, FrameDone)
    ]


def test_warm_start_beats_a_cold_start_on_temporal_error(style: np.ndarray) -> None:
    frames = synthetic_frames(5, 48, 64)
    motions = [frame_motion(frames[i - 1], frames[i]) for i in range(1, 5)]

    def error(done: list[FrameDone]) -> float:
        return float(
            np.mean(
                [
                    temporal_error(done[i].image, done[i - 1].image, motions[i - 1])
                    for i in range(1, 5)
                ]
            )
        )

    warm, cold = _run(frames, style), _run(frames, style, temporal=False)
    assert len(warm) == len(cold) == 5
    assert [frame.steps for frame in warm] == [8, 4, 4, 4, 4]
    assert "temporal" in warm[1].parts and "temporal" not in warm[0].parts
    assert 0.5 < warm[1].reliable <= 1.0
    assert error(warm) < 0.5 * error(cold)


def test_stop_keeps_the_frames_already_done(style: np.ndarray) -> None:
    from nst.records import CancelToken

    frames = synthetic_frames(6, 48, 64)
    cancel, outcome, seen = CancelToken(), VideoOutcome(), []
    for event in stylize_clip(
        frames, [style], SMALL, FAST, frame_count=6, cancel=cancel, outcome=outcome
    ):
        if isinstance(event, FrameDone):
            seen.append(event.index)
            if len(seen) == 2:
                cancel.cancel()
    assert seen == [0, 1]
    assert outcome.stopped and [frame.index for frame in outcome.frames] == [0, 1]
    video = encode_mp4([frame.image for frame in outcome.frames], 12)
    with av.open(io.BytesIO(video)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 2


# ----- the command line -----


@pytest.fixture
def style_file(tmp_path: Path, style: np.ndarray) -> Path:
    path = tmp_path / "style.png"
    Image.fromarray((style * 255).astype(np.uint8)).save(path)
    return path


def test_cli_stylizes_a_clip_with_its_sound(
    tmp_path: Path, style_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(make_clip(fps=12, audio=True))
    out = tmp_path / "out.mp4"
    argv = ["video", str(clip), str(style_file), "-o", str(out), "--size", "64"]
    argv += ["--first-frame-steps", "3", "--frame-steps", "2", "--max-frames", "4", "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["frames"] == 4 and summary["audio"] and not summary["stopped"]
    assert (summary["width"], summary["height"]) == (64, 48)
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 4
    assert audio_stream_seconds(out.read_bytes()) == pytest.approx(4 / 12, abs=0.05)


def test_cli_instant_method_writes_every_frame_with_its_sound(
    tmp_path: Path, style_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(make_clip(fps=12, audio=True))
    out = tmp_path / "out.mp4"
    argv = ["video", str(clip), str(style_file), "-o", str(out), "--size", "64"]
    argv += ["--method", "instant", "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["method"] == "instant" and summary["settings"]["method"] == "instant"
    assert summary["frames"] == 12 and summary["audio"] and not summary["stopped"]
    assert (summary["width"], summary["height"]) == (64, 48)
    assert summary["frames_per_second"] > 0
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 12
    assert audio_stream_seconds(out.read_bytes()) == pytest.approx(1.0, abs=0.05)


def test_instant_method_through_stylize_video_is_steadier_than_frame_by_frame(
    style: np.ndarray,
) -> None:
    frames = synthetic_frames(6, 48, 64)
    motions = [frame_motion(frames[i - 1], frames[i]) for i in range(1, 6)]
    config = SMALL.replace(method="instant")

    def outputs(temporal: bool) -> list[np.ndarray]:
        events = list(stylize_clip(frames, [style], config, FAST, frame_count=6, temporal=temporal))
        assert all(isinstance(event, FrameDone) for event in events)  # no optimizer steps
        return [event.image for event in events]

    def error(images: list[np.ndarray]) -> float:
        return float(
            np.mean([temporal_error(images[i], images[i - 1], motions[i - 1]) for i in range(1, 6)])
        )

    steadied, frame_by_frame = outputs(True), outputs(False)
    assert [image.shape for image in steadied] == [(48, 64, 3)] * 6
    assert error(steadied) < error(frame_by_frame)


def test_instant_method_stop_keeps_the_frames_already_done(style: np.ndarray) -> None:
    from nst.records import CancelToken

    frames = synthetic_frames(6, 48, 64)
    cancel, outcome, seen = CancelToken(), VideoOutcome(), []
    config = SMALL.replace(method="instant")
    for event in stylize_clip(
        frames, [style], config, FAST, frame_count=6, cancel=cancel, outcome=outcome
    ):
        seen.append(event.index)
        if len(seen) == 2:
            cancel.cancel()
    assert seen == [0, 1]
    assert outcome.stopped and [frame.index for frame in outcome.frames] == [0, 1]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"plain text" * 50, "not a video"),
        (zero_frame_clip(), "no frames"),
        (_truncated(make_clip()), "broken or truncated"),
    ],
    ids=["text", "zero-frames", "truncated"],
)
def test_cli_bad_clip_exits_2_with_one_line(
    tmp_path: Path, style_file: Path, capsys: pytest.CaptureFixture[str], data: bytes, message: str
) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(data)
    assert main(["video", str(clip), str(style_file), "-o", str(tmp_path / "o.mp4")]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1
    assert not (tmp_path / "o.mp4").exists()


def test_cli_refuses_too_long_a_clip_before_starting(
    tmp_path: Path, style_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(make_clip())
    argv = ["video", str(clip), str(style_file), "-o", str(tmp_path / "o.mp4"), "--size", "512"]
    assert main([*argv, "--max-video-pixels", "1000000"]) == 2
    error = capsys.readouterr().err
    assert "12 frames x 512x384 px = 2,359,296 pixels" in error


def test_cli_says_when_it_resamples_a_variable_rate(
    tmp_path: Path, style_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frames = synthetic_frames(4, 48, 64)
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(make_clip(frames, pts_ms=[0, 100, 133, 300], fps=50))
    out = tmp_path / "out.gif"
    argv = ["video", str(clip), str(style_file), "-o", str(out), "--size", "64", "--quiet"]
    assert main([*argv, "--first-frame-steps", "2", "--frame-steps", "1", "--max-frames", "2"]) == 0
    assert "variable frame rate" in capsys.readouterr().err
    assert Image.open(out).n_frames == 2


def test_cli_rejects_an_unknown_output_type(tmp_path: Path, style_file: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(make_clip())
    assert main(["video", str(clip), str(style_file), "-o", str(tmp_path / "o.avi")]) == 2


# ----- the benchmark -----


def test_video_benchmark_compares_both_methods(tmp_path: Path, style: np.ndarray) -> None:
    from nst.benchmarks.video import format_rows, video_section

    strip = tmp_path / "strip.png"
    report = video_section(
        style,
        size=64,
        frames=3,
        config=SMALL,
        video=VideoConfig(first_frame_steps=3, frame_steps=2),
        strip=strip,
        methods=("optimize",),
    )
    assert "instant" not in report
    for name in ("frame_by_frame", "temporal"):
        run = report[name]
        assert run["steps"] == ([3, 3, 3] if name == "frame_by_frame" else [3, 2, 2])
        assert run["temporal_error"] >= 0 and set(run["losses"]) == {"content", "style", "tv"}
    assert report["frame_by_frame"]["temporal_error"] > report["temporal"]["temporal_error"]
    rows = format_rows(report)
    assert any(row[0].startswith("video: temporal error") and row[2] == "≥ 3×" for row in rows)
    assert Image.open(strip).size == (2 * 160 + 4, 3 * 120 + 8)  # 2 frames x 3 rows


def test_video_benchmark_times_the_instant_method_against_frame_by_frame(
    tmp_path: Path, style: np.ndarray
) -> None:
    from nst.benchmarks.video import format_rows, video_section

    strip = tmp_path / "instant.png"
    report = video_section(
        style,
        config=SMALL,
        video=VideoConfig(first_frame_steps=2, frame_steps=2),
        methods=("instant",),
        instant={
            "size": 64,
            "frames": 4,
            "rounds": 2,
            "page_size": 96,
            "optimize_frames": 2,
            "strip": strip,
        },
    )
    assert set(report) == {"instant"}
    instant = report["instant"]
    assert instant["shape"] == [48, 64] and instant["rounds"] == 2
    for name in ("frame_by_frame", "steadied"):
        run = instant[name]
        assert run["frames_per_second"] > 0 and set(run["losses"]) == {"content", "style", "tv"}
    assert instant["temporal_error_ratio"] > 1
    assert instant["page_size"]["size"] == 96 and instant["optimize_frames_per_second"] > 0
    rows = format_rows(report)
    assert any(row[0].startswith("video instant") and row[2] == "≥ 70%" for row in rows)
    assert any("today's method" in row[0] for row in rows)
    assert Image.open(strip).size == (2 * 160 + 4, 3 * 120 + 8)  # 2 frames x 3 rows
