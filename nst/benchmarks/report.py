"""The report as a Markdown table: the machine, then one row per figure with its target."""

from __future__ import annotations

import importlib
import math
from typing import Any

# Targets, for the table's last column: time to quality on trained VGG16 at 512 px in float32
# (what every CPU without native bfloat16 runs) and in bfloat16 where it is native; the first
# preview after pressing Stylize; a default run at 512 px; the step's share of the ceiling.
TARGETS = {
    "ratio_float32": 10.0,
    "ratio_native": 20.0,
    "first_preview_seconds": 2.0,
    "default_run_seconds": 60.0,
    "throughput_fraction": 0.9,
}


# Sections whose module gives its own table rows: report key -> module with ``format_rows``.
SECTION_ROWS = {
    "video": "nst.benchmarks.video",
    "live": "nst.benchmarks.live",
    "panel": "nst.benchmarks.panel",
    "large": "nst.benchmarks.large",
    "queue": "nst.benchmarks.queueing",
    "revision": "nst.benchmarks.revision",
    "studio": "nst.benchmarks.studio",
}


def _seconds(value: float | None) -> str:
    return "not reached" if value is None or not math.isfinite(value) else f"{value:.2f} s"


def format_table(report: dict[str, Any]) -> str:
    """The report as Markdown: the machine, then one table of figures and targets."""
    machine = report["machine"]
    lines = [
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GB, "
        f"{'a GPU' if machine['gpu'] else 'no GPU'}, bfloat16 "
        f"{'native' if machine['cpu_bf16'] else 'emulated'}, oneDNN's "
        f"{machine['cpu_kernels'].upper()} kernels; TensorFlow {machine['tensorflow']}; "
        f"load average {machine['load_average'][0]} at start, "
        f"{machine.get('load_average_end', ['?'])[0]} at end.",
        "",
        "| measure | value | target |",
        "| --- | --- | --- |",
    ]

    def row(name: str, value: str, target: str = "") -> None:
        lines.append(f"| {name} | {value} | {target} |")

    for precision, seconds in report.get("build_seconds", {}).items():
        row(f"model build ({precision})", f"{seconds:.2f} s")
    for precision, gflops in report.get("ceiling_gflops", {}).items():
        row(f"ceiling: 4096² matmul, {precision}", f"{gflops:.0f} GFLOP/s")
    for step in report.get("steps", []):
        height, width = step["shape"]
        name = f"{step['optimizer']} step {width}×{height} {step['precision']}"
        value = (
            f"{step['seconds_per_step']:.3f} s (+{step['first_step_extra']:.2f} s first); "
            f"{step['gflops']:.0f} GFLOP/s = {100 * step['ceiling_fraction']:.0f}% of ceiling"
        )
        if "scipy_seconds_per_step" in step:
            value += f"; scipy's own part {step['scipy_seconds_per_step']:.3f} s"
        row(name, value)
    if report.get("throughput_fraction") is not None:
        row(
            "step throughput, default step and precision",
            f"{100 * report['throughput_fraction']:.0f}% of ceiling "
            f"(forward+backward = {report['forward_backward_ratio']:.2f}× forward)",
            "≥ 90%",
        )
    quality = report.get("time_to_quality")
    if quality:
        reference = quality["reference"]
        features = f"{quality.get('backbone', 'vgg19')}, {machine.get('weights', '?')} weights"
        row(
            f"reference (tutorial recipe, {reference['steps']} steps, float32) at "
            f"{quality['size']} px, {features}",
            f"{reference['seconds']:.1f} s, loss L_ref {reference['loss']:.4f}",
        )
        for fast in quality["fast"]:
            settings = ", ".join(
                f"{key} {value}"
                for key, value in fast["config"].items()
                if key not in ("size", "preview_every", "precision")
            )
            row(
                f"{settings or 'default run'} in {fast['precision']}: time to L_ref",
                f"{_seconds(fast['seconds_to_quality'])} ({fast['steps']} steps in "
                f"{fast['seconds']:.1f} s, final loss {fast['final_loss']:.4f})",
            )
            ratio = fast["time_to_quality_ratio"]
            target = TARGETS["ratio_float32" if fast["precision"] == "float32" else "ratio_native"]
            row(
                f"time-to-quality ratio, {fast['precision']}",
                f"{ratio:.1f}×" if ratio else "not reached",
                f"≥ {target:g}×",
            )
            if "figures" in fast and "figures" in reference:
                row(
                    f"pictures, {fast['precision']}: the reference's "
                    f"({reference['seconds']:.1f} s) against the default run's "
                    f"({fast['seconds']:.1f} s)",
                    f"{_figure_text(reference['figures'])} against {_figure_text(fast['figures'])}",
                )
            matched, equal = fast.get("reference_seconds_to_match"), fast.get("equal_quality_ratio")
            if matched and equal:
                row(
                    f"equal-quality ratio, {fast['precision']}: the reference's time to the "
                    "default run's final loss, over the default run's time",
                    f"{matched:.1f} s / {fast['seconds']:.1f} s = {equal:.1f}×",
                )
    if "first_preview_seconds" in report:
        row(
            "first preview, defaults",
            _seconds(report["first_preview_seconds"]),
            f"≤ {TARGETS['first_preview_seconds']:g} s",
        )
    if "default_run_seconds" in report:
        run = report["default_run"]
        row(
            f"default run at {run['size']} px ({run['steps']} steps)",
            _seconds(report["default_run_seconds"]),
            f"≤ {TARGETS['default_run_seconds']:g} s",
        )
    for memory in (report.get("memory"), report.get("memory_reference")):
        if not memory:
            continue
        for run in memory["runs"]:
            if "peak_rss_bytes" in run:
                height, width = run["shape"]
                row(
                    f"peak RSS {width}×{height} ({memory['precision']}, {memory['optimizer']})",
                    f"{run['peak_rss_bytes'] / 1e9:.2f} GB",
                )
            else:
                row(f"peak RSS at {run['size']} px", f"failed: {run['error']}")
        largest = memory["largest"]
        if largest:
            row(
                f"largest size in {largest['memory_bytes'] / 1e9:.0f} GB ({memory['optimizer']})",
                f"{largest['longest_side']} px (this aspect), {largest['square_side']} px square",
            )
    if "instant" in report or "instant_latency" in report:
        from nst.benchmarks.instant import format_rows as instant_rows

        for name, value, target in instant_rows(report):
            row(name, value, target)
    for key, module in SECTION_ROWS.items():
        if report.get(key):
            for name, value, target in importlib.import_module(module).format_rows(report[key]):
                row(name, value, target)
    return "\n".join(lines)


def _figure_text(figures: dict[str, float]) -> str:
    """``nst.quality.figures`` in a table cell."""
    return (
        f"texture {figures['texture_at_scale']:.2f}, edges {figures['edge_agreement']:.2f}, "
        f"palette {100 * figures['palette_shift']:.0f}%"
    )
