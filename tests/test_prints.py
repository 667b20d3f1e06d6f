"""Paper presets: the output size that fills A4 or A3 at 300 dpi, uncropped."""

import pytest

from nst.config import field_spec
from nst.images import working_shape
from nst.prints import (
    LARGEST_PRINT_SIDE,
    PAPER_NAMES,
    PAPERS_PX,
    paper_label,
    parse_paper,
    print_cm,
    print_size,
    sheet_shape,
)

LANDSCAPE, PORTRAIT, SQUARE = (768, 1024), (1024, 768), (500, 500)  # (height, width)


def test_the_sheets_at_300_dpi():
    assert PAPERS_PX == {"A4": (3508, 2480), "A3": (4961, 3508)}
    assert LARGEST_PRINT_SIDE == 4961 == field_spec("size").maximum  # every preset can be asked


@pytest.mark.parametrize(
    ("paper", "photo", "picture"),
    [
        # A 4:3 photo across the sheet it matches: the short sides meet.
        ("A4-landscape", LANDSCAPE, (2480, 3307)),
        ("A4-portrait", PORTRAIT, (3307, 2480)),
        ("A3-landscape", LANDSCAPE, (3508, 4678)),
        ("A3-portrait", PORTRAIT, (4678, 3508)),
        # Across the other orientation: the long side of the photo meets the sheet's short side.
        ("A4-portrait", LANDSCAPE, (1860, 2480)),
        ("A4-landscape", PORTRAIT, (2480, 1860)),
        ("A3-portrait", LANDSCAPE, (2631, 3508)),
        ("A3-landscape", PORTRAIT, (3508, 2631)),
        # Without an orientation, the photo's own, which gives the larger print.
        ("A4", LANDSCAPE, (2480, 3307)),
        ("A4", PORTRAIT, (3307, 2480)),
        ("A3", LANDSCAPE, (3508, 4678)),
        # A square photo fills the sheet's short side either way.
        ("A4", SQUARE, (2480, 2480)),
        ("A3-landscape", SQUARE, (3508, 3508)),
        # A photo wider than the sheet (16:9) meets its long side: the whole A4 or A3 width.
        ("A4-landscape", (1080, 1920), (1973, 3508)),
        ("A3", (1080, 1920), (2791, 4961)),
    ],
)
def test_a_preset_gives_the_largest_picture_that_fits_the_sheet(paper, photo, picture):
    size = print_size(paper, photo)
    assert working_shape(*photo, size) == picture  # the engine's shape for that size
    # One pixel more would overflow the sheet on one side.
    sheet_height, sheet_width = sheet_shape(paper, photo)
    bigger = working_shape(*photo, size + 1)
    assert bigger[0] > sheet_height or bigger[1] > sheet_width


def test_the_sheet_turns_with_the_orientation_or_the_photo():
    assert sheet_shape("A4-landscape", PORTRAIT) == (2480, 3508)
    assert sheet_shape("A4-portrait", LANDSCAPE) == (3508, 2480)
    assert sheet_shape("A3", LANDSCAPE) == (3508, 4961)
    assert sheet_shape("A3", PORTRAIT) == sheet_shape("A3", SQUARE) == (4961, 3508)


def test_names_are_case_insensitive_and_a_bad_one_is_one_sentence():
    assert parse_paper(" a4-LANDSCAPE ") == ("A4", "landscape")
    assert parse_paper("a3") == ("A3", None)
    assert print_size("a4-landscape", LANDSCAPE) == print_size("A4-landscape", LANDSCAPE) == 3307
    assert paper_label("a3-portrait") == "A3 portrait" and paper_label("A4") == "A4"
    for bad in ("A5", "A4-sideways", "A4-", "letter", ""):
        with pytest.raises(ValueError) as caught:
            parse_paper(bad)
        message = str(caught.value)
        assert message == (
            f"Unknown paper {bad!r}: choose one of A4, A4-landscape, A4-portrait, A3, "
            "A3-landscape, A3-portrait."
        )
    assert set(PAPER_NAMES) == {
        "A4",
        "A4-landscape",
        "A4-portrait",
        "A3",
        "A3-landscape",
        "A3-portrait",
    }


def test_print_size_in_centimetres():
    height, width = print_cm((2480, 3508))  # a whole A4 sheet, landscape
    assert (round(height, 1), round(width, 1)) == (21.0, 29.7)
    assert [round(side, 1) for side in print_cm((3508, 4961))] == [29.7, 42.0]
