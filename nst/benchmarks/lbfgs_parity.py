"""The ``lbfgs`` section: the device L-BFGS against scipy's L-BFGS-B on every photo x painting
pair of two folders, from the same start, with the loss of each one's image after every
``checkpoints`` iteration count on the float32 evaluation objective, seconds, and a contact
sheet of the final pictures side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nst.benchmarks.common import DEFAULTS
from nst.benchmarks.panel import images_in
from nst.benchmarks.time_to_quality import evaluation_config
from nst.config import StyleConfig

OPTIMIZERS = ("lbfgs", "lbfgs-scipy")


def parity_section(
    content_folder: str | Path,
    style_folder: str | Path,
    size: int,
    output: str | Path,
    base: StyleConfig = DEFAULTS,
    checkpoints: tuple[int, ...] = (50, 100),
    optimizers: tuple[str, ...] = OPTIMIZERS,
) -> dict[str, Any]:
    """Per pair and optimizer: the evaluation loss after each checkpoint and the seconds.

    Both runs take the defaults (``base``) at ``size`` with ``max(checkpoints)`` iterations, so
    they start from the same image; the picture at each checkpoint is the run's preview there.
    The ratio is the first optimizer's loss over the second's (below 1: the first is lower).
    """
    import tensorflow as tf

    from nst import quality
    from nst.benchmarks.scipy_lbfgs import engine_optimizer
    from nst.engine import prepare
    from nst.front import stylize
    from nst.images import load_image
    from nst.records import Result

    steps = max(checkpoints)
    rows, entries = [], []
    for content_path in images_in(content_folder):
        photo = load_image(content_path)
        for style_path in images_in(style_folder):
            painting = load_image(style_path)
            evaluator = prepare(photo, [painting], evaluation_config(size, base))
            row: dict[str, Any] = {"content": content_path.name, "style": style_path.name}
            for optimizer in optimizers:
                setting, function = engine_optimizer(optimizer)
                config = base.replace(
                    size=size, steps=steps, optimizer=setting, preview_every=min(checkpoints)
                )
                pictures, result = {}, None
                events = stylize(photo, [painting], config, optimizer=function, instant_first=False)
                for event in events:
                    if isinstance(event, Result):
                        result = event
                    elif event.step in checkpoints and event.preview is not None:
                        pictures[event.step] = event.preview
                assert result is not None
                pictures[steps] = result.image
                losses = {
                    step: float(evaluator.objective(tf.constant(image[None]))[0])
                    for step, image in sorted(pictures.items())
                }
                row[optimizer] = {
                    "losses": losses,
                    "seconds": result.timings["total"],
                    "steps": result.steps_done,
                    "note": result.note,
                }
                entries.append(
                    quality.PanelEntry(
                        content_path.stem,
                        f"{style_path.stem}, {optimizer}",
                        photo,
                        painting,
                        result.image,
                        [
                            ", ".join(f"{s}: {v:.4f}" for s, v in losses.items()),
                            f"{result.timings['total']:.1f} s, {result.steps_done} iterations",
                        ],
                    )
                )
            first, second = optimizers[0], optimizers[-1]
            row["ratio"] = {
                step: row[first]["losses"][step] / row[second]["losses"][step]
                for step in row[first]["losses"]
                if step in row[second]["losses"]
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".png").write_bytes(quality.contact_sheet(entries))
    summary = {
        "size": size,
        "config": base.replace(size=size, steps=steps).to_dict(),
        "optimizers": list(optimizers),
        "pairs": rows,
        "worst_ratio": {
            str(step): max(row["ratio"][step] for row in rows if step in row["ratio"])
            for step in checkpoints
        },
        "sheet": str(output.with_suffix(".png")),
    }
    output.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    return summary
