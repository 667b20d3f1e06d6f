"""Every knob, with its default, bounds and help text: the one source of truth.

``StyleConfig`` holds the engine's settings of a run; ``Adjustments`` the colour adjustments
applied after it; ``ServerLimits`` what a server accepts; ``VideoConfig`` the temporal side of a
clip. The command line (``nst.cli``) and the studio's widgets (``studio.widgets``,
``studio.video``) are generated from their field metadata (``FieldSpec``), so a default or a
bound is changed here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

Optimizer = Literal["adam", "lbfgs"]

OPTIMIZERS = ("adam", "lbfgs")
METHODS = ("optimize", "instant")
INITS = ("content", "instant", "noise", "blend")
POOLINGS = ("max", "avg")
BACKBONES = ("vgg19", "vgg16", "resnet50")
PRECISIONS = ("auto", "float32", "bfloat16")
COLOR_MODES = ("none", "luminance", "histogram")

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


def _knob(default: Any, label: str, help: str, kind: str, group: str = "advanced", **spec: Any):
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


@dataclass(frozen=True)
class StyleConfig(Knobs):
    """All settings of one style-transfer run. Construct it with keywords; it validates itself.

    Loss weights are relative: the engine normalises every loss term (see
    ``nst.engine.losses``) so that a value means the same at any image size and with any
    backbone.
    """

    # Painted by default: its first preview is the instant picture, as soon as the instant
    # method would show it, and the optimizer then paints it in detail (docs/instant.md).
    method: str = _knob(
        "optimize",
        "Method",
        "Instant: Magenta's feed-forward network paints the photo in one pass, in about a "
        "second. Painted (optimize): the optimizer repaints it in detail with real brush "
        "strokes, minutes on a CPU; the studio shows the instant picture first, and a run can "
        "be stopped whenever it looks right.",
        "choice",
        "main",
        choices=METHODS,
        choice_labels=("Painted", "Instant"),
    )
    # How the defaults were chosen (not tuned on random features). Our content and style terms
    # are *relative* errors (each layer's squared error divided by its target's mean square), so
    # they are dimensionless and about 1 for an unrelated image. jcjohnson/neural-style's recipe
    # (content 5, style 100, TV 1e-3) uses per-element means for both features and Grams, which
    # puts its two terms on a comparable footing, so its style:content ratio of 20:1 carries
    # over directly: style 20, content 1. The TensorFlow tutorial's raw weights (style 1e-2,
    # content 1e4) look far apart only because its unnormalised Gram entries dwarf its content
    # error; as relative errors it is also style-dominated. Both recipes use TV as a light
    # regulariser, a small part of the starting objective: our TV term is the mean per-pixel
    # gradient magnitude, small for a photo at any size, so weight 1 keeps it light. Checked on
    # trained features and by the quality panel (docs/benchmarks.md): every subject stays
    # recognizable with these weights, so they stay.
    style_weight: float = _knob(
        20.0,
        "Style intensity",
        "How strongly the painting's textures and colours take over the photo.",
        "float",
        "main",
        minimum=0.1,
        maximum=1000.0,
        step=0.1,
        log=True,
    )
    content_weight: float = _knob(
        1.0,
        "Content weight",
        "How closely the result keeps the photo's shapes and layout.",
        "float",
        "main",
        minimum=0.0,
        maximum=100.0,
        step=0.1,
    )
    tv_weight: float = _knob(
        1.0,
        "Smoothness",
        "Total-variation weight: higher values remove speckle and high-frequency noise.",
        "float",
        "main",
        minimum=0.0,
        maximum=100.0,
        step=0.1,
    )
    size: int = _knob(
        512,
        "Output size (px)",
        "Longest side of the result, in pixels; the aspect ratio is kept.",
        "int",
        "main",
        minimum=64,
        maximum=4096,
        step=32,
    )
    steps: int = _knob(
        100,
        "Steps",
        "Number of optimization steps (iterations for L-BFGS).",
        "int",
        "main",
        minimum=1,
        maximum=5000,
        step=10,
    )
    scales: int = _knob(
        1,
        "Coarse-to-fine scales",
        "Optimize first at smaller sizes, each about 1.4 times larger than the last, and refine "
        "the result at the next; 1 = at the output size only.",
        "int",
        minimum=1,
        maximum=8,
        step=1,
    )
    final_share: float = _knob(
        0.5,
        "Steps at full size",
        "With several scales: the share of the steps spent at the output size; the rest are "
        "split evenly between the smaller scales.",
        "float",
        minimum=0.05,
        maximum=1.0,
        step=0.05,
    )
    # L-BFGS by default: on trained features it reaches a given loss in far fewer iterations
    # than the tutorial's Adam needs steps, with a smooth curve, and keeps more of the photo's
    # edges and more of the painting's palette (nst.quality; docs/benchmarks.md). Adam in
    # bfloat16 can match it at equal time where bfloat16 is native, but most CPUs only have
    # float32, where an Adam step costs about what an L-BFGS iteration does and gains less.
    optimizer: str = _knob(
        "lbfgs",
        "Optimizer",
        "lbfgs: converges in the fewest steps and keeps the photo's edges (float32); adam: cheap "
        "steps, and bfloat16 where the hardware has it, but needs more of them.",
        "choice",
        choices=OPTIMIZERS,
    )
    # Adam's rate and its decay. On trained features a rate of 0.1 (chosen on random features)
    # swamps the photo: the loss jumps between steps and the subject fades. At 0.03 the curve
    # is smooth and the photo stays (docs/benchmarks.md). The cosine at the end settles the
    # pixels.
    learning_rate: float = _knob(
        0.03,
        "Learning rate",
        "Adam's step size on pixel values in [0, 1] (the TensorFlow tutorial uses 0.02).",
        "float",
        minimum=0.0001,
        maximum=1.0,
        step=0.0001,
        log=True,
    )
    lr_decay: float = _knob(
        0.3,
        "Learning-rate decay",
        "The share of the last steps over which the learning rate falls along a cosine to "
        "'Final learning rate'; 0 keeps it constant (the TensorFlow tutorial).",
        "float",
        minimum=0.0,
        maximum=1.0,
        step=0.05,
    )
    lr_end: float = _knob(
        0.05,
        "Final learning rate",
        "With learning-rate decay: the rate at the last step, as a fraction of the learning rate.",
        "float",
        minimum=0.0,
        maximum=1.0,
        step=0.01,
    )
    # From the instant picture: on trained features, over the quality panel's pairs, it ends
    # lower than from the photo on nearly every pair, and far lower where the photo is far
    # from the painting, with more of the painting's palette and most of the photo's edges;
    # from noise, a texture over a ghost of the scene (docs/instant.md, docs/benchmarks.md).
    init: str = _knob(
        "instant",
        "Start from",
        "content: start from the photo; instant: from the instant network's picture; noise: "
        "from random noise; blend: a mix of the photo and noise.",
        "choice",
        choices=INITS,
    )
    noise_ratio: float = _knob(
        0.5,
        "Noise in blend",
        "With init 'blend': the share of noise mixed into the photo at the start.",
        "float",
        minimum=0.0,
        maximum=1.0,
        step=0.05,
    )
    seed: int = _knob(
        0,
        "Seed",
        "Random seed: the same seed and settings give the same image.",
        "int",
        minimum=0,
        maximum=2**31 - 1,
        step=1,
    )
    backbone: str = _knob(
        "vgg19",
        "Backbone",
        "The network whose features define content and style.",
        "choice",
        choices=BACKBONES,
    )
    pooling: str = _knob(
        "max",
        "Pooling",
        "Pooling in the VGG backbones; Gatys et al. found average pooling gives smoother results.",
        "choice",
        choices=POOLINGS,
    )
    content_layers: tuple[str, ...] = _knob(
        (),
        "Content layers",
        "Layers whose features must match the photo (empty: the backbone's default).",
        "strings",
    )
    style_layers: tuple[str, ...] = _knob(
        (),
        "Style layers",
        "Layers whose Gram matrices must match the painting (empty: the backbone's default).",
        "strings",
    )
    style_layer_weights: tuple[float, ...] = _knob(
        (),
        "Style layer weights",
        "One weight per style layer, normalised to sum to 1 (empty: equal weights); the "
        "deeper layers' weights are then scaled by 'Painting's subjects'.",
        "floats",
        minimum=0.0,
        maximum=100.0,
    )
    # The deeper style layers (block4 and block5 of VGG) respond to object parts: matched at
    # the weight of the others, a portrait's statistics there are met by painting its eyes and
    # faces into the photo, wherever the content term leaves room (docs/portraits.md). Our
    # relative per-layer errors give every layer the same say; jcjohnson/neural-style's raw
    # Gram errors leave the deep layers almost none. Matching only the channels' means and
    # spreads there instead of their Gram matrices still planted the eyes, so the default
    # leaves these layers out of the style term, and this control brings them back.
    subject_weight: float = _knob(
        0.0,
        "Painting's subjects",
        "Weight of the deeper half of the style layers (block4 and block5 of VGG), which see "
        "the painting's objects (eyes, faces, figures) rather than its strokes and colours, "
        "against the others. 0: the painting's strokes, textures and colours only; 1: every layer alike "
        "(Gatys et al.), which can paint a portrait's eyes and faces into your photo.",
        "float",
        minimum=0.0,
        maximum=1.0,
        step=0.05,
    )
    preserve_colors: str = _knob(
        "none",
        "Preserve colours",
        "none: take the painting's colours; luminance: stylize brightness only and keep the "
        "photo's colours; histogram: recolour the painting to the photo's palette first "
        "(Gatys et al. 2017).",
        "choice",
        "color",
        choices=COLOR_MODES,
    )
    style_blend: tuple[float, ...] = _knob(
        (),
        "Style blend",
        "With several styles: one weight per style, normalised to sum to 1 (empty: equal).",
        "floats",
        "color",
        minimum=0.0,
        maximum=100.0,
    )
    style_scale: float = _knob(
        1.0,
        "Style scale",
        "Brush size: the painting is resized to this multiple of the output size before its "
        "textures are measured; smaller values give finer strokes.",
        "float",
        "color",
        minimum=0.1,
        maximum=4.0,
        step=0.05,
    )
    precision: str = _knob(
        "auto",
        "Precision",
        "auto: bfloat16 where the hardware computes it natively, else float32.",
        "choice",
        choices=PRECISIONS,
    )
    preview_every: int = _knob(
        10,
        "Preview every",
        "Emit a preview image every this many steps (and always after the first).",
        "int",
        minimum=1,
        maximum=1000,
        step=1,
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.backbone == "resnet50" and self.pooling != "max":
            raise ValueError(
                "pooling: 'avg' is only available for the VGG backbones (vgg19, vgg16)."
            )
        if (
            self.style_layer_weights
            and self.style_layers
            and len(self.style_layer_weights) != len(self.style_layers)
        ):
            raise ValueError(
                f"style_layer_weights: expected {len(self.style_layers)} values, one per style "
                f"layer, got {len(self.style_layer_weights)}."
            )
        if self.style_blend and sum(self.style_blend) <= 0:
            raise ValueError("style_blend: at least one weight must be greater than 0.")
        if self.style_layer_weights and sum(self.style_layer_weights) <= 0:
            raise ValueError("style_layer_weights: at least one weight must be greater than 0.")
        shallow = self.style_layer_weights[: shallow_layer_count(len(self.style_layer_weights))]
        if self.style_layer_weights and self.subject_weight == 0 and sum(shallow) <= 0:
            raise ValueError(
                "style_layer_weights: with 'Painting's subjects' at 0 the deeper style layers "
                "are left out, so at least one of the others needs a weight greater than 0."
            )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> StyleConfig:
        """Build from settings as written by ``to_dict``; unknown keys are ignored."""
        known = {spec.name for spec in field_specs()}
        return cls(**{key: value for key, value in values.items() if key in known})


@dataclass(frozen=True)
class Adjustments(Knobs):
    """The colour adjustments applied after a run (``nst.color.adjust``): instant, no
    optimization, so they are not the engine's settings. The studio's sliders under a result and
    the command line's flags come from these fields."""

    hue: float = _knob(
        0.0,
        "Hue shift (degrees)",
        "Rotate the result's hues after the run.",
        "float",
        "adjust",
        minimum=-180.0,
        maximum=180.0,
        step=1.0,
    )
    saturation: float = _knob(
        1.0,
        "Saturation",
        "Scale the result's colour saturation after the run (0 = grey).",
        "float",
        "adjust",
        minimum=0.0,
        maximum=3.0,
        step=0.05,
    )
    brightness: float = _knob(
        1.0,
        "Brightness",
        "Scale the result's brightness after the run.",
        "float",
        "adjust",
        minimum=0.0,
        maximum=3.0,
        step=0.05,
    )
    strength: float = _knob(
        1.0,
        "Stylization strength",
        "Blend the result with the photo after the run: 1 is the full stylization, 0 the photo.",
        "float",
        "adjust",
        minimum=0.0,
        maximum=1.0,
        step=0.05,
    )

    def apply(self, image: Any, content: Any = None) -> Any:
        """``image`` (float RGB in [0, 1]) adjusted; ``content`` (the photo) is needed when
        ``strength`` < 1."""
        from nst.color import adjust  # nst.color imports nst.images, which imports this module

        return adjust(image, content=content, **self.to_dict())


