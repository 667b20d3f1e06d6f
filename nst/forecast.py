"""What a run will take, said before it starts: the picture's pixels, the print they make, the
time and the memory, on the machine that asks.

The command line prints it before a painted run; the Stylize page shows it under the settings.
The time is ``nst.pace``'s estimate for this machine's CPU and the memory the figure that
``nst.front.check`` admits a run by, so a forecast that fits is a run that the check lets start
here. Nothing here imports TensorFlow: the web tier forecasts a run before a worker takes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nst.config import StyleConfig
from nst.images import working_shape
from nst.pace import estimate_seconds
from nst.prints import DPI, paper_label, print_cm


@dataclass(frozen=True)
class Forecast:
    """A run's figures before it starts (``forecast``)."""

    shape: tuple[int, int]  # (height, width) of the result in pixels
    seconds: float | None  # the painted run's steps here; None for the instant method
    needed: int  # bytes the run peaks at
    available: int  # bytes free here
    paper: str | None = None  # the preset (``nst.prints``) the size was chosen for

    @property
    def fits(self) -> bool:
        return self.needed <= self.available

    def sentence(self, where: str = "on this machine") -> str:
        """One sentence: the picture, and its time and memory ``where``, or, when it does not
        fit, what it needs and what to do."""
        height, width = self.shape
        picture = f"This {width} × {height} px picture"
        if self.paper is not None:
            height_cm, width_cm = print_cm(self.shape)
            picture += (
                f" ({width_cm:.1f} × {height_cm:.1f} cm, {paper_label(self.paper)} at {DPI} dpi)"
            )
        if not self.fits:
            return (
                f"{picture} needs about {gigabytes(self.needed)} of memory but only "
                f"{gigabytes(self.available)} is free {where}; choose a smaller output size or "
                "paper."
            )
        if self.seconds is None:
            took = "takes the instant network a few seconds"
        else:
            took = f"takes {about(self.seconds)} to paint"
        return (
            f"{picture} {took} and about {gigabytes(self.needed)} of the "
            f"{gigabytes(self.available)} of memory free {where}."
        )


def forecast(
    config: StyleConfig, content_shape: Sequence[int], paper: str | None = None
) -> Forecast:
    """The figures of a fresh run of ``config`` on a photo of ``content_shape`` here
    (``paper``: the preset its size came from, said with the print's size)."""
    from nst import front  # its memory figures, looked up when called (tests replace them)

    height, width = working_shape(*content_shape[:2], config.size)
    seconds = None if config.method == "instant" else estimate_seconds(config, content_shape)
    return Forecast(
        shape=(height, width),
        seconds=seconds,
        needed=front.needed_memory(config, content_shape),
        available=front.available_memory(),
        paper=paper,
    )


def about(seconds: float) -> str:
    """A duration as a person plans with it: seconds under a minute, minutes under an hour and
    a half, hours with one decimal beyond."""
    if seconds < 60:
        return f"about {max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"


def gigabytes(count: int) -> str:
    """Bytes in GB: one decimal under 10 GB, whole numbers above."""
    value = count / 1e9
    return f"{value:.1f} GB" if value < 10 else f"{value:.0f} GB"
