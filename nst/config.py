"""Every knob, with its default, bounds and help text: the one source of truth.

``StyleConfig`` holds the engine's settings of a run; ``Adjustments`` the colour adjustments
applied after it; ``ServerLimits`` what a server accepts (``nst.video_config`` adds the temporal
side of a clip). The command line (``nst.cli``) and the studio's widgets (``studio.widgets``,
``studio.video``) are generated from their field metadata (``FieldSpec``), so a default or a
bound is changed here and nowhere else.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nst.knobs import FieldSpec, Knobs, knob, specs_of
from nst.prints import LARGEST_PRINT_SIDE

OPTIMIZERS = ("adam", "lbfgs")
LBFGS_HISTORY = 10  # correction pairs L-BFGS keeps at most (``nst.engine.lbfgs``)
METHODS = ("optimize", "instant")
INITS = ("content", "instant", "noise", "blend")
POOLINGS = ("max", "avg")
BACKBONES = ("vgg19", "vgg16", "resnet50")
PRECISIONS = ("auto", "float32", "bfloat16")
COLOR_MODES = ("none", "luminance", "histogram")


# The content term is never measured on fewer pixels than this longest side (or the working
# size, when that is smaller): below it block5_conv2 sees a grid of a few cells and the photo's
# layout is lost (docs/benchmarks.md, "Cheaper evaluations").
CONTENT_MIN_SIDE = 128
# At print sizes (a picture computed tile by tile, ``nst.engine.tiles``) the content term is
# measured on the picture scaled down to at most this longest side, in one pass: the layout
# it keeps was settled at the smaller scales, the plan's base size (``nst.plan``) among them,
# and measured on more pixels it holds the photo's finer detail against the painting's
# strokes (docs/benchmarks.md, "Print sizes").
CONTENT_TILED_SIDE = 512


@dataclass(frozen=True)
class StyleConfig(Knobs):
    """All settings of one style-transfer run. Construct it with keywords; it validates itself.

    Loss weights are relative: the engine normalises every loss term (see
    ``nst.engine.losses``) so that a value means the same at any image size and with any
    backbone.
    """

    # Painted by default: the instant picture comes first, then the optimizer paints it.
    method: str = knob(
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
    # jcjohnson/neural-style's 20:1 style:content ratio, which carries over to our relative
    # losses; TV stays light (docs/how-it-is-built.md, "Why these defaults").
    style_weight: float = knob(
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
    # The content layer is block3_conv1 (``DEFAULT_LAYERS``), where the photo's features are
    # matched far more closely than at block5_conv2: 0.3 leaves the painting as much room as
    # 1.0 did there, with more of its strokes (docs/benchmarks.md, "Cheaper evaluations").
    content_weight: float = knob(
        0.3,
        "Content weight",
        "How closely the result keeps the photo's shapes and layout.",
        "float",
        "main",
        minimum=0.0,
        maximum=100.0,
        step=0.1,
    )
    tv_weight: float = knob(
        1.0,
        "Smoothness",
        "Total-variation weight: higher values remove speckle and high-frequency noise.",
        "float",
        "main",
        minimum=0.0,
        maximum=100.0,
        step=0.1,
    )
    # Up to an A3 print at 300 dpi (``nst.prints``), in steps of one pixel: a paper preset asks
    # for sizes such as 3307 (a 4:3 photo on A4). Whether a size fits in memory is checked
    # before the run starts (``nst.front.check``).
    size: int = knob(
        512,
        "Output size (px)",
        "Longest side of the result, in pixels; the aspect ratio is kept.",
        "int",
        "main",
        minimum=64,
        maximum=LARGEST_PRINT_SIDE,
        step=1,
    )
    # L-BFGS over the coarse-to-fine plan: with the content at block3_conv1, 70 iterations
    # give the pictures of 100; 60 lose texture (docs/benchmarks.md, "Cheaper evaluations").
    steps: int = knob(
        70,
        "Steps",
        "Number of optimization steps (iterations for L-BFGS).",
        "int",
        "main",
        minimum=1,
        maximum=5000,
        step=10,
    )
    # Coarse to fine from about 128 px by default: about 3x faster than one scale at 512 px,
    # with more of the painting's large strokes (texture at scale); started from the instant
    # picture it keeps the photo's layout (docs/benchmarks.md, "Coarse to fine").
    scales: int = knob(
        12,
        "Coarse-to-fine scales",
        "At most this many scales, from about 128 px up, each about 1.4 times larger than the "
        "last; each scale's result is refined at the next. 1 = at the output size only.",
        "int",
        minimum=1,
        maximum=12,
        step=1,
    )
    final_share: float = knob(
        0.1,
        "Steps at full size",
        "With several scales: the share of the steps spent at the output size; the rest go to "
        "the smaller scales, each smaller one getting twice the steps of the next.",
        "float",
        minimum=0.05,
        maximum=1.0,
        step=0.05,
    )
    # L-BFGS: lower losses in fewer iterations than Adam, more of the photo's edges and of the
    # painting's palette on trained features (docs/benchmarks.md).
    optimizer: str = knob(
        "lbfgs",
        "Optimizer",
        "lbfgs: converges in the fewest steps and keeps the photo's edges (float32); adam: cheap "
        "steps, and bfloat16 where the hardware has it, but needs more of them.",
        "choice",
        choices=OPTIMIZERS,
    )
    # On trained features 0.1 swamps the photo and 0.03 keeps it (docs/benchmarks.md); the
    # cosine at the end settles the pixels.
    learning_rate: float = knob(
        0.03,
        "Learning rate",
        "Adam's step size on pixel values in [0, 1] (the TensorFlow tutorial uses 0.02).",
        "float",
        minimum=0.0001,
        maximum=1.0,
        step=0.0001,
        log=True,
    )
    lr_decay: float = knob(
        0.3,
        "Learning-rate decay",
        "The share of the last steps over which the learning rate falls along a cosine to "
        "'Final learning rate'; 0 keeps it constant (the TensorFlow tutorial).",
        "float",
        minimum=0.0,
        maximum=1.0,
        step=0.05,
    )
    lr_end: float = knob(
        0.05,
        "Final learning rate",
        "With learning-rate decay: the rate at the last step, as a fraction of the learning rate.",
        "float",
        minimum=0.0,
        maximum=1.0,
        step=0.01,
    )
    # The instant picture ends lower than the photo on nearly every panel pair, with more of
    # the painting's palette (docs/instant.md).
    init: str = knob(
        "instant",
        "Start from",
        "content: start from the photo; instant: from the instant network's picture; noise: "
        "from random noise; blend: a mix of the photo and noise.",
        "choice",
        choices=INITS,
    )
    noise_ratio: float = knob(
        0.5,
        "Noise in blend",
        "With init 'blend': the share of noise mixed into the photo at the start.",
        "float",
        minimum=0.0,
        maximum=1.0,
        step=0.05,
    )
    seed: int = knob(
        0,
        "Seed",
        "Random seed: the same seed and settings give the same image.",
        "int",
        minimum=0,
        maximum=2**31 - 1,
        step=1,
    )
    backbone: str = knob(
        "vgg19",
        "Backbone",
        "The network whose features define content and style.",
        "choice",
        choices=BACKBONES,
    )
    # A content layer deeper than the style's (block5_conv2, Gatys et al.'s) costs most of an
    # evaluation at the working size; measured on fewer pixels, in a pass of its own, it costs
    # about half at 0.25, but thin structures (a bridge's deck and cables) are painted over.
    # The default content layer, block3_conv1, shares the style's pass, where this changes
    # nothing (docs/benchmarks.md, "Cheaper evaluations").
    content_scale: float = knob(
        1.0,
        "Content resolution",
        "With a content layer deeper than the style layers (such as block5_conv2): the photo's "
        "layout is compared on the picture scaled down by this factor (never under "
        f"{CONTENT_MIN_SIDE} px), in a pass of its own, while the style is measured at full "
        "size; at 0.25 an evaluation costs about half, but thin details of the photo fade. "
        "1 = at full size in one pass.",
        "float",
        minimum=0.1,
        maximum=1.0,
        step=0.05,
    )
    pooling: str = knob(
        "max",
        "Pooling",
        "Pooling in the VGG backbones; Gatys et al. found average pooling gives smoother results.",
        "choice",
        choices=POOLINGS,
    )
    content_layers: tuple[str, ...] = knob(
        (),
        "Content layers",
        "Layers whose features must match the photo (empty: the backbone's default).",
        "strings",
    )
    style_layers: tuple[str, ...] = knob(
        (),
        "Style layers",
        "Layers whose Gram matrices must match the painting (empty: the backbone's default).",
        "strings",
    )
    style_layer_weights: tuple[float, ...] = knob(
        (),
        "Style layer weights",
        "One weight per style layer, normalised to sum to 1 (empty: equal weights); the "
        "deeper layers' weights are then scaled by 'Painting's subjects'.",
        "floats",
        minimum=0.0,
        maximum=100.0,
    )
    # The deeper style layers paint a portrait's eyes and faces into the photo, so the default
    # leaves them out of the style term (docs/portraits.md).
    subject_weight: float = knob(
        0.0,
        "Painting's subjects",
        "Weight of the deeper half of the style layers (block4 and block5 of VGG), which see "
        "the painting's objects (eyes, faces, figures) rather than its strokes and colours, "
        "against the others. 0: the painting's strokes, textures and colours only; 1: every "
        "layer alike (Gatys et al.), which can paint a portrait's eyes and faces into your photo.",
        "float",
        minimum=0.0,
        maximum=1.0,
        step=0.05,
    )
    preserve_colors: str = knob(
        "none",
        "Preserve colours",
        "none: take the painting's colours; luminance: stylize brightness only and keep the "
        "photo's colours; histogram: recolour the painting to the photo's palette first "
        "(Gatys et al. 2017).",
        "choice",
        "color",
        choices=COLOR_MODES,
    )
    style_blend: tuple[float, ...] = knob(
        (),
        "Style blend",
        "With several styles: one weight per style, normalised to sum to 1 (empty: equal).",
        "floats",
        "color",
        minimum=0.0,
        maximum=100.0,
    )
    style_scale: float = knob(
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
    precision: str = knob(
        "auto",
        "Precision",
        "auto: bfloat16 where the hardware computes it natively and faster than float32, "
        "else float32.",
        "choice",
        choices=PRECISIONS,
    )
    preview_every: int = knob(
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

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> StyleConfig:
        """Build from settings as written by ``to_dict``; unknown keys are ignored."""
        known = {spec.name for spec in specs_of(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})


@dataclass(frozen=True)
class Adjustments(Knobs):
    """The colour adjustments applied after a run (their callers pass them to
    ``nst.color.adjust``): instant, no optimization, so they are not the engine's settings. The
    studio's sliders under a result and the command line's flags come from these fields."""

    hue: float = knob(
        0.0,
        "Hue shift (degrees)",
        "Rotate the result's hues after the run.",
        "float",
        "adjust",
        minimum=-180.0,
        maximum=180.0,
        step=1.0,
    )
    saturation: float = knob(
        1.0,
        "Saturation",
        "Scale the result's colour saturation after the run (0 = grey).",
        "float",
        "adjust",
        minimum=0.0,
        maximum=3.0,
        step=0.05,
    )
    brightness: float = knob(
        1.0,
        "Brightness",
        "Scale the result's brightness after the run.",
        "float",
        "adjust",
        minimum=0.0,
        maximum=3.0,
        step=0.05,
    )
    strength: float = knob(
        1.0,
        "Stylization strength",
        "Blend the result with the photo after the run: 1 is the full stylization, 0 the photo.",
        "float",
        "adjust",
        minimum=0.0,
        maximum=1.0,
        step=0.05,
    )


@dataclass(frozen=True)
class ServerLimits(Knobs):
    """What a server accepts, whoever asks: never a visitor's setting (the studio keeps the
    defaults; the command line has flags)."""

    max_pixels: int = knob(
        50_000_000,
        "Pixel cap",
        "Images with more pixels than this are refused before decoding.",
        "int",
        "limits",
        minimum=1_000_000,
        maximum=200_000_000,
        step=1_000_000,
    )


# Default layers. VGG: Gatys et al.'s style layers conv1_1..conv5_1 (block4 and block5 weighted
# 0 by ``subject_weight``); content at conv3_1, the deepest style layer in use, so that one
# pass through three blocks serves both terms: at conv5_2 (Gatys et al.'s) the content term
# paid for most of every evaluation, and on trained features conv3_1 keeps the photo's thin
# structures and gives more of the painting's strokes (docs/benchmarks.md, "Cheaper
# evaluations"). VGG16 has the same block structure. ResNet50: the output of each stage, the
# usual choice in the backbone comparisons; content at stage 4 (stride 16).
DEFAULT_LAYERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "vgg19": (
        ("block3_conv1",),
        ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"),
    ),
    "vgg16": (
        ("block3_conv1",),
        ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"),
    ),
    "resnet50": (
        ("conv4_block6_out",),
        ("conv1_relu", "conv2_block3_out", "conv3_block4_out", "conv4_block6_out"),
    ),
}


def default_layers(backbone: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(content layers, style layers) used when the config leaves them empty."""
    return DEFAULT_LAYERS[backbone]


