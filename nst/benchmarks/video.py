"""The video benchmark: ``python -m nst.bench --only video``, or on its own
``python -m nst.benchmarks.video``.

On the project's synthetic clip (``nst.synthetic``) at a small size, it stylizes every frame on
its own (frame by frame, the baseline) and with the temporal method
(``nst.front.stylize_clip``), and gives:

- seconds per frame: the first frame and the mean of the rest;
- the temporal error: the mean over reliable pixels of |output_i - warp(output_{i-1})|, with
  the flow and reliability computed on the input frames, for both;
- the content and style losses of every output frame, evaluated on the same objective for both
  (the temporal method's are expected within 10% of frame by frame's).

The instant method (``nst.instant.video``) gets the same comparison at ``INSTANT_SIZE`` on a
longer clip: frames per second of the bare network frame by frame and of the steadied method,
taken in alternating rounds of the same run (so a busy machine slows both alike), their ratio,
the temporal error and the losses per frame; and the frame rate at the Video page's size.
Today's method's frame rate at the instant size is timed on two later frames as well.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nst.config import StyleConfig
from nst.front import stylize_clip
from nst.motion import frame_motion, temporal_error
from nst.records import FrameDone
from nst.synthetic import synthetic_frames
from nst.video_config import VideoConfig

VIDEO_FRAMES = 10
VIDEO_SIZE = 256
INSTANT_SIZE = 384  # the size of the instant method's frame-rate and flicker comparison
INSTANT_FRAMES = 24
INSTANT_ROUNDS = 3  # alternating rounds of frame by frame and steadied, for the frame rate
PAGE_SIZE = StyleConfig().size  # the size the Video page proposes


def _run(
    frames: list[np.ndarray],
    style: np.ndarray,
    config: StyleConfig,
    video: VideoConfig,
    temporal: bool,
) -> dict[str, Any]:
    done: list[FrameDone] = []
    started = time.perf_counter()
    for event in stylize_clip(
        frames, [style], config, video, frame_count=len(frames), temporal=temporal
    ):
        if isinstance(event, FrameDone):
            done.append(event)
    seconds = [frame.seconds for frame in done]
    return {
        "images": [frame.image for frame in done],
        "first_frame_seconds": seconds[0],
        "other_frame_seconds": float(np.mean(seconds[1:])) if len(seconds) > 1 else None,
        "seconds": time.perf_counter() - started,
        "steps": [frame.steps for frame in done],
        "frame_seconds": seconds,
    }


def _losses(
    images: list[np.ndarray], frames: list[np.ndarray], style: np.ndarray, config: StyleConfig
) -> dict[str, float]:
    """Mean content, style and TV terms of the outputs on the still-image objective."""
    import tensorflow as tf

    from nst.engine import prepare

    totals: dict[str, list[float]] = {"content": [], "style": [], "tv": []}
    for image, frame in zip(images, frames):
        problem = prepare(frame, [style], config.replace(size=max(frame.shape[:2])))
        _, parts = problem.objective(tf.constant(image[None], tf.float32))
        for name in totals:
            totals[name].append(float(parts[name]))
    return {name: float(np.mean(values)) for name, values in totals.items()}


def _rate(seconds: list[float]) -> float:
    """Frames per second over frames that took ``seconds`` each."""
    return len(seconds) / max(sum(seconds), 1e-9)


def _frame_rate(seconds: list[float]) -> float:
    """Frames per second over the frames after the first (which also computes the vector)."""
    return _rate(seconds[1:] or seconds)


def instant_section(
    style: np.ndarray,
    *,
    size: int = INSTANT_SIZE,
    frames: int = INSTANT_FRAMES,
    rounds: int = INSTANT_ROUNDS,
    page_size: int = PAGE_SIZE,
    config: StyleConfig | None = None,
    video: VideoConfig | None = None,
    optimize_frames: int = 3,
    strip: str | Path | None = None,
) -> dict[str, Any]:
    """The instant method steadied against the bare network frame by frame; JSON-serialisable.

    ``config`` is the evaluation objective's (its backbone and weights judge the losses) and
    the base of the runs. With ``optimize_frames`` > 1, today's method is also timed at
    ``size`` on that many frames (the first with one step: only the later frames are timed).
    With ``strip``, a PNG of the input, frame by frame and steadied rows is saved there.
    """
    config = config or StyleConfig()
    video = video or VideoConfig()
    instant = config.replace(method="instant", size=size)
    clip = synthetic_frames(frames, round(size * 0.75), size)
    motions = [frame_motion(clip[i - 1], clip[i]) for i in range(1, len(clip))]
    seconds: dict[str, list[float]] = {"frame_by_frame": [], "steadied": []}
    images: dict[str, list[np.ndarray]] = {}
    _run(clip[:2], style, instant, video, temporal=True)  # load the networks first
    for _ in range(rounds):
        for name, temporal in (("frame_by_frame", False), ("steadied", True)):
            run = _run(clip, style, instant, video, temporal)
            images[name] = run["images"]
            seconds[name].extend(run["frame_seconds"][1:])
    report: dict[str, Any] = {
        "frames": frames,
        "shape": list(clip[0].shape[:2]),
        "rounds": rounds,
        "steadiness": _steadiness(video),
        "backbone": config.backbone,
    }
    for name in ("frame_by_frame", "steadied"):
        outputs = images[name]
        errors = [
            temporal_error(outputs[i], outputs[i - 1], motions[i - 1]) for i in range(1, frames)
        ]
        report[name] = {
            "frames_per_second": _rate(seconds[name]),
            "temporal_error": float(np.mean(errors)),
            "losses": _losses(outputs, clip, style, config),
        }
    baseline, ours = report["frame_by_frame"], report["steadied"]
    report["frame_rate_share"] = ours["frames_per_second"] / baseline["frames_per_second"]
    report["temporal_error_ratio"] = baseline["temporal_error"] / max(ours["temporal_error"], 1e-12)
    report["loss_ratios"] = {
        name: ours["losses"][name] / max(baseline["losses"][name], 1e-12)
        for name in ("content", "style")
    }
    page_clip = synthetic_frames(max(4, frames // 2), round(page_size * 0.75), page_size)
    page = config.replace(method="instant", size=page_size)
    report["page_size"] = {
        "size": page_size,
        "frame_by_frame": _frame_rate(_run(page_clip, style, page, video, False)["frame_seconds"]),
        "steadied": _frame_rate(_run(page_clip, style, page, video, True)["frame_seconds"]),
    }
    if optimize_frames > 1:
        timed = video.replace(first_frame_steps=1)
        run = _run(clip[:optimize_frames], style, config.replace(size=size), timed, True)
        report["optimize_frames_per_second"] = _frame_rate(run["frame_seconds"])
    if strip is not None:
        save_strip([clip, images["frame_by_frame"], images["steadied"]], strip)
        report["strip"] = str(strip)
    return report


def _steadiness(video: VideoConfig) -> float:
    from nst.instant.video import instant_steadiness

    return instant_steadiness(video.temporal_weight)


def video_section(
    style: np.ndarray,
    *,
    size: int = VIDEO_SIZE,
    frames: int = VIDEO_FRAMES,
    config: StyleConfig | None = None,
    video: VideoConfig | None = None,
    strip: str | Path | None = None,
    methods: Sequence[str] = ("optimize", "instant"),
    instant: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Frame by frame against the temporal method on the synthetic clip; JSON-serialisable.

    ``methods`` picks the optimizer's comparison (at ``size``, ``frames``) and the instant
    method's (``instant_section``, under the key ``"instant"``, with ``instant`` as its
    keyword arguments). With ``strip``, a PNG is saved there: the input frames, frame by frame
    and the temporal method, one row each (every other frame, at most five).
    """
    config = config or StyleConfig()
    video = video or VideoConfig()
    report: dict[str, Any] = {}
    if "optimize" in methods:
        report.update(_optimize_section(style, size, frames, config, video, strip))
    if "instant" in methods:
        report["instant"] = instant_section(style, config=config, video=video, **(instant or {}))
    return report


