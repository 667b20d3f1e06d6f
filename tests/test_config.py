"""StyleConfig: defaults, bounds, coercion and round trips."""

import dataclasses

import pytest

from nst.config import StyleConfig, field_spec
from nst.knobs import specs_of


def test_every_field_has_a_spec_with_help_and_valid_default():
    specs = specs_of(StyleConfig)
    assert [spec.name for spec in specs] == [f.name for f in dataclasses.fields(StyleConfig)]
    for spec in specs:
        assert spec.label and spec.help.endswith((".", ")"))
        if spec.kind in ("float", "int"):
            assert spec.minimum <= spec.default <= spec.maximum, spec.name
        if spec.kind == "choice":
            assert spec.default in spec.choices


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"size": 10}, "size: must be between 64 and 4961; got 10."),
        ({"steps": 0}, "steps: must be between 1 and 5000"),
        ({"style_weight": float("nan")}, "style_weight: must be between 0.1 and 1000"),
        ({"optimizer": "sgd"}, "optimizer: must be one of adam, lbfgs; got 'sgd'."),
        ({"seed": 1.5}, "seed: must be a whole number"),
        ({"tv_weight": "lots"}, "tv_weight: must be a number between 0 and 100"),
        ({"steps": True}, "steps: must be a number"),
        ({"style_layer_weights": (1.0, -1.0)}, "style_layer_weights: each value must be"),
        ({"style_blend": (0.0, 0.0)}, "style_blend: at least one weight must be greater than 0."),
        ({"backbone": "resnet50", "pooling": "avg"}, "pooling: 'avg' is only available"),
        (
            {"style_layers": ("block1_conv1", "block2_conv1"), "style_layer_weights": (1.0,)},
            "style_layer_weights: expected 2 values",
        ),
    ],
)
def test_out_of_range_values_name_the_field_and_range(changes, message):
    with pytest.raises(ValueError) as error:
        StyleConfig(**changes)
    assert message in str(error.value)


def test_strings_from_the_command_line_are_coerced():
    config = StyleConfig(
        size="256",
        steps="20",
        style_weight="1e2",
        style_layers="block1_conv1, block2_conv1",
        style_layer_weights="1,3",
    )
    assert (config.size, config.steps, config.style_weight) == (256, 20, 100.0)
    assert config.style_layers == ("block1_conv1", "block2_conv1")
    assert config.style_layer_weights == (1.0, 3.0)


def test_dict_round_trip_and_replace():
    config = StyleConfig(size=128, style_blend=(0.7, 0.3), optimizer="lbfgs")
    assert StyleConfig.from_dict({**config.to_dict(), "unknown": 1}) == config
    changed = config.replace(steps=7)
    assert changed.steps == 7 and config.steps == field_spec("steps").default
    with pytest.raises(ValueError, match="steps"):
        config.replace(steps=-1)


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        StyleConfig().size = 3  # type: ignore[misc]


def test_normalised_weights_sum_to_one_and_say_what_is_wrong():
    from nst.config import normalised

    assert normalised((), 4, "style_blend") == [0.25] * 4
    assert normalised((1.0, 3.0), 2, "style_blend") == [0.25, 0.75]
    with pytest.raises(ValueError, match=r"^style_blend: expected 3 values, got 2\.$"):
        normalised((1.0, 1.0), 3, "style_blend")
