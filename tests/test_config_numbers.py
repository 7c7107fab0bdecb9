"""Both config systems read numbers by YAML 1.2's rules (model.config.parse_number): '3e-4' is a float
whether it reaches a training field or a network field through model.overrides."""

from __future__ import annotations

import math

import pytest

from model.config import ConfigError, config_from_dict, parse_number
from model.training.config import load_train_config


@pytest.mark.parametrize(
    ("tp", "value", "expected"),
    [
        (float, "3e-4", 3e-4), (float, "-1.5E2", -150.0), (float, ".5", 0.5), (float, "+2.", 2.0),
        (float, 7, 7.0), (float, ".inf", math.inf), (float, "-.Inf", -math.inf),
        (int, "12", 12), (int, 4.0, 4), (int, "-3", -3),
    ],
)  # fmt: skip
def test_yaml12_numbers(tp, value, expected):
    got = parse_number(tp, value, "k")
    assert got == expected and type(got) is tp


@pytest.mark.parametrize(
    ("tp", "value", "message"),
    [
        (float, "lots", "a number"), (float, True, "a number"), (float, "1_000", "a number"),
        (float, "inf", "a number"), (int, 2.5, "a whole number"), (int, "1e3", "a number"), (int, None, "a number"),
    ],
)  # fmt: skip
def test_non_numbers_name_the_key(tp, value, message):
    with pytest.raises(ValueError, match=rf"^a\.b: expected {message}, got "):
        parse_number(tp, value, "a.b")


def test_a_loss_weight_override_is_a_float_like_an_optimiser_override():
    config = load_train_config(None, ["model.overrides.loss.kp3d=3e-4", "optim.lr=3e-4"])
    assert config.optim.lr == 3e-4
    assert config.danet_config().loss.kp3d == 3e-4 and isinstance(config.danet_config().loss.kp3d, float)
    with pytest.raises(ConfigError, match=r"^loss\.kp3d: expected a number, got 'lots'"):
        config_from_dict({"preset": "tiny", "loss": {"kp3d": "lots"}})