KEEP_HOURS_DEFAULT = 24.0
GRACE_SECONDS_DEFAULT = 60.0


def _env_number(name: str, default: float, low: float, high: float, unit: str) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not low <= value <= high:
        raise ValueError(
            f"{name} must be a number of {unit} from {low:g} to {high:g} (default "
            f"{default:g}), got {raw!r}."
        )
    return value


KEEP_HOURS_BOUNDS = (0.01, 8760.0)


def keep_hours() -> float:
    """How long a person's results are kept on the server: ``NST_KEEP_HOURS`` (default 24)."""
    return _env_number("NST_KEEP_HOURS", KEEP_HOURS_DEFAULT, *KEEP_HOURS_BOUNDS, "hours")


def keep_seconds() -> float:
    """``keep_hours()`` in seconds."""
    return 3600.0 * keep_hours()


# Finished clips kept on the server, all visitors' together, in megabytes (``NST_CLIPS_MB``).
CLIPS_MB_DEFAULT = 512.0
CLIPS_MB_BOUNDS = (1.0, 1_048_576.0)


def clips_bytes() -> int:
    """The size budget of every visitor's finished clips together: ``NST_CLIPS_MB`` (default
    512) in bytes; the oldest clips go first beyond it."""
    megabytes = _env_number("NST_CLIPS_MB", CLIPS_MB_DEFAULT, *CLIPS_MB_BOUNDS, "megabytes")
    return int(megabytes * 2**20)