def _optimize_section(
    style: np.ndarray,
    size: int,
    frames: int,
    config: StyleConfig,
    video: VideoConfig,
    strip: str | Path | None,
) -> dict[str, Any]:
    config = config.replace(method="optimize")
    clip = synthetic_frames(frames, round(size * 0.75), size)
    motions = [frame_motion(clip[i - 1], clip[i]) for i in range(1, len(clip))]
    report: dict[str, Any] = {
        "frames": frames,
        "shape": list(clip[0].shape[:2]),
        "config": {
            "backbone": config.backbone,
            "optimizer": config.optimizer,
            "temporal_weight": video.temporal_weight,
            "first_frame_steps": video.first_frame_steps,
            "frame_steps": video.frame_steps,
        },
        "reliable_share": float(np.mean([motion.mask.mean() for motion in motions])),
    }
    rows = [clip]
    for name, temporal in (("frame_by_frame", False), ("temporal", True)):
        run = _run(clip, style, config, video, temporal)
        images = run.pop("images")
        rows.append(images)
        errors = [
            temporal_error(images[i], images[i - 1], motions[i - 1]) for i in range(1, len(images))
        ]
        run["temporal_error"] = float(np.mean(errors))
        run["losses"] = _losses(images, clip, style, config)
        report[name] = run
    if strip is not None:
        save_strip(rows, strip)
        report["strip"] = str(strip)
    baseline, ours = report["frame_by_frame"], report["temporal"]
    report["temporal_error_ratio"] = baseline["temporal_error"] / max(ours["temporal_error"], 1e-12)
    report["loss_ratios"] = {
        name: ours["losses"][name] / max(baseline["losses"][name], 1e-12)
        for name in ("content", "style")
    }
    return report


