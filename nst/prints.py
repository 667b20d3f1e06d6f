"""Paper presets: the output size that fills an A4 or A3 print at 300 dpi.

A preset is a paper and an orientation (``A4-landscape``); a plain ``A4`` takes the photo's
own orientation, which gives the larger print. ``print_size`` turns a preset and a photo's
shape into the engine's ``size`` knob (the result's longest side, the photo's aspect ratio
kept), so that the whole picture fits the sheet at 300 dpi, uncropped. The paper sizes and the
resolution are defined here and nowhere else: ``nst.config`` takes the largest output size from
``LARGEST_PRINT_SIDE``, so nothing from ``nst.config`` may be imported here.
"""

from __future__ import annotations

from collections.abc import Sequence

DPI = 300  # what print shops ask for: finer than the eye resolves at reading distance
MM_PER_INCH = 25.4
CM_PER_INCH = 2.54
# ISO 216 sheets, (long side, short side) in millimetres.
PAPERS_MM = {"A4": (297, 210), "A3": (420, 297)}
ORIENTATIONS = ("landscape", "portrait")


def mm_to_pixels(millimetres: float) -> int:
    """Pixels a length of paper takes at ``DPI``."""
    return round(millimetres / MM_PER_INCH * DPI)


# (long side, short side) of each sheet in pixels at 300 dpi: A4 3508 x 2480, A3 4961 x 3508.
PAPERS_PX = {
    paper: (mm_to_pixels(long), mm_to_pixels(short)) for paper, (long, short) in PAPERS_MM.items()
}
LARGEST_PRINT_SIDE = max(long for long, _ in PAPERS_PX.values())
PAPER_NAMES = tuple(
    name
    for paper in PAPERS_MM
    for name in (paper, *(f"{paper}-{orientation}" for orientation in ORIENTATIONS))
)


def parse_paper(name: str) -> tuple[str, str | None]:
    """("A4", "landscape") from "a4-landscape", ("A4", None) from "A4" (the photo's own
    orientation), in any case; a name that is not a preset is a ``ValueError`` listing them."""
    known = {preset.upper(): preset for preset in PAPER_NAMES}
    preset = known.get(name.strip().upper())
    if preset is None:
        raise ValueError(f"Unknown paper {name!r}: choose one of {', '.join(PAPER_NAMES)}.")
    paper, _, orientation = preset.partition("-")
    return paper, orientation or None


def sheet_shape(name: str, photo_shape: Sequence[int]) -> tuple[int, int]:
    """(height, width) in pixels of the sheet of preset ``name`` for a photo of
    ``photo_shape``: without an orientation, landscape for a landscape photo, else portrait."""
    paper, orientation = parse_paper(name)
    height, width = photo_shape[:2]
    long, short = PAPERS_PX[paper]
    if orientation is None:
        orientation = "landscape" if width > height else "portrait"
    return (short, long) if orientation == "landscape" else (long, short)


def print_size(name: str, photo_shape: Sequence[int]) -> int:
    """The output size (longest side) for preset ``name``: the largest whose picture, with
    the photo's aspect ratio, fits the sheet at 300 dpi without cropping.

    A 4:3 landscape photo gives 3307 (3307 x 2480) on ``A4`` or ``A4-landscape``, 2480
    (2480 x 1860) on ``A4-portrait``."""
    # Imported here: nst.images imports nst.config, which imports this module.
    from nst.images import working_shape

    sheet_height, sheet_width = sheet_shape(name, photo_shape)
    height, width = photo_shape[:2]
    scale = min(sheet_height / height, sheet_width / width)
    size = round(max(height, width) * scale) + 1
    # The picture's sides are rounded (``working_shape``): step down until they fit the sheet.
    while True:
        picture_height, picture_width = working_shape(height, width, size)
        if picture_height <= sheet_height and picture_width <= sheet_width:
            return size
        size -= 1


def print_cm(shape: Sequence[int]) -> tuple[float, float]:
    """(height, width) in centimetres of a picture of ``shape`` printed at 300 dpi."""
    height, width = shape[:2]
    return height / DPI * CM_PER_INCH, width / DPI * CM_PER_INCH


def paper_label(name: str) -> str:
    """How a person reads a preset: "A4 landscape", or "A4" for the photo's own orientation."""
    paper, orientation = parse_paper(name)
    return f"{paper} {orientation}" if orientation else paper
