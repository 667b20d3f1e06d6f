"""The ``studio`` section: the first Painted run of a freshly started studio against the same
run on the command line.

Each round starts ``streamlit run app.py`` afresh (``nst.benchmarks.live.serve_app``), opens
the Stylize page in headless Chromium (Debian's, through Playwright) with the run's size and
backbone in its link, uploads the photo and the painting, and presses Stylize once the page has
been open ``CHOOSING_SECONDS`` (a person choosing pictures; the server warms up meanwhile).
It times Stylize to the instant picture on the page and to "Finished". The command line's
figure is the same run in a fresh ``python -m nst ... --json`` process: its ``seconds``, the
engine's time from the start of the run to the result (the loss's tracing included, the
TensorFlow import not). The rounds alternate which comes first. With the "redis" queue each
round's server has a fresh ``redis-server`` and one RQ worker of its own, started first.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from nst.benchmarks.live import BROWSER_FLAGS, CHROMIUM, ROOT, serve_app

CHOOSING_SECONDS = 25.0
QUEUES = ("local", "redis")
TIMEOUT_MS = 600_000


def command_line_seconds(
    content: str, style: str, size: int, backbone: str, output: Path, env: dict[str, str]
) -> float:
    """The engine's seconds of the default Painted run in a fresh command-line process."""
    command = [
        sys.executable,
        "-m",
        "nst",
        content,
        style,
        "-o",
        str(output),
        "--size",
        str(size),
        "--backbone",
        backbone,
        "--json",
        "--quiet",
    ]
    done = subprocess.run(
        command, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])


def studio_seconds(
    content: str,
    style: str,
    size: int,
    backbone: str,
    log_path: Path,
    env: dict[str, str],
    choosing: float = CHOOSING_SECONDS,
) -> dict[str, float]:
    """Seconds from Stylize to the instant picture and to "Finished" on a fresh server."""
    from playwright.sync_api import sync_playwright

    with serve_app(log_path, env) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_FLAGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1800})
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            opened = time.perf_counter()
            page.goto(f"{url}/?backbone={backbone}&size={size}")
            page.get_by_role("button", name="Stylize", exact=True).wait_for()
            for label, path in (
                ("Upload a photo", content),
                ("Upload one or more paintings", style),
            ):
                uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text=label)
                uploader.locator('input[type="file"]').set_input_files(path)
                page.get_by_text(f"{Path(path).name} ·").first.wait_for()
            time.sleep(max(0.0, choosing - (time.perf_counter() - opened)))
            started = time.perf_counter()
            page.get_by_role("button", name="Stylize", exact=True).click()
            page.get_by_text("The instant picture").first.wait_for()
            instant = time.perf_counter() - started
            page.get_by_text("Finished").first.wait_for()
            finished = time.perf_counter() - started
        finally:
            browser.close()
    return {"instant": instant, "finished": finished}


def studio_section(
    content: str,
    style: str,
    size: int,
    backbone: str,
    rounds: int = 2,
    choosing: float = CHOOSING_SECONDS,
    queues: Sequence[str] = ("local",),
) -> dict[str, Any]:
    """``rounds`` of the studio's first run and the command line's, alternating, for each of
    ``queues``: "local" (the in-process queue) or "redis" (a fresh ``redis-server`` and one
    RQ worker, ``python -m nst.worker``, started before the server)."""
    for queue in queues:
        if queue not in QUEUES:
            raise ValueError(f"--studio-queues: choose local or redis, not {queue!r}.")
    report: dict[str, Any] = {"content": content, "style": style, "size": size, "queues": {}}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for queue in queues:
            runs: list[dict[str, float]] = []
            for index in range(rounds):
                order = ("cli", "studio") if index % 2 == 0 else ("studio", "cli")
                run: dict[str, float] = {}
                for name in order:
                    if name == "cli":
                        run["cli"] = command_line_seconds(
                            content, style, size, backbone, folder / "cli.png", {}
                        )
                        continue
                    with _backend(queue) as env:
                        run.update(
                            studio_seconds(
                                content, style, size, backbone, folder / "log", env, choosing
                            )
                        )
                run["ratio"] = run["finished"] / run["cli"]
                runs.append(run)
            report["queues"][queue] = {
                "runs": runs,
                "median_ratio": statistics.median(run["ratio"] for run in runs),
            }
    return report


@contextlib.contextmanager
def _backend(queue: str) -> Iterator[dict[str, str]]:
    """The server's environment for ``queue``, with its Redis and worker while it is used."""
    if queue == "local":
        yield {}
        return
    from nst.benchmarks.queueing import redis_cluster

    with redis_cluster("nst-studio-") as cluster:
        cluster.add_workers(1)
        yield {"NST_QUEUE": cluster.url}


def format_rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(measure, value, target) rows: each queue's rounds, then its median ratio."""
    name = f"{Path(report['content']).stem} × {Path(report['style']).stem}, {report['size']} px"
    rows = []
    for queue, measured in report["queues"].items():
        rows += [
            (
                f"studio ({queue} queue), round {index}: {name}",
                f"Stylize → instant picture {run['instant']:.2f} s, → Finished "
                f"{run['finished']:.1f} s; command line {run['cli']:.1f} s ({run['ratio']:.2f}×)",
                "",
            )
            for index, run in enumerate(measured["runs"], 1)
        ]
        rows.append(
            (
                f"studio ({queue} queue): Finished against the command line's engine seconds",
                f"median {measured['median_ratio']:.2f}×",
                "≤ 1.0×",
            )
        )
    return rows