def save_strip(rows: list[list[np.ndarray]], path: str | Path, width: int = 160) -> None:
    """Rows of frames (every other one, at most five per row) as one small image (PNG, or
    JPEG for a ``.jpg`` path: the noisy texture of a painting compresses 4x better)."""
    from PIL import Image

    from nst.images import resize_to, to_uint8

    picked = range(0, len(rows[0]), 2)[:5]
    height = round(rows[0][0].shape[0] * width / rows[0][0].shape[1])
    gap = 4
    sheet = np.ones(
        (len(rows) * (height + gap) - gap, len(picked) * (width + gap) - gap, 3), np.float32
    )
    for row_index, row in enumerate(rows):
        for column, frame_index in enumerate(picked):
            top, left = row_index * (height + gap), column * (width + gap)
            sheet[top : top + height, left : left + width] = resize_to(
                row[frame_index], height, width
            )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(sheet)).save(path, optimize=True, quality=88)  # PNG or JPEG


def format_rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(measure, value, target) rows for the benchmark table."""
    rows = _optimize_rows(report) if "temporal" in report else []
    if "instant" in report:
        rows += instant_rows(report["instant"])
    return rows


def _optimize_rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    height, width = report["shape"]
    settings = report["config"]
    what = (
        f"{report['frames']} frames {width}×{height}, {settings['backbone']}, "
        f"{settings['first_frame_steps']}/{settings['frame_steps']} steps, "
        f"temporal weight {settings['temporal_weight']:g}"
    )
    baseline, ours = report["frame_by_frame"], report["temporal"]
    rows = [
        (f"video ({what}): first frame", f"{ours['first_frame_seconds']:.2f} s", ""),
        (
            "video: each later frame (temporal / frame by frame)",
            f"{ours['other_frame_seconds']:.2f} s / {baseline['other_frame_seconds']:.2f} s "
            f"({1 / ours['other_frame_seconds']:.3f} / "
            f"{1 / baseline['other_frame_seconds']:.3f} frames per second)",
            "",
        ),
        (
            "video: temporal error (temporal / frame by frame)",
            f"{ours['temporal_error']:.4f} / {baseline['temporal_error']:.4f} = "
            f"{report['temporal_error_ratio']:.1f}× lower",
            "≥ 3×",
        ),
    ]
    for name in ("content", "style"):
        rows.append(
            (
                f"video: {name} loss per frame (temporal / frame by frame)",
                f"{ours['losses'][name]:.4f} / {baseline['losses'][name]:.4f} "
                f"({100 * (report['loss_ratios'][name] - 1):+.1f}%)",
                "within ±10%",
            )
        )
    return rows


def instant_rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(measure, value, target) rows of ``instant_section``'s report."""
    height, width = report["shape"]
    baseline, ours = report["frame_by_frame"], report["steadied"]
    what = (
        f"{report['frames']} frames {width}×{height}, steadiness {report['steadiness']:.2f}, "
        f"{report['rounds']} alternating rounds"
    )
    rows = [
        (
            f"video instant ({what}): frames per second (steadied / frame by frame)",
            f"{ours['frames_per_second']:.2f} / {baseline['frames_per_second']:.2f} = "
            f"{100 * report['frame_rate_share']:.0f}%",
            "≥ 70%",
        ),
        (
            "video instant: temporal error (steadied / frame by frame)",
            f"{ours['temporal_error']:.4f} / {baseline['temporal_error']:.4f} = "
            f"{report['temporal_error_ratio']:.1f}× lower",
            "≥ 3×",
        ),
    ]
    for name in ("content", "style"):
        rows.append(
            (
                f"video instant: {name} loss per frame on {report['backbone']} "
                "(steadied / frame by frame)",
                f"{ours['losses'][name]:.4f} / {baseline['losses'][name]:.4f} "
                f"({100 * (report['loss_ratios'][name] - 1):+.1f}%)",
                "within ±10%",
            )
        )
    page = report["page_size"]
    rows.append(
        (
            f"video instant at {page['size']} px (the Video page's size): frames per second "
            "(steadied / frame by frame)",
            f"{page['steadied']:.2f} / {page['frame_by_frame']:.2f}",
            "",
        )
    )
    if "optimize_frames_per_second" in report:
        rate = report["optimize_frames_per_second"]
        rows.append(
            (
                f"video optimize (today's method) at {width}×{height}: later frames per second",
                f"{rate:.3f} ({1 / rate:.1f} s a frame)",
                "",
            )
        )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    from nst.images import load_image

    parser = argparse.ArgumentParser(
        prog="python -m nst.benchmarks.video", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--style", required=True, help="style image")
    parser.add_argument("--size", type=int, default=VIDEO_SIZE)
    parser.add_argument("--frames", type=int, default=VIDEO_FRAMES)
    parser.add_argument("--config", default="", help="StyleConfig settings: key=value,...")
    parser.add_argument("--video", default="", help="VideoConfig settings: key=value,...")
    parser.add_argument("--strip", help="save a PNG strip of input and output frames here")
    parser.add_argument(
        "--methods", default="optimize,instant", help="comma-separated: optimize, instant"
    )
    parser.add_argument("--instant-size", type=int, default=INSTANT_SIZE)
    parser.add_argument("--instant-frames", type=int, default=INSTANT_FRAMES)
    parser.add_argument("--instant-rounds", type=int, default=INSTANT_ROUNDS)
    parser.add_argument("--instant-strip", help="save a PNG strip of the instant runs here")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    def settings(text: str) -> dict[str, str]:
        return dict(item.split("=", 1) for item in text.split(",") if item.strip())

    report = video_section(
        load_image(args.style),
        size=args.size,
        frames=args.frames,
        config=StyleConfig(**settings(args.config)),
        video=VideoConfig(**settings(args.video)),
        strip=args.strip,
        methods=[part.strip() for part in args.methods.split(",") if part.strip()],
        instant={
            "size": args.instant_size,
            "frames": args.instant_frames,
            "rounds": args.instant_rounds,
            "strip": args.instant_strip,
        },
    )
    if args.json:
        print(json.dumps(report))
    else:
        for row in format_rows(report):
            print(" | ".join(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
