"""The ``revision`` section: the default Painted run as a whole command-line process, this
checkout against another git revision (``--revision``), on every photo x painting pair of the
panel's folders.

Each pair runs ``python -m nst PHOTO PAINTING`` once in each checkout, one right after the
other, the order swapped from pair to pair so that a drift in the machine's speed does not
favour either; the seconds are the whole process (imports, networks, tracing, the run, the PNG),
as a person at the command line waits for them, and the peak RSS is the process's own. Both
results are judged by the same figures (``nst.quality``). Environment variables reach both
processes alike, so ``ONEDNN_MAX_CPU_ISA=AVX2 python -m nst.bench --only revision ...``
compares them with oneDNN held to AVX2, and ``--fast`` adds flags to both command lines.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from nst.benchmarks.common import median
from nst.benchmarks.panel import images_in

THIS_CHECKOUT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def revision_checkout(revision: str) -> Iterator[Path]:
    """A temporary detached work tree of ``revision`` of this repository, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="nst-revision-") as folder:
        tree = Path(folder) / "tree"
        git = ["git", "-C", str(THIS_CHECKOUT)]
        done = subprocess.run(
            [*git, "worktree", "add", "--detach", str(tree), revision],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise ValueError(
                f"--revision: git cannot check out {revision!r}: {done.stderr.strip()}"
            )
        try:
            yield tree
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(tree)], capture_output=True)


def timed_process(command: Sequence[str], cwd: Path) -> tuple[float, int, int]:
    """(wall seconds, peak RSS in bytes, exit status) of one whole process."""
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, stdout=output, stderr=output)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
    # ru_maxrss is in KiB on Linux.
    return seconds, int(usage.ru_maxrss) * 1024, process.returncode


def revision_section(
    revision: str,
    content_folder: str | Path,
    style_folder: str | Path,
    size: int,
    backbone: str,
    output: str | Path,
    flags: Sequence[str] = (),
) -> dict[str, Any]:
    """The default Painted run of this checkout and of ``revision`` on every pair: seconds,
    peak RSS and the pictures' figures of each, and the ratio of the seconds per pair."""
    from nst import quality
    from nst.images import load_image

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    rows = []
    with revision_checkout(revision) as tree:
        checkouts = {"this": THIS_CHECKOUT, "revision": tree}
        pairs = [
            (photo, painting)
            for photo in images_in(content_folder)
            for painting in images_in(style_folder)
        ]
        for index, (photo_path, painting_path) in enumerate(pairs):
            photo, painting = load_image(photo_path), load_image(painting_path)
            row: dict[str, Any] = {"content": photo_path.name, "style": painting_path.name}
            order = ["this", "revision"] if index % 2 == 0 else ["revision", "this"]
            for label in order:
                picture = output / f"{photo_path.stem}__{painting_path.stem}__{label}.png"
                command = [
                    sys.executable,
                    "-m",
                    "nst",
                    str(photo_path),
                    str(painting_path),
                    "-o",
                    str(picture),
                    "--size",
                    str(size),
                    "--backbone",
                    backbone,
                    "--quiet",
                    *flags,
                ]
                seconds, peak, status = timed_process(command, checkouts[label])
                if status != 0 or not picture.is_file():
                    row[label] = {"error": f"exit status {status}"}
                    continue
                figures = quality.figures(photo, painting, load_image(picture))
                row[label] = {"seconds": seconds, "peak_rss_bytes": peak, **figures}
            if "seconds" in row["this"] and "seconds" in row["revision"]:
                row["speedup"] = row["revision"]["seconds"] / row["this"]["seconds"]
            rows.append(row)
    speedups = [row["speedup"] for row in rows if "speedup" in row]
    return {
        "revision": revision,
        "size": size,
        "flags": list(flags),
        "pairs": rows,
        "median_speedup": median(speedups) if speedups else None,
        "min_speedup": min(speedups) if speedups else None,
    }


def format_rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(measure, value, target) rows: per pair, both runs' seconds and figures, then the
    median and the lowest speed-up."""
    rows = []
    for pair in report["pairs"]:
        cells = []
        for label in ("this", "revision"):
            run = pair[label]
            if "error" in run:
                cells.append(f"{label}: {run['error']}")
                continue
            cells.append(
                f"{label} {run['seconds']:.1f} s, {run['peak_rss_bytes'] / 2**30:.2f} GiB, "
                f"texture {run['texture_at_scale']:.2f}, edges {run['edge_agreement']:.2f}, "
                f"palette {run['palette_shift']:.0%}"
            )
        name = f"{Path(pair['content']).stem} × {Path(pair['style']).stem}"
        speedup = f" ({pair['speedup']:.2f}×)" if "speedup" in pair else ""
        rows.append((f"against {report['revision']}: {name}", "; ".join(cells) + speedup, ""))
    if report["median_speedup"] is not None:
        rows.append(
            (
                f"against {report['revision']}: speed-up of the whole process",
                f"median {report['median_speedup']:.2f}×, lowest {report['min_speedup']:.2f}×",
                "2.5×",
            )
        )
    return rows
