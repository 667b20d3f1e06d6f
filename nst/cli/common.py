"""What the commands share: the flags generated from the config dataclasses, the parser whose
errors are one line, loading an input image, the progress bar.

Usage errors and unusable inputs print one line on standard error and exit with code 2
(``USAGE_ERROR``); a failure to get the model weights exits with code 1 (``RUN_ERROR``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from nst.config import Adjustments, ServerLimits, StyleConfig
from nst.images import ImageError, check_shape, load_image
from nst.knobs import FieldSpec, specs_of

Config = TypeVar("Config")

USAGE_ERROR = 2
RUN_ERROR = 1


class UsageError(Exception):
    """A bad flag, path or input; printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are ``UsageError``s (one line, exit code 2)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def add_config_flags(
    parser: argparse.ArgumentParser,
    specs: Sequence[FieldSpec] | None = None,
    title: str = "style settings",
) -> None:
    """One flag per config field (``style_weight`` -> ``--style-weight``), with its help text;
    unset flags stay None so the config's own defaults apply."""
    group = parser.add_argument_group(title)
    for spec in specs_of(StyleConfig) if specs is None else specs:
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


def config_from(args: argparse.Namespace, config_class: type[Config] = StyleConfig) -> Config:
    """The config (``StyleConfig`` or ``VideoConfig``) of the parsed flags, the unset ones at the
    config's defaults; a bad value is a ``UsageError``."""
    values = {spec.name: getattr(args, spec.name) for spec in specs_of(config_class)}
    try:
        return config_class(**{name: value for name, value in values.items() if value is not None})
    except ValueError as error:
        raise UsageError(str(error)) from None


@dataclass(frozen=True)
class Settings:
    """Everything the flags set: the engine's config, the after-run adjustments, the limits."""

    config: StyleConfig
    adjustments: Adjustments
    limits: ServerLimits

    def to_dict(self) -> dict[str, Any]:
        """Plain settings, as written into results."""
        return {**self.config.to_dict(), **self.adjustments.to_dict(), **self.limits.to_dict()}


def add_settings_flags(parser: argparse.ArgumentParser, leave_out: frozenset[str] = frozenset()):
    """The flags of ``StyleConfig`` (but ``leave_out``), ``Adjustments`` and ``ServerLimits``."""
    add_config_flags(parser, [spec for spec in specs_of(StyleConfig) if spec.name not in leave_out])
    add_config_flags(parser, specs_of(Adjustments), "colour adjustments (after the run)")
    add_config_flags(parser, specs_of(ServerLimits), "limits")


def settings_from(args: argparse.Namespace) -> Settings:
    """The ``Settings`` of the parsed flags (see ``config_from``)."""
    return Settings(
        config_from(args), config_from(args, Adjustments), config_from(args, ServerLimits)
    )


def output_path(value: str, suffixes: Sequence[str], allowed: str) -> Path:
    """The result's path: ``suffixes`` (``allowed`` says them to the user; the first is the
    example), never a folder; else a ``UsageError``."""
    path = Path(value)
    if path.suffix.lower() not in suffixes:
        raise UsageError(f"output: '{value}' must end in {allowed}.")
    if path.is_dir():
        raise UsageError(
            f"output: '{value}' is a folder; give a file name ending in {suffixes[0]}."
        )
    return path


def load_input(path: str, limits: ServerLimits, what: str) -> Any:
    """An input image checked for use (``what``: content, style or mask); a bad file is a
    ``UsageError`` naming it."""
    try:
        image = load_image(path, max_pixels=limits.max_pixels)
        if what != "mask":
            check_shape(image, what=f"{what} image")
        return image
    except ImageError as error:
        raise UsageError(f"{what} '{path}': {error}") from None


class QuietBar:
    """What a hidden progress bar needs to answer, without importing tqdm (a cold instant run
    pays for every import)."""

    def __init__(self, total: int) -> None:
        self.total, self.n = total, 0

    def __enter__(self) -> QuietBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, amount: int = 1) -> None:
        self.n += amount

    def set_postfix(self, **values: Any) -> None:
        return None

    def refresh(self) -> None:
        return None


def step_bar(total: int, quiet: bool, description: str) -> Any:
    """A progress bar on standard error (none with ``quiet``)."""
    if quiet:
        return QuietBar(total)
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="step", file=sys.stderr)