@dataclass(frozen=True)
class ServerLimits(Knobs):
    """What a server accepts, whoever asks: never a visitor's setting (the studio keeps the
    defaults; the command line has flags)."""

    max_pixels: int = _knob(
        50_000_000,
        "Pixel cap",
        "Images with more pixels than this are refused before decoding.",
        "int",
        "limits",
        minimum=1_000_000,
        maximum=200_000_000,
        step=1_000_000,
    )


def field_specs() -> list[FieldSpec]:
    """The presentation and bounds of every ``StyleConfig`` field, in declaration order."""
    return specs_of(StyleConfig)


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


def adjustment_specs() -> list[FieldSpec]:
    """The presentation and bounds of every ``Adjustments`` field, in declaration order."""
    return specs_of(Adjustments)


def limit_specs() -> list[FieldSpec]:
    """The presentation and bounds of every ``ServerLimits`` field, in declaration order."""
    return specs_of(ServerLimits)


def field_spec(name: str) -> FieldSpec:
    """The spec of one field of ``StyleConfig``, ``Adjustments`` or ``ServerLimits`` by name."""
    for spec in [*field_specs(), *adjustment_specs(), *limit_specs()]:
        if spec.name == name:
            return spec
    raise KeyError(name)


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


def normalised(weights: Sequence[float], count: int, what: str) -> list[float]:
    """Weights (style blend, style layers) scaled to sum to 1; empty means equal weights."""
    if not weights:
        return [1.0 / count] * count
    if len(weights) != count:
        raise ValueError(f"{what}: expected {count} values, got {len(weights)}.")
    total = float(sum(weights))
    return [float(weight) / total for weight in weights]


