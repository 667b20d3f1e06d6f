"""The forecast said before a run: its pixels, print size, time and memory here."""

import re

import pytest

import nst.front
from nst.config import StyleConfig
from nst.forecast import Forecast, about, forecast, gigabytes


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.2, "about 1 s"), (40.4, "about 40 s"), (545, "about 9 min"), (9000, "about 2.5 h")],
)
def test_durations_read_as_a_person_plans(seconds, text):
    assert about(seconds) == text


def test_gigabytes():
    assert gigabytes(2_140_000_000) == "2.1 GB" and gigabytes(14_400_000_000) == "14 GB"


def test_a_sentence_for_each_case():
    painted = Forecast((2480, 3307), 545.0, 7_300_000_000, 22_000_000_000, "A4-landscape")
    assert painted.fits and painted.sentence() == (
        "This 3307 × 2480 px picture (28.0 × 21.0 cm, A4 landscape at 300 dpi) takes about "
        "9 min to paint and about 7.3 GB of the 22 GB of memory free on this machine."
    )
    instant = Forecast((384, 512), None, 1_900_000_000, 22_000_000_000)
    assert instant.sentence("on this server") == (
        "This 512 × 384 px picture takes the instant network a few seconds and about 1.9 GB of "
        "the 22 GB of memory free on this server."
    )
    refused = Forecast((3508, 4678), 960.0, 30_000_000_000, 2_000_000_000, "A3")
    assert not refused.fits and refused.sentence() == (
        "This 4678 × 3508 px picture (39.6 × 29.7 cm, A3 at 300 dpi) needs about 30 GB of "
        "memory but only 2.0 GB is free on this machine; choose a smaller output size or paper."
    )


def test_the_figures_are_the_pace_and_the_memory_check_of_this_machine(monkeypatch):
    from nst.pace import estimate_seconds

    config, photo = StyleConfig(size=3307), (768, 1024, 3)
    monkeypatch.setattr(nst.front, "available_memory", lambda: 10**12)
    figures = forecast(config, photo, "A4")
    assert figures.shape == (2480, 3307) and figures.available == 10**12
    assert figures.seconds == estimate_seconds(config, photo)
    assert figures.needed == nst.front.needed_memory(config, photo)
    assert re.fullmatch(
        r"This 3307 × 2480 px picture \(28\.0 × 21\.0 cm, A4 at 300 dpi\) takes about "
        r"\d+(\.\d)? (s|min|h) to paint and about [\d.]+ GB of the 1000 GB of memory free "
        r"on this machine\.",
        figures.sentence(),
    )
    instant = forecast(config.replace(method="instant"), photo)
    assert instant.seconds is None and instant.paper is None
    assert instant.needed == nst.front.needed_memory(config.replace(method="instant"), photo)
    monkeypatch.setattr(nst.front, "available_memory", lambda: 10**9)
    assert not forecast(config, photo).fits
