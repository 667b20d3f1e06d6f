"""``python -m nst video CLIP STYLE [STYLE ...] -o OUT.mp4``: stylize a clip without flicker.

``--method optimize`` (the default) runs the optimizer on every frame with the temporal loss;
``--method instant`` runs the instant network on every frame, steadied along the optical flow
(``--temporal-weight``, *Steadiness*, sets how much for both). The still-image flags apply to
every frame (except ``--steps``: see ``--first-frame-steps`` and ``--frame-steps``, which the
instant method does not use); the ``VideoConfig`` fields add the temporal ones. An unusable
clip prints one line and exits with code 2 before any work starts. Ctrl-C stops the run and
still writes the frames finished so far.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nst.cli.common import (
    USAGE_ERROR,
    Parser,
    Settings,
    UsageError,
    add_config_flags,
    add_settings_flags,
    config_from,
    load_input,
    output_path,
    settings_from,
)
from nst.knobs import specs_of
from nst.video_config import VideoConfig
from nst.videoio import VideoError, encode_animation, encode_mp4, frame_shape, probe, read_frames

OUTPUT_SUFFIXES = (".mp4", ".webp", ".gif")
# Still-image fields that do not apply to a clip: its steps are set per frame.
NOT_FOR_VIDEO = frozenset({"steps"})


def build_video_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m nst video",
        description="Stylize a video clip without flicker. --method optimize: each frame starts "
        "from the previous result warped by the optical flow, and a temporal loss keeps it "
        "steady (Ruder et al. 2016). --method instant: the instant network paints every frame "
        "and the previous output, carried along the flow, is blended in where the motion is "
        "reliable (several frames a second on a CPU).",
    )
    parser.add_argument("clip", help="the clip: MP4, MOV, WebM, animated GIF, ...")
    parser.add_argument("styles", nargs="+", metavar="STYLE", help="one or more style images")
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        help="result file: .mp4 (with the clip's sound), .webp or .gif (animated, silent)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_flags(parser, specs_of(VideoConfig), "video settings")
    add_settings_flags(parser, leave_out=NOT_FOR_VIDEO)
    parser.set_defaults(**dict.fromkeys(NOT_FOR_VIDEO))
    return parser


def run_video_command(argv: Sequence[str]) -> int:
    args = build_video_parser().parse_args(argv)
    settings = settings_from(args)
    config = settings.config
    video = config_from(args, VideoConfig)
    output = output_path(args.output, OUTPUT_SUFFIXES, ".mp4, .webp or .gif")
    # Fail fast, before TensorFlow is imported.
    styles = [load_input(path, settings.limits, "style") for path in args.styles]
    try:
        info = probe(args.clip, max_pixels=settings.limits.max_pixels)
    except VideoError as error:
        raise UsageError(f"clip '{args.clip}': {error}") from None
    from nst.front import check_clip_size

    shape = frame_shape(info, config.size)
    count = info.frames if not video.max_frames else min(video.max_frames, info.frames)
    try:
        check_clip_size(count, shape, video)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if info.notice:
        print(f"nst: {info.notice}", file=sys.stderr)
    summary = _stylize_clip(args, settings, video, info, shape, count, styles, output)
    if summary["error"]:
        print(f"nst: error: {summary['error']}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary))
    elif summary["frames"]:
        print(
            f"wrote {output} ({summary['frames']} frames, {shape[1]}x{shape[0]}, "
            f"{summary['seconds']} s, {summary['frames_per_second']:.2f} frames/s)"
        )
    if summary["interrupted"]:
        return 130
    return USAGE_ERROR if summary["error"] else 0


def _stylize_clip(
    args: argparse.Namespace,
    settings: Settings,
    video: VideoConfig,
    info: Any,
    shape: tuple[int, int],
    count: int,
    styles: list[Any],
    output: Path,
) -> dict[str, Any]:
    """Run the frames with a bar per frame and one overall; write what was finished."""
    from tqdm import tqdm

    from nst.color import adjust
    from nst.front import stylize_clip
    from nst.records import CancelToken, FrameDone, FrameStep, VideoOutcome

    config = settings.config
    started = time.perf_counter()
    outcome = VideoOutcome()
    cancel = CancelToken()
    error: str | None = None
    interrupted = False
    overall = tqdm(total=count, desc="frames", unit="frame", disable=args.quiet, file=sys.stderr)
    frame_bar = tqdm(
        total=video.first_frame_steps,
        desc="frame 1",
        unit="step",
        disable=args.quiet or config.method == "instant",  # no steps: one pass a frame
        file=sys.stderr,
        leave=False,
    )
    try:
        frames = read_frames(args.clip, info, shape, max_frames=count)
        for event in stylize_clip(
            frames, styles, config, video, frame_count=count, cancel=cancel, outcome=outcome
        ):
            if isinstance(event, FrameStep):
                if frame_bar.total != event.progress.total or event.progress.step == 1:
                    frame_bar.reset(total=event.progress.total)
                    frame_bar.set_description(f"frame {event.index + 1}")
                frame_bar.update(event.progress.step - frame_bar.n)
                frame_bar.set_postfix(loss=f"{event.progress.loss:.4g}")
            elif isinstance(event, FrameDone):
                overall.update(1)
        error = outcome.error
    except VideoError as failure:  # the pictures stopped decoding part-way
        error = str(failure)
    except KeyboardInterrupt:
        cancel.cancel()
        interrupted = True
    finally:
        frame_bar.close()
        overall.close()
    done = outcome.frames
    if done:
        changes = settings.adjustments.to_dict()
        images = [adjust(frame.image, content=frame.content, **changes) for frame in done]
        output.parent.mkdir(parents=True, exist_ok=True)
        if output.suffix.lower() == ".mp4":
            output.write_bytes(encode_mp4(images, info.fps, audio_from=args.clip))
        else:
            output.write_bytes(encode_animation(images, info.fps, format=output.suffix[1:].lower()))
    seconds = [frame.seconds for frame in done]
    return {
        "output": str(output) if done else None,
        "method": config.method,
        "clip": args.clip,
        "styles": list(args.styles),
        "frames": len(done),
        "frames_planned": count,
        "fps": info.fps,
        "width": shape[1],
        "height": shape[0],
        "rotation": info.rotation,
        "audio": bool(info.has_audio and output.suffix.lower() == ".mp4"),
        "notice": info.notice,
        "seconds": round(time.perf_counter() - started, 3),
        "first_frame_seconds": round(seconds[0], 3) if seconds else None,
        "other_frame_seconds": round(sum(seconds[1:]) / (len(seconds) - 1), 3)
        if len(seconds) > 1
        else None,
        "frames_per_second": round(len(done) / sum(seconds), 3) if done else None,
        "stopped": bool(outcome.stopped or interrupted or len(done) < count),
        "interrupted": interrupted,
        "error": error,
        "settings": {**settings.to_dict(), **video.to_dict()},
    }
