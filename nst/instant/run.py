"""An instant run as a stream of the engine's records: one ``Result``, no optimization steps."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import numpy as np

from nst.config import StyleConfig, validate
from nst.images import check_shape
from nst.instant.networks import load_networks
from nst.instant.transfer import check_instant_memory, stylize_instant
from nst.records import CancelToken, Result


def check_instant_run(
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    config: StyleConfig,
    mask: np.ndarray | None = None,
) -> None:
    """Raise ``ValueError`` (one plain sentence) if an instant run cannot start: the settings
    against the inputs, the images' shapes, the memory it needs."""
    validate(config, len(styles), mask is not None)
    check_shape(content, what="content image")
    for style in styles:
        check_shape(style, what="style image")
    check_instant_memory(config, content.shape)


def instant_result(
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    config: StyleConfig,
    *,
    mask: np.ndarray | None = None,
) -> Result:
    """The instant network's picture as a finished run (``steps_done`` 0, no loss history).

    ``timings`` holds ``build`` (loading the networks, once per process), ``stylize`` and
    ``total``; the losses are NaN, since the network does not compute the objective.
    """
    started = time.perf_counter()
    networks = load_networks()
    loaded = time.perf_counter()
    image = stylize_instant(content, styles, config, mask=mask, networks=networks)
    done = time.perf_counter()
    return Result(
        image=image,
        history=[],
        timings={"build": loaded - started, "stylize": done - loaded, "total": done - started},
        config=config,
    )


def run_instant(
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    config: StyleConfig,
    *,
    mask: np.ndarray | None = None,
    cancel: CancelToken | None = None,
) -> Iterator[Result]:
    """The job runner's stream for ``method == "instant"``: the one result.

    ``cancel`` is not consulted: one pass of the network cannot be interrupted and is short
    next to any optimizer run, and a stopped run keeps its picture, so it is always made.
    """
    del cancel
    check_instant_run(content, styles, config, mask)
    yield instant_result(content, styles, config, mask=mask)
