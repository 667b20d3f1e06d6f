"""The image kind: one photo, its styles and the settings in, one picture out.

``JobRequest`` is what a page submits; ``run_image`` is its runner (the front door,
``nst.front.stylize``); the codecs carry it to RQ workers as PNG blobs. Importing this module
registers the kind; nothing here imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from nst.config import StyleConfig
from nst.jobs.backend import (
    Blobs,
    JobKind,
    decode_png,
    decode_result,
    encode_png,
    encode_result,
    register_kind,
    style_for_run,
)
from nst.records import CancelToken


@dataclass(frozen=True, eq=False)
class JobRequest:
    """Everything one image run needs: RGB float32 images in [0, 1] and the settings.

    ``styles`` are resized on creation to what the run uses (longest side
    ``size * style_scale``, as the engine does), so a queued job never holds an upload at full
    size. Arrays are not copied otherwise; callers must not modify them while the job waits.
    """

    kind: ClassVar[str] = "image"

    content: np.ndarray
    styles: tuple[np.ndarray, ...]
    config: StyleConfig
    mask: np.ndarray | None = None
    init_image: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.config, StyleConfig):
            raise TypeError("config must be a StyleConfig.")
        if isinstance(self.styles, np.ndarray):
            styles: tuple[np.ndarray, ...] = (self.styles,)
        else:
            styles = tuple(self.styles)
        if not styles:
            raise ValueError("A job needs at least one style image.")
        object.__setattr__(self, "styles", tuple(style_for_run(s, self.config) for s in styles))


def _encode_image_request(request: JobRequest) -> tuple[dict[str, Any], Blobs]:
    blobs: Blobs = {"content": encode_png(request.content)}
    for index, style in enumerate(request.styles):
        blobs[f"style{index}"] = encode_png(style)
    if request.mask is not None:
        blobs["mask"] = encode_png(request.mask)
    if request.init_image is not None:
        blobs["init"] = encode_png(request.init_image)
    return {"config": request.config.to_dict(), "styles": len(request.styles)}, blobs


def _decode_image_request(meta: dict[str, Any], blobs: Blobs) -> JobRequest:
    count = int(meta["styles"])
    return JobRequest(
        content=decode_png(blobs["content"]),
        styles=tuple(decode_png(blobs[f"style{index}"]) for index in range(count)),
        config=StyleConfig.from_dict(dict(meta["config"])),
        mask=decode_png(blobs["mask"]) if "mask" in blobs else None,
        init_image=decode_png(blobs["init"]) if "init" in blobs else None,
    )


def run_image(request: JobRequest, cancel: CancelToken) -> Iterable[Any]:
    """The image runner: the front door (``nst.front.stylize``), which checks the run, makes
    the instant picture and, for a painted run, shows it first and then paints (TensorFlow is
    imported only then)."""
    from nst.front import stylize

    return stylize(
        request.content,
        list(request.styles),
        request.config,
        mask=request.mask,
        init_image=request.init_image,
        cancel=cancel,
    )


register_kind(
    JobKind(
        name="image",
        request_type=JobRequest,
        runner=run_image,
        encode_request=_encode_image_request,
        decode_request=_decode_image_request,
        encode_result=encode_result,
        decode_result=decode_result,
    )
)
