"""The command line, run as a user runs it: a subprocess with NST_WEIGHTS=random."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nst.cli import build_parser
from nst.config import StyleConfig
from nst.images import load_image, read_settings
from nst.knobs import specs_of

ROOT = Path(__file__).parents[1]


def _run(
    *args: str, weights: str | None = "random", log_level: str | None = "2"
) -> subprocess.CompletedProcess:
    """``python -m nst ARGS``; ``log_level`` None leaves TF_CPP_MIN_LOG_LEVEL unset, as users do."""
    env = {**os.environ}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    if log_level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = log_level
    env.pop("NST_WEIGHTS", None)
    if weights is not None:
        env["NST_WEIGHTS"] = weights
    return subprocess.run(
        [sys.executable, "-m", "nst", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_every_config_field_is_a_flag():
    parser = build_parser()
    flags = {option for action in parser._actions for option in action.option_strings}
    for spec in specs_of(StyleConfig):
        assert "--" + spec.name.replace("_", "-") in flags


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_stylize_writes_png_with_settings_and_json(tmp_path, content_path, style_path, optimizer):
    out = tmp_path / "out.png"
    done = _run(
        str(content_path),
        str(style_path),
        "-o",
        str(out),
        "--size",
        "128",
        "--steps",
        "20",
        "--optimizer",
        optimizer,
        "--json",
        "--saturation",
        "1.2",
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["output"] == str(out) and summary["steps"] == 20
    assert summary["final_loss"] < summary["initial_loss"] and summary["seconds"] > 0
    # Said before the run: its pixels, time and memory here.
    assert "This 128 × 96 px picture takes about " in done.stderr
    assert " of memory free on this machine." in done.stderr
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (128, 96)  # the photo is 4:3
    settings = read_settings(out.read_bytes())
    assert settings["optimizer"] == optimizer and settings["saturation"] == 1.2
    assert settings["styles"] == [style_path.name]
    content = load_image(content_path)
    result = load_image(out)
    from nst.images import resize_to

    assert abs(result - resize_to(content, 96, 128)).mean() > 0.01


def test_jpeg_output_and_mask(tmp_path, content_path, style_path):
    # Left half white (stylized), right half black (the photo kept), at the photo's 4:3.
    mask = tmp_path / "mask.png"
    halves = np.zeros((30, 40), np.uint8)
    halves[:, :20] = 255
    Image.fromarray(halves).save(mask)
    out = tmp_path / "out.jpg"
    done = _run(
        str(content_path),
        str(style_path),
        "-o",
        str(out),
        "--size",
        "64",
        "--steps",
        "8",
        "--mask",
        str(mask),
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    assert Image.open(out).format == "JPEG" and "wrote" in done.stdout
    from nst.images import resize_to

    result = load_image(out)
    photo = resize_to(load_image(content_path), *result.shape[:2])
    change = np.abs(result - photo).mean(axis=(0, 2))  # per column
    assert result.shape[:2] == (48, 64)
    assert change[36:].max() < 0.03  # black: the photo, up to JPEG's rounding
    assert change[:28].mean() > 3 * change[36:].max()  # white: stylized


def test_a_quiet_painted_run_prints_nothing_on_standard_error(tmp_path, content_path, style_path):
    # TensorFlow prints "I0000 … oneDNN custom operations are on …" while it loads, whatever
    # TF_CPP_MIN_LOG_LEVEL says; nst keeps it off (nst.tf_startup).
    out = tmp_path / "out.png"
    args = [str(content_path), str(style_path), "-o", str(out), "--size", "64", "--steps", "2"]
    done = _run(*args, "--quiet", log_level=None)
    assert done.returncode == 0 and out.exists()
    assert "oneDNN custom operations" not in done.stderr
    assert done.stderr == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.jpg", "STYLE", "-o", "x.png"], "There is no file at missing.jpg"),
        (["README.md", "STYLE", "-o", "x.png"], "not an image we can read"),
        (["CONTENT", "STYLE", "-o", "x.png", "--size", "9"], "size: must be between 64 and 4961"),
        (["CONTENT", "STYLE", "-o", "x.png", "--steps", "many"], "steps: must be a number"),
        (["CONTENT", "STYLE", "-o", "x.gif"], "must end in .png or .jpg"),
        (["CONTENT", "STYLE", "-o", "x.png", "--optimizer", "sgd"], "invalid choice: 'sgd'"),
        (["CONTENT", "STYLE"], "the following arguments are required: -o/--output"),
        (
            ["CONTENT", "STYLE", "-o", "x.png", "--print", "A5"],
            "argument --print: Unknown paper 'A5': choose one of A4, A4-landscape,",
        ),
        (
            ["CONTENT", "STYLE", "-o", "x.png", "--print", "A4", "--size", "512"],
            "--print sets the output size from the paper and the photo: give --print or --size, "
            "not both.",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, content_path, style_path, args, message):
    (ROOT / "README.md").exists() or pytest.skip("README.md missing")
    args = [
        str(content_path) if a == "CONTENT" else str(style_path) if a == "STYLE" else a
        for a in args
    ]
    args = [str(tmp_path / a) if a.startswith("x.") else a for a in args]
    done = _run(*args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in done.stderr


def test_imagenet_offline_fails_with_actionable_message(
    tmp_path, content_path, style_path, monkeypatch
):
    # An empty weights cache, and a proxy nobody listens on: offline on every machine.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    done = _run(
        str(content_path),
        str(style_path),
        "-o",
        str(tmp_path / "o.png"),
        "--size",
        "64",
        "--steps",
        "1",
        "--quiet",
        weights=None,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5" in done.stderr
    assert "NST_WEIGHTS=" in done.stderr


def test_batch_runs_every_pair_and_reports_bad_files(tmp_path, content_path, style_path):
    styles = tmp_path / "styles"
    styles.mkdir()
    (styles / "good.jpg").write_bytes(style_path.read_bytes())
    (styles / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "out"
    done = _run(
        "batch",
        "--content",
        str(content_path),
        "--style",
        str(styles),
        "--out",
        str(out),
        "--size",
        "64",
        "--steps",
        "4",
        "--json",
    )
    assert done.returncode == 1
    records = json.loads((out / "results.json").read_text())
    assert len(records) == 2
    good = next(r for r in records if "output" in r)
    bad = next(r for r in records if "output" not in r)
    assert Path(good["output"]).name == f"{content_path.stem}__good.png"
    assert Path(good["output"]).is_file()
    assert good["settings"]["size"] == 64 and good["final_loss"] < good["initial_loss"]
    assert "broken.jpg" in bad["error"] and "not an image" in bad["error"]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "results": str(out / "results.json"),
        "pairs": 2,
        "failed": 1,
    }
    assert "failed:" in done.stderr
    assert f"{content_path.name} × good.jpg: This 64 × 48 px picture takes about " in done.stderr


@pytest.mark.parametrize(
    ("paper", "size"), [("A4", 3307), ("a4-portrait", 2480), ("A3-landscape", 4678)]
)
def test_print_sizes_the_result_for_the_photo(paper, size):
    from nst.cli.common import settings_from
    from nst.cli.image import build_batch_parser, for_paper, parse_arguments

    args = parse_arguments(
        build_parser(), ["photo.jpg", "style.jpg", "-o", "o.png", "--print", paper]
    )
    sized = for_paper(settings_from(args), args.paper, (768, 1024, 3))  # a 4:3 photo
    assert sized.config.size == size and sized.to_dict()["size"] == size  # what the PNG embeds
    batch = parse_arguments(
        build_batch_parser(), ["--content", "c", "--style", "s", "--out", "o", "--print", paper]
    )
    assert for_paper(settings_from(batch), batch.paper, (768, 1024, 3)).config.size == size
    plain = parse_arguments(build_parser(), ["photo.jpg", "style.jpg", "-o", "o.png"])
    assert for_paper(settings_from(plain), plain.paper, (768, 1024, 3)).config.size == 512


def test_the_line_before_a_painted_print(monkeypatch):
    import nst.front
    from nst.cli.common import settings_from
    from nst.cli.image import estimate_line, for_paper, parse_arguments

    args = parse_arguments(
        build_parser(), ["photo.jpg", "style.jpg", "-o", "o.png", "--print", "A4"]
    )
    settings = for_paper(settings_from(args), args.paper, (768, 1024, 3))
    monkeypatch.setattr(nst.front, "available_memory", lambda: 64 * 10**9)
    line = estimate_line(settings, (768, 1024, 3), args.paper)
    assert line is not None and "\n" not in line
    assert line.startswith(
        "This 3307 × 2480 px picture (28.0 × 21.0 cm, A4 at 300 dpi) takes about "
    )
    assert line.endswith(" GB of the 64 GB of memory free on this machine.")
    # When it does not fit, nothing: the memory check refuses the run in its own sentence.
    monkeypatch.setattr(nst.front, "available_memory", lambda: 10**9)
    assert estimate_line(settings, (768, 1024, 3), args.paper) is None


def test_instant_method_writes_the_networks_picture_without_tensorflow(
    tmp_path, content_path, style_path
):
    out = tmp_path / "instant.png"
    probe = (
        "import runpy, sys; sys.argv = sys.argv[1:]; "
        "code = 0\n"
        "try:\n    runpy.run_module('nst', run_name='__main__')\n"
        "except SystemExit as done:\n    code = done.code\n"
        "print(json.dumps({'tensorflow': 'tensorflow' in sys.modules}))\n"
        "sys.exit(code)"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json\n" + probe,
            "nst",
            str(content_path),
            str(style_path),
            "-o",
            str(out),
            "--size",
            "200",
            "--method",
            "instant",
            "--json",
        ],
        cwd=ROOT,
        env={**os.environ, "NST_WEIGHTS": "random"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    summary, modules = json.loads(lines[-2]), json.loads(lines[-1])
    assert summary["method"] == "instant" and summary["steps"] == 0 and summary["seconds"] > 0
    assert summary["initial_loss"] is None and summary["final_loss"] is None
    assert not modules["tensorflow"]  # the instant network needs no TensorFlow
    assert read_settings(out.read_bytes())["method"] == "instant"
    result = load_image(out)
    assert result.shape == (150, 200, 3)
    photo = np.asarray(Image.open(content_path).resize((200, 150)), np.float32) / 255.0
    assert np.abs(result - photo).mean() > 0.05  # painted, not the photo


def test_batch_takes_the_method(tmp_path, content_path, style_path):
    done = _run(
        "batch",
        "--content",
        str(content_path),
        "--style",
        str(style_path),
        "--out",
        str(tmp_path / "results"),
        "--method",
        "instant",
        "--size",
        "96",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    (record,) = json.loads((tmp_path / "results" / "results.json").read_text())
    assert record["method"] == "instant" and record["settings"]["method"] == "instant"
    assert Path(record["output"]).is_file()