def shallow_layer_count(count: int) -> int:
    """How many of ``count`` style layers, shallowest first, are not scaled by
    ``subject_weight``: the first half, rounded up (block1 to block3 of VGG's five)."""
    return (count + 1) // 2


def style_layer_shares(config: StyleConfig, count: int) -> list[float]:
    """Each of ``count`` style layers' share of the style loss, summing to 1: the config's
    ``style_layer_weights`` (empty: equal), the deeper layers scaled by ``subject_weight``."""
    weights = normalised(config.style_layer_weights, count, "style_layer_weights")
    shallow = shallow_layer_count(count)
    scaled = [
        weight if index < shallow else weight * config.subject_weight
        for index, weight in enumerate(weights)
    ]
    return normalised(scaled, count, "style_layer_weights")


def validate(config: StyleConfig, style_count: int, has_mask: bool) -> None:
    """Check the settings against the inputs of a run; raise ``ValueError`` with one sentence.

    The checks that need more than the settings: how many style images there are and whether a
    mask is given. The engine calls this once per run (``nst.engine.run.check_run``).
    """
    if style_count < 1:
        raise ValueError("Give at least one style image.")
    blend = config.style_blend
    if blend and len(blend) != style_count:
        raise ValueError(
            f"{field_spec('style_blend').label}: give one weight per style ({style_count} "
            f"chosen, {len(blend)} given), or leave it empty for equal weights."
        )
    if has_mask and style_count > 2:
        raise ValueError(
            f"A mask works with one or two styles (white: first, black: second); "
            f"{style_count} are chosen."
        )