def grace_seconds() -> float:
    """How long a run goes on with no page following it (a closed tab) before it stops and
    keeps its picture: ``NST_GRACE_SECONDS`` (default 60; long enough for a reload)."""
    return _env_number("NST_GRACE_SECONDS", GRACE_SECONDS_DEFAULT, 1.0, 3600.0, "seconds")


WARM_UP_ENV = "NST_WARM_UP"


def warm_up_enabled() -> bool:
    """Whether a server builds the networks and traces the default run when it starts
    (``NST_WARM_UP``: unset or 1, yes; 0 to skip, e.g. where every start must be quick)."""
    value = os.environ.get(WARM_UP_ENV, "").strip().lower()
    if value in ("", "1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{WARM_UP_ENV} must be 1 (warm up when a server starts) or 0, got {value!r}.")


def weights_mode() -> str:
    """The optimizer's weights, from ``NST_WEIGHTS``: 'imagenet' (unset), 'random' or 'path'."""
    value = os.environ.get("NST_WEIGHTS", "").strip()
    if value in ("", "imagenet"):
        return "imagenet"
    if value == "random":
        return "random"
    return "path"


def field_spec(name: str) -> FieldSpec:
    """The spec of one field of ``StyleConfig``, ``Adjustments`` or ``ServerLimits`` by name."""
    for spec in [*specs_of(StyleConfig), *specs_of(Adjustments), *specs_of(ServerLimits)]:
        if spec.name == name:
            return spec
    raise KeyError(name)


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
