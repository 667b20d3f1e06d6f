"""The image commands: ``python -m nst CONTENT STYLE [STYLE ...] -o OUT.png`` and
``python -m nst batch``.

Every ``StyleConfig`` field becomes a flag (``style_weight`` -> ``--style-weight``) with the
field's default and help text (``nst.cli.common``). ``--print A4`` sizes each result for a print
(``nst.prints``), and before a painted run one line on standard error says its pixels, its print
size, its time and its memory here (``nst.forecast``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nst.cli.common import (
    Parser,
    Settings,
    UsageError,
    add_settings_flags,
    load_input,
    output_path,
    settings_from,
    step_bar,
)
from nst.images import ImageError, save_image
from nst.prints import DPI, PAPER_NAMES, parse_paper, print_size

OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m nst",
        description="Repaint a photo in the style of one or more paintings (Gatys et al.). "
        f"--print A4 sizes the result for a print at {DPI} dpi. "
        "For many pairs at once: python -m nst batch --help",
    )
    parser.add_argument("content", help="the photo to repaint")
    parser.add_argument("styles", nargs="+", metavar="STYLE", help="one or more style images")
    parser.add_argument("-o", "--output", required=True, help="result file, .png or .jpg")
    _add_common_flags(parser)
    return parser


def build_batch_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m nst batch",
        description="Stylize every content image with every style image; --print A4 sizes "
        f"each result for a print of its photo at {DPI} dpi.",
    )
    parser.add_argument("--content", nargs="+", required=True, help="content files or folders")
    parser.add_argument("--style", nargs="+", required=True, help="style files or folders")
    parser.add_argument("--out", required=True, help="folder for the results and results.json")
    _add_common_flags(parser)
    return parser


def _add_common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mask", help="black-and-white mask: white gets the (first) style")
    parser.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--print",
        dest="paper",
        type=_paper,
        metavar="PAPER",
        help=f"size the result to fill a print at {DPI} dpi, uncropped: "
        f"{', '.join(PAPER_NAMES)} (A4 and A3 take the photo's orientation); instead of --size",
    )
    add_settings_flags(parser)


def _paper(name: str) -> str:
    """``--print``'s value, checked (a bad one is argparse's one-line error)."""
    try:
        parse_paper(name)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return name.strip()


def parse_arguments(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """``parser``'s arguments; ``--print`` with ``--size`` is a usage error, as each sets the
    output size."""
    args = parser.parse_args(argv)
    if args.paper is not None and args.size is not None:
        parser.error(
            "--print sets the output size from the paper and the photo: give --print or "
            "--size, not both."
        )
    return args


def for_paper(settings: Settings, paper: str | None, content_shape: Sequence[int]) -> Settings:
    """``settings`` with the output size that fills ``paper`` with this photo (as they are
    without a paper)."""
    if paper is None:
        return settings
    config = settings.config.replace(size=print_size(paper, content_shape))
    return dataclasses.replace(settings, config=config)


def estimate_line(
    settings: Settings, content_shape: Sequence[int], paper: str | None
) -> str | None:
    """What is said before a painted run: the picture's pixels, its print size with a paper,
    and its time and memory here; None when it does not fit, as ``nst.front.check`` then
    refuses the run in its own sentence."""
    from nst.forecast import forecast

    figures = forecast(settings.config, content_shape, paper)
    return figures.sentence() if figures.fits else None


def _settings(settings: Settings, content: str, styles: Sequence[str], mask: str | None) -> dict:
    return {
        **settings.to_dict(),
        "content": Path(content).name,
        "styles": [Path(s).name for s in styles],
        "mask": Path(mask).name if mask else None,
    }


@dataclass(frozen=True)
class Inputs:
    """The images of one picture, read and checked (``read_inputs``)."""

    content: Any
    styles: list[Any]
    mask: Any | None


def read_inputs(
    content_path: str, style_paths: Sequence[str], mask_path: str | None, settings: Settings
) -> Inputs:
    """Read and check a picture's files; a bad one is a ``UsageError`` naming it. Read once:
    decoding a photo costs as much as a tenth of an instant run."""
    limits = settings.limits
    return Inputs(
        load_input(content_path, limits, "content"),
        [load_input(path, limits, "style") for path in style_paths],
        load_input(mask_path, limits, "mask") if mask_path else None,
    )


def _stylize_one(
    content_path: str,
    style_paths: Sequence[str],
    output: Path,
    settings: Settings,
    mask_path: str | None,
    progress: Any,
    inputs: Inputs,
    dpi: int | None = None,
) -> dict[str, Any]:
    """Stylize, adjust and save one picture of the files read into ``inputs`` (``dpi``: the
    resolution a print is made at, written into the file); returns the JSON summary."""
    config = settings.config
    content, styles, mask = inputs.content, inputs.styles, inputs.mask
    started = time.perf_counter()
    from nst.color import adjust
    from nst.front import result_of, stylize  # the instant method loads no TensorFlow

    try:
        events = stylize(content, styles, config, mask=mask, instant_first=False)  # no previews
        result = result_of(events, on_progress=progress)
    except ImageError as error:  # inputs that decode but cannot be used (e.g. 4000x10)
        raise UsageError(str(error)) from None
    image = adjust(result.image, content=content, **settings.adjustments.to_dict())
    output.parent.mkdir(parents=True, exist_ok=True)
    embedded = _settings(settings, content_path, style_paths, mask_path)
    embedded.update(final_loss=result.final_loss, steps_done=result.steps_done)
    save_image(image, output, embedded, dpi=dpi)
    return {
        "output": str(output),
        "content": content_path,
        "styles": list(style_paths),
        "method": config.method,
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
        "steps": result.steps_done,
        "seconds": round(time.perf_counter() - started, 3),
        # JSON has no NaN: an instant run computes no loss.
        "initial_loss": _finite_or_none(result.initial_loss),
        "final_loss": _finite_or_none(result.final_loss),
        "stopped": result.stopped,
        "error": result.error,
        "note": result.note,
    }


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def run_single(argv: Sequence[str]) -> int:
    args = parse_arguments(build_parser(), argv)
    settings = settings_from(args)
    output = output_path(args.output, OUTPUT_SUFFIXES, ".png or .jpg")
    inputs = read_inputs(args.content, args.styles, args.mask, settings)  # before TensorFlow
    settings = for_paper(settings, args.paper, inputs.content.shape)
    quiet = args.quiet or settings.config.method == "instant"  # one pass: nothing to count
    if not quiet:
        line = estimate_line(settings, inputs.content.shape, args.paper)
        if line is not None:
            print(line, file=sys.stderr)
    with step_bar(settings.config.steps, quiet, Path(args.content).name) as bar:

        def progress(event: Any) -> None:
            bar.update(event.step - bar.n)
            bar.set_postfix(loss=f"{event.loss:.4g}")

        summary = _stylize_one(
            args.content,
            args.styles,
            output,
            settings,
            args.mask,
            progress,
            inputs,
            DPI if args.paper else None,
        )
        if summary["note"]:  # ended early (L-BFGS): the run is complete at the steps it did
            bar.total = bar.n
            bar.refresh()
    for message in (summary["note"], summary["error"]):
        if message:
            print(message, file=sys.stderr)
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"wrote {output} ({summary['width']}x{summary['height']}, {summary['seconds']} s)")
    return 0


def _expand(items: Sequence[str], what: str) -> list[Path]:
    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            paths.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        elif path.exists():
            paths.append(path)
        else:
            raise UsageError(f"{what}: there is no file or folder '{item}'.")
    if not paths:
        raise UsageError(f"{what}: no images found in {', '.join(items)}.")
    return paths


def run_batch(argv: Sequence[str]) -> int:
    args = parse_arguments(build_batch_parser(), argv)
    settings = settings_from(args)
    config = settings.config
    contents = _expand(args.content, "content")
    styles = _expand(args.style, "style")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    pairs = [(content, style) for content in contents for style in styles]
    records: list[dict[str, Any]] = []
    with step_bar(len(pairs) * config.steps, args.quiet, "batch") as bar:
        for index, (content, style) in enumerate(pairs):
            output = out_dir / f"{content.stem}__{style.stem}.png"
            offset = index * config.steps

            def progress(event: Any, offset: int = offset) -> None:
                bar.update(offset + event.step - bar.n)

            try:
                inputs = read_inputs(str(content), [str(style)], args.mask, settings)
                pair = for_paper(settings, args.paper, inputs.content.shape)
                if not args.quiet and pair.config.method == "optimize":
                    line = estimate_line(pair, inputs.content.shape, args.paper)
                    if line is not None:
                        bar.write(f"{content.name} × {style.name}: {line}", file=sys.stderr)
                record = _stylize_one(
                    str(content),
                    [str(style)],
                    output,
                    pair,
                    args.mask,
                    progress,
                    inputs,
                    DPI if args.paper else None,
                )
                record["settings"] = pair.to_dict()
            except UsageError as error:
                record = {"content": str(content), "styles": [str(style)], "error": str(error)}
            records.append(record)
            bar.update(offset + config.steps - bar.n)
    (out_dir / "results.json").write_text(json.dumps(records, indent=2))
    failed = [record for record in records if "output" not in record]
    for record in failed:
        print(f"failed: {record['error']}", file=sys.stderr)
    summary = {
        "results": str(out_dir / "results.json"),
        "pairs": len(pairs),
        "failed": len(failed),
    }
    print(
        json.dumps(summary)
        if args.json
        else f"{len(pairs) - len(failed)}/{len(pairs)} done; see {out_dir / 'results.json'}"
    )
    return 1 if failed else 0
