"""How a knob is declared, presented and checked: the machinery behind ``nst.config``.

A knob is a dataclass field made by ``knob``: its default plus the label, help text, kind,
group and bounds that the command line (``nst.cli``) and the studio's widgets are generated
from. ``Knobs`` records coerce and check every field against its ``FieldSpec`` when built.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, TypeVar

Record = TypeVar("Record", bound="Knobs")


@dataclass(frozen=True)
class FieldSpec:
    """How one config field is presented and checked (read from the dataclass metadata)."""

    name: str
    label: str
    help: str
    default: Any
    kind: str  # "float", "int", "choice", "floats", "strings"
    group: str  # "main", "advanced", "color", "adjust", "limits", "video", "video-limits"
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[str, ...] = ()
    choice_labels: tuple[str, ...] = ()  # what a person reads for each choice (default: itself)

    def choice_label(self, choice: str) -> str:
        if self.choice_labels:
            return self.choice_labels[self.choices.index(choice)]
        return choice


def knob(default: Any, label: str, help: str, kind: str, group: str = "advanced", **spec: Any):
    """A dataclass field carrying its presentation and bounds as metadata."""
    metadata = {"label": label, "help": help, "kind": kind, "group": group, **spec}
    return field(default=default, metadata=metadata)


class Knobs:
    """What every record of knobs does: coerce and check each field against its ``FieldSpec``
    on construction, copy with changes, and turn into plain JSON-safe values."""

    def __post_init__(self) -> None:
        for spec in specs_of(type(self)):
            object.__setattr__(self, spec.name, _checked(spec, getattr(self, spec.name)))

    def replace(self: Record, **changes: Any) -> Record:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable values (tuples become lists)."""
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in dataclasses.asdict(self).items()
        }


def specs_of(config_class: type) -> list[FieldSpec]:
    """The ``FieldSpec`` of each field of a config dataclass built with ``_knob``."""
    specs = []
    for item in dataclasses.fields(config_class):
        meta = dict(item.metadata)
        specs.append(
            FieldSpec(
                name=item.name,
                label=meta.pop("label"),
                help=meta.pop("help"),
                kind=meta.pop("kind"),
                group=meta.pop("group"),
                default=item.default,
                **meta,
            )
        )
    return specs


def _range_text(spec: FieldSpec) -> str:
    return f"between {spec.minimum:g} and {spec.maximum:g}"


def _checked(spec: FieldSpec, value: Any) -> Any:
    """Coerce ``value`` to the field's type, or raise a ValueError naming field and range."""
    name = spec.name
    if spec.kind == "choice":
        if value not in spec.choices:
            raise ValueError(f"{name}: must be one of {', '.join(spec.choices)}; got {value!r}.")
        return value
    if spec.kind == "strings":
        if isinstance(value, str):
            value = tuple(part.strip() for part in value.split(",") if part.strip())
        if not all(isinstance(part, str) and part for part in value):
            raise ValueError(f"{name}: must be a list of layer names; got {value!r}.")
        return tuple(value)
    if spec.kind == "floats":
        if isinstance(value, str):
            value = tuple(part for part in value.split(",") if part.strip())
        try:
            numbers = tuple(float(part) for part in value)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: must be a list of numbers; got {value!r}.") from None
        for number in numbers:
            if not math.isfinite(number) or not spec.minimum <= number <= spec.maximum:
                raise ValueError(f"{name}: each value must be {_range_text(spec)}; got {number:g}.")
        return numbers
    if isinstance(value, bool):
        raise ValueError(f"{name}: must be a number {_range_text(spec)}; got {value!r}.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be a number {_range_text(spec)}; got {value!r}.") from None
    if not math.isfinite(number) or not spec.minimum <= number <= spec.maximum:
        raise ValueError(f"{name}: must be {_range_text(spec)}; got {value!r}.")
    if spec.kind == "int":
        if number != int(number):
            raise ValueError(f"{name}: must be a whole number {_range_text(spec)}; got {value!r}.")
        return int(number)
    return number
