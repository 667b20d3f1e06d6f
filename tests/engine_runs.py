"""Painted runs through the front door as the engine's tests want them: no instant preview
unless a test asks for one (``instant_first=True``)."""

from nst import front


def stylize(content, styles, config, **options):
    """``nst.front.stylize``, without the instant preview unless asked."""
    options.setdefault("instant_first", False)
    return front.stylize(content, styles, config, **options)


def run_stylize(content, styles, config, **options):
    """A run to its end: its ``Result``."""
    return front.result_of(stylize(content, styles, config, **options))
