"""Command line: ``python -m nst CONTENT STYLE [STYLE ...] -o OUT.png`` and ``python -m nst batch``.

Every ``StyleConfig`` field becomes a flag (``style_weight`` -> ``--style-weight``) with the
field's default and help text. Usage errors and unusable inputs print one line on standard
error and exit with code 2; a failure to get the model weights exits with code 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from nst.config import FieldSpec, StyleConfig, field_specs
from nst.images import ImageError, check_shape, load_image, save_image

USAGE_ERROR = 2
RUN_ERROR = 1
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


class UsageError(Exception):
    """A bad flag, path or input; printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _add_config_flags(
    parser: argparse.ArgumentParser,
    specs: Sequence[FieldSpec] | None = None,
    title: str = "style settings",
) -> None:
    group = parser.add_argument_group(title)
    for spec in field_specs() if specs is None else specs:
        flag = "--" + spec.name.replace("_", "-")
        default = spec.default
        if spec.kind in ("floats", "strings"):
            shown = ",".join(str(v) for v in default) or "backbone/equal default"
            help_text = f"{spec.help} Comma-separated. (default: {shown})"
        elif spec.kind == "choice":
            help_text = f"{spec.help} (default: {default})"
        else:
            help_text = (
                f"{spec.help} Range {spec.minimum:g}..{spec.maximum:g}. (default: {default})"
            )
        group.add_argument(
            flag,
            dest=spec.name,
            default=None,
            metavar=spec.name.upper() if spec.kind != "choice" else None,
            choices=spec.choices or None,
            help=help_text,
        )


def _config_from(args: argparse.Namespace) -> StyleConfig:
    values = {spec.name: getattr(args, spec.name) for spec in field_specs()}
    try:
        return StyleConfig(**{name: value for name, value in values.items() if value is not None})
    except ValueError as error:
        raise UsageError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m nst",
        description="Repaint a photo in the style of one or more paintings (Gatys et al.). "
        "For many pairs at once: python -m nst batch --help",
    )
    parser.add_argument("content", help="the photo to repaint")
    parser.add_argument("styles", nargs="+", metavar="STYLE", help="one or more style images")
    parser.add_argument("-o", "--output", required=True, help="result file, .png or .jpg")
    _add_common_flags(parser)
    return parser


def build_batch_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m nst batch",
        description="Stylize every content image with every style image.",
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
    _add_config_flags(parser)


def _output_path(value: str) -> Path:
    path = Path(value)
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise UsageError(f"output: '{value}' must end in .png or .jpg.")
    if path.exists() and path.is_dir():
        raise UsageError(f"output: '{value}' is a folder; give a file name ending in .png.")
    return path


def _load(path: str, config: StyleConfig, what: str) -> Any:
    try:
        image = load_image(path, max_pixels=config.max_pixels)
        if what != "mask":
            check_shape(image, what=f"{what} image")
        return image
    except ImageError as error:
        raise UsageError(f"{what} '{path}': {error}") from None


def _settings(config: StyleConfig, content: str, styles: Sequence[str], mask: str | None) -> dict:
    return {
        **config.to_dict(),
        "content": Path(content).name,
        "styles": [Path(s).name for s in styles],
        "mask": Path(mask).name if mask else None,
    }


def _stylize_one(
    content_path: str,
    style_paths: Sequence[str],
    output: Path,
    config: StyleConfig,
    mask_path: str | None,
    progress: Any,
) -> dict[str, Any]:
    """Load, stylize, adjust and save one picture; returns the JSON summary."""
    content = _load(content_path, config, "content")
    styles = [_load(path, config, "style") for path in style_paths]
    mask = _load(mask_path, config, "mask") if mask_path else None
    from nst.color import adjust
    from nst.stylize import run_stylize

    started = time.perf_counter()
    try:
        result = run_stylize(content, styles, config, mask=mask, on_progress=progress)
    except ImageError as error:  # inputs that decode but cannot be used (e.g. 4000x10)
        raise UsageError(str(error)) from None
    image = adjust(
        result.image,
        hue=config.hue,
        saturation=config.saturation,
        brightness=config.brightness,
        strength=config.strength,
        content=content,
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    settings = _settings(config, content_path, style_paths, mask_path)
    settings.update(final_loss=result.final_loss, steps_done=result.steps_done)
    save_image(image, output, settings)
    return {
        "output": str(output),
        "content": content_path,
        "styles": list(style_paths),
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
        "steps": result.steps_done,
        "seconds": round(time.perf_counter() - started, 3),
        "initial_loss": result.initial_loss,
        "final_loss": result.final_loss,
        "stopped": result.stopped,
        "error": result.error,
        "note": result.note,
    }


def _step_bar(total: int, quiet: bool, description: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="step", disable=quiet, file=sys.stderr)


def run_single(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    config = _config_from(args)
    output = _output_path(args.output)
    # Fail fast, before TensorFlow is imported.
    _load(args.content, config, "content")
    for path in args.styles:
        _load(path, config, "style")
    if args.mask:
        _load(args.mask, config, "mask")
    with _step_bar(config.steps, args.quiet, Path(args.content).name) as bar:

        def progress(event: Any) -> None:
            bar.update(event.step - bar.n)
            bar.set_postfix(loss=f"{event.loss:.4g}")

        summary = _stylize_one(args.content, args.styles, output, config, args.mask, progress)
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
    args = build_batch_parser().parse_args(argv)
    config = _config_from(args)
    contents = _expand(args.content, "content")
    styles = _expand(args.style, "style")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    pairs = [(content, style) for content in contents for style in styles]
    records: list[dict[str, Any]] = []
    with _step_bar(len(pairs) * config.steps, args.quiet, "batch") as bar:
        for index, (content, style) in enumerate(pairs):
            output = out_dir / f"{content.stem}__{style.stem}.png"
            offset = index * config.steps

            def progress(event: Any, offset: int = offset) -> None:
                bar.update(offset + event.step - bar.n)

            try:
                record = _stylize_one(
                    str(content), [str(style)], output, config, args.mask, progress
                )
                record["settings"] = config.to_dict()
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


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "batch":
            return run_batch(argv[1:])
        if argv and argv[0] == "video":
            from nst.cli_video import run_video

            return run_video(argv[1:])
        return run_single(argv)
    except UsageError as error:
        print(f"nst: error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("nst: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # model weights, numerical or other run failures: one line
        from nst.model import WeightsError

        if isinstance(error, WeightsError | ValueError):
            print(f"nst: error: {error}", file=sys.stderr)
            return RUN_ERROR if isinstance(error, WeightsError) else USAGE_ERROR
        raise