# Video (``nst.video``): the still-image settings above apply to every frame; these add the
# temporal side. Step counts are derived from the still-image default, so retuning ``steps``
# retunes video too.
_STILL_DEFAULTS = StyleConfig()


@dataclass(frozen=True)
class VideoConfig(Knobs):
    """Settings of a video run (Ruder, Dosovitskiy & Brox 2016) on top of a ``StyleConfig``.

    ``StyleConfig.steps`` is not used for video: the first frame gets ``first_frame_steps``
    (it is a still image, started from ``init``), every later frame ``frame_steps`` from the
    previous result warped by the optical flow.
    """

    # The temporal term is the mean squared difference over reliable pixels divided by
    # nst.video.TEMPORAL_SCALE, so it is about 1 when the frames differ by 0.1 (RMS, pixel
    # values in [0, 1]) there. A much larger weight stiffens and blurs the frames (their content
    # and style losses rise); this one cuts most of the flicker while the frames stay close to
    # frame-by-frame quality (``python -m nst.bench --only video``, docs/benchmarks.md).
    temporal_weight: float = _knob(
        5.0,
        "Steadiness",
        "Temporal weight: how strongly each frame keeps the previous frame's painting where "
        "the motion is reliable; higher values flicker less, 0 stylizes frames independently.",
        "float",
        "video",
        minimum=0.0,
        maximum=1000.0,
        step=0.1,
        log=True,
    )
    first_frame_steps: int = _knob(
        _STILL_DEFAULTS.steps,
        "First-frame steps",
        "Optimization steps of the first frame, which starts from scratch like a still image.",
        "int",
        "video",
        minimum=1,
        maximum=5000,
        step=10,
    )
    frame_steps: int = _knob(
        max(1, _STILL_DEFAULTS.steps // 2),
        "Steps per frame",
        "Optimization steps of every later frame, which starts from the previous result.",
        "int",
        "video",
        minimum=1,
        maximum=5000,
        step=5,
    )
    max_frames: int = _knob(
        0,
        "Max frames",
        "Stylize only the first this many frames of the clip (0: the whole clip).",
        "int",
        "video",
        minimum=0,
        maximum=100_000,
        step=1,
    )
    max_video_pixels: int = _knob(
        100_000_000,
        "Video pixel cap",
        "Clips whose frames x output pixels exceed this are refused before the run starts.",
        "int",
        "video-limits",
        minimum=1_000_000,
        maximum=10_000_000_000,
        step=1_000_000,
    )
    max_animation_frames: int = _knob(
        150,
        "Animation frame cap",
        "Results with at most this many frames are also offered as an animated WebP and GIF.",
        "int",
        "video-limits",
        minimum=1,
        maximum=10_000,
        step=1,
    )


def video_field_specs() -> list[FieldSpec]:
    """The presentation and bounds of every ``VideoConfig`` field, in declaration order."""
    return specs_of(VideoConfig)
