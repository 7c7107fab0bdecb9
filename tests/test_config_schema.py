"""The one config rule (model/config_schema.py) as both configs see it: each kind of error names the file or
override, the dotted key, the bad value and what is allowed; the network's config and the training config
coerce the same input the same way; YAML text is read by YAML 1.2's core schema.

The expected messages, choice lists and YAML 1.2 readings are written out by hand (from the dataclasses'
annotations and the YAML 1.2.2 spec, section 10.3.2), not computed by the code under test."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import pytest

from model.config import ConfigError, ablation, config_from_dict, load_config
from model.config_schema import build, parse_yaml_value
from model.training.config import SourceConfig, TrainConfig, load_train_config

REPO = Path(__file__).resolve().parents[1]


def _problem(fn, *args):
    """The ConfigError `fn(*args)` raises, as (source, key, problem)."""
    with pytest.raises(ConfigError) as info:
        fn(*args)
    return info.value.source, info.value.key, info.value.problem


def test_config_error_is_a_value_error_with_source_key_and_problem_in_its_message():
    err = ConfigError("model.overrides.roi.size", "expected a whole number, got 2.5", "configs/train/x.yaml")
    assert isinstance(err, ValueError)
    assert str(err) == "configs/train/x.yaml: model.overrides.roi.size: expected a whole number, got 2.5"
    assert str(ConfigError("a.b", "bad")) == "a.b: bad"
    again = pickle.loads(pickle.dumps(err))
    assert (again.source, again.key, again.problem, str(again)) == (
        err.source,
        err.key,
        err.problem,
        str(err),
    )


def test_the_train_stage_prints_the_error_in_one_line_and_exits_2(tmp_path, capsys):
    from stages import train

    out = tmp_path / "run"
    code = train.main(["--config", str(REPO / "configs/train/demo.yaml"), "--out", str(out), "run.amp=yes"])
    assert code == 2 and not out.exists()
    assert capsys.readouterr().err.strip() == (
        "train: bad configuration: override 'run.amp=yes': run.amp: expected true or false, got 'yes'"
    )


# ------------------------------------------------------------------------------------- each kind of error
def test_unknown_key_at_depth_names_its_full_path_and_the_known_keys():
    src, key, problem = _problem(config_from_dict, {"preset": "tiny", "iuv": {"hrnet": {"widht": 8}}})
    assert (src, key) == (None, "iuv.hrnet.widht")
    assert problem == (
        "unknown key; HRNetConfig has: width, stem_width, layer1_planes, layer1_blocks, stage_modules, "
        "stage_blocks, pretrained"
    )
    src, key, problem = _problem(load_train_config, None, ["model.overrides.iuv.hrnet.widht=8"])
    assert (src, key) == ("override 'model.overrides.iuv.hrnet.widht=8'", "model.overrides.iuv.hrnet.widht")
    assert problem.startswith("unknown key; HRNetConfig has: width, ")


def test_several_unknown_keys_are_all_named():
    _, key, problem = _problem(config_from_dict, {"roi": {"sise": 4, "learnabel": True}})
    assert key == "roi.sise" and problem.startswith(
        "unknown key (also unknown: learnabel); RoIConfig has: size,"
    )


def test_a_bad_choice_lists_the_allowed_values():
    _, key, problem = _problem(load_train_config, None, ["model.overrides.refine.variant=dnet"])
    assert key == "model.overrides.refine.variant"
    assert problem == "expected one of ['none', 'direct', 'position_implicit', 'position_aided'], got 'dnet'"
    _, key, problem = _problem(config_from_dict, {"iuv": {"resnet": {"depth": 19}}})
    assert (key, problem) == ("iuv.resnet.depth", "expected one of [18, 34, 50, 101], got 19")


def test_int_choices_read_numbers_but_a_bool_is_not_one():
    assert config_from_dict({"iuv": {"resnet": {"depth": "34"}}}).iuv.resnet.depth == 34
    assert (
        config_from_dict(
            {"streams": {"global_resnet": {"stem_stride": 2.0}}}
        ).streams.global_resnet.stem_stride
        == 2
    )
    _, key, problem = _problem(config_from_dict, {"streams": {"global_resnet": {"stem_stride": True}}})
    assert (key, problem) == ("streams.global_resnet.stem_stride", "expected one of [1, 2, 4], got True")


@pytest.mark.parametrize("value", ["yes", "on", "true", 1, 0])
def test_a_bool_is_true_or_false_only(value):
    _, key, problem = _problem(config_from_dict, {"roi": {"learnable": value}})
    assert (key, problem) == ("roi.learnable", f"expected true or false, got {value!r}")


def test_yes_in_an_override_or_a_file_is_not_a_bool(tmp_path):
    """YAML 1.1 (PyYAML's default) reads yes/on as true; YAML 1.2 and this project do not."""
    src, key, problem = _problem(load_train_config, None, ["run.amp=yes"])
    assert (src, key, problem) == ("override 'run.amp=yes'", "run.amp", "expected true or false, got 'yes'")
    path = tmp_path / "t.yaml"
    path.write_text("run:\n  amp: on\n")
    assert _problem(load_train_config, path) == (str(path), "run.amp", "expected true or false, got 'on'")


def test_an_int_given_a_fraction_names_the_file_and_the_key(tmp_path):
    path = tmp_path / "demo.yaml"
    path.write_text("model:\n  preset: tiny\n  overrides:\n    roi:\n      size: 2.5\n")
    with pytest.raises(ConfigError) as info:
        load_train_config(path)
    assert str(info.value) == f"{path}: model.overrides.roi.size: expected a whole number, got 2.5"
    # the same key set by an override is blamed on the override, not on the file
    src, key, _ = _problem(load_train_config, path, ["model.overrides.roi.size=2.5"])
    assert (src, key) == ("override 'model.overrides.roi.size=2.5'", "model.overrides.roi.size")


def test_a_list_is_expected_where_the_schema_has_one():
    _, key, problem = _problem(load_train_config, None, ["optim.lr_milestones=5"])
    assert (key, problem) == ("optim.lr_milestones", "expected a list, got 5")
    _, key, problem = _problem(config_from_dict, {"refine": {"hidden": 256}})
    assert (key, problem) == ("refine.hidden", "expected a list, got 256")
    _, key, problem = _problem(config_from_dict, {"iuv": {"hrnet": {"stage_modules": [1, 1]}}})
    assert (key, problem) == ("iuv.hrnet.stage_modules", "expected a list of 3 values, got 2: [1, 1]")
    _, key, problem = _problem(config_from_dict, {"refine": {"hidden": [32, "wide"]}})
    assert (key, problem) == ("refine.hidden[1]", "expected a number, got 'wide'")


def test_lists_become_tuples_where_the_schema_says_tuple():
    cfg = config_from_dict(
        {"refine": {"hidden": [64, 64, 64]}, "streams": {"local_resnet": {"layers": None}}}
    )
    assert cfg.refine.hidden == (64, 64, 64) and type(cfg.refine.hidden) is tuple
    assert cfg.streams.local_resnet.layers is None


def test_a_string_field_takes_strings_only():
    _, key, problem = _problem(load_train_config, None, ["run.device=5"])
    assert (key, problem) == ("run.device", "expected a string, got 5 (quote it in YAML)")
    assert load_train_config(None, ["run.device='5'"]).run.device == "5"


def test_a_mapping_is_expected_for_a_section():
    _, key, problem = _problem(config_from_dict, {"roi": 16})
    assert (key, problem) == ("roi", "expected a mapping (RoIConfig), got 16")


def test_shard_lists_take_bare_paths_and_name_the_item(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("data:\n  train:\n    - data/a\n    - {path: data/b, weight: 3}\n")
    assert load_train_config(path).data.train == [SourceConfig("data/a", 1.0), SourceConfig("data/b", 3.0)]
    path.write_text("data:\n  train:\n    - data/a\n    - {path: data/b, wieght: 3}\n")
    src, key, problem = _problem(load_train_config, path)
    assert (src, key) == (str(path), "data.train[1].wieght")
    assert problem == "unknown key; SourceConfig has: path, weight"
    src, key, problem = _problem(load_train_config, None, ["data.train=[{weight: 2}]"])
    assert (key, problem) == ("data.train[0].path", "missing (required: a string)")


def test_range_checks_are_config_errors_naming_the_override():
    src, key, problem = _problem(load_train_config, None, ["run.steps=0"])
    assert (src, key, problem) == (
        "override 'run.steps=0'",
        "run.steps",
        "must be a positive whole number, got 0",
    )


def test_a_network_config_file_is_named(tmp_path):
    path = tmp_path / "danet.yaml"
    path.write_text("preset: tiny\nloss:\n  kp3d: lots\n")
    assert _problem(load_config, path) == (str(path), "loss.kp3d", "expected a number, got 'lots'")
    path.write_text("- a list\n")
    assert _problem(load_config, path) == (str(path), "", "expected a mapping at the top level, got list")
    path.write_text("roi: {size: 4\n")
    src, key, problem = _problem(load_config, path)
    assert src == str(path) and problem.startswith("not valid YAML")


def test_a_malformed_override_is_named(tmp_path):
    src, key, problem = _problem(load_train_config, None, ["optim.lr"])
    assert (src, problem) == ("override 'optim.lr'", "not of the form key=value")
    src, key, problem = _problem(load_train_config, None, ["optim.lr.x=1"])
    assert (src, key, problem) == ("override 'optim.lr.x=1'", "optim.lr", "expected a number, got {'x': 1}")
    path = tmp_path / "t.yaml"
    path.write_text("optim:\n  lr: 3.0e-4\n")
    src, key, problem = _problem(load_train_config, path, ["optim.lr.x=1"])
    assert (src, problem) == ("override 'optim.lr.x=1'", "optim.lr is 0.0003, not a section")


# ----------------------------------------------------------------------- presets and ablations, checked once
ABLATION_NAMES = [
    "global_only", "dnet", "refine_direct", "refine_position_implicit", "refine_position_aided",
    "fixed_edges", "no_drop", "dropout", "dropblock", "equal_roi_scale", "learnable_roi", "box_roi_scale",
    "all_parts", "matrix_rotations",
]  # fmt: skip


def test_an_unknown_ablation_lists_every_ablation_in_both_paths():
    expected = f"unknown ablation 'nonsense'; expected one of {ABLATION_NAMES}"
    assert _problem(ablation, "nonsense") == (None, "ablation", expected)
    assert _problem(load_train_config, None, ["model.ablation=nonsense"]) == (
        "override 'model.ablation=nonsense'",
        "model.ablation",
        expected,
    )


def test_an_unknown_preset_lists_the_presets_in_both_paths():
    expected = "unknown preset 'huge'; expected one of ['paper', 'tiny']"
    assert _problem(config_from_dict, {"preset": "huge"})[1:] == ("preset", expected)
    assert _problem(load_train_config, None, ["model.preset=huge"])[1:] == ("model.preset", expected)


# ------------------------------------------------------------------------------ one coercion, two configs
def _network(section: str | None, name: str, value):
    """The value a network field gets from `value`, via config_from_dict, or the ConfigError's problem."""
    try:
        if section is None:
            return getattr(config_from_dict({"preset": "tiny", name: value}), name)
        return getattr(getattr(config_from_dict({"preset": "tiny", section: {name: value}}), section), name)
    except ConfigError as err:
        return err.problem


def _training(section: str, name: str, value):
    """The value a training field gets from `value` in its plain data, or the ConfigError's problem."""
    try:
        return getattr(getattr(build(TrainConfig, {section: {name: value}}), section), name)
    except ConfigError as err:
        return err.problem


SAME_INPUT = [
    # (int field of each, value, expected)
    ("int", "3", 3), ("int", 3.0, 3), ("int", 2.5, "expected a whole number, got 2.5"),
    ("int", True, "expected a number, got True"), ("int", "1e3", "expected a number, got '1e3'"),
    ("float", "3e-4", 3e-4), ("float", 2, 2.0), ("float", "lots", "expected a number, got 'lots'"),
    ("bool", True, True), ("bool", "yes", "expected true or false, got 'yes'"),
    ("bool", 1, "expected true or false, got 1"),
    ("str", "a/b.npz", "a/b.npz"), ("str", None, None), ("str", 5, "expected a string, got 5 (quote it in YAML)"),
    ("ints", ["3", 2.0], [3, 2]), ("ints", 3, "expected a list, got 3"),
    ("ints", [1, 2.5], "expected a whole number, got 2.5"),
]  # fmt: skip
NETWORK_FIELD = {
    "int": ("roi", "size"), "float": ("loss", "kp3d"), "bool": ("roi", "learnable"), "str": (None, "mean_params"),
    "ints": ("refine", "hidden"),  # tuple[int, ...]
}  # fmt: skip
TRAINING_FIELD = {
    "int": ("run", "seed"), "float": ("optim", "lr"), "bool": ("run", "amp"), "str": ("data", "val"),
    "ints": ("optim", "lr_milestones"),  # list[int]
}  # fmt: skip


@pytest.mark.parametrize(("kind", "value", "expected"), SAME_INPUT)
def test_the_same_input_coerces_the_same_in_both_configs(kind, value, expected):
    got_network = _network(*NETWORK_FIELD[kind], value)
    got_training = _training(*TRAINING_FIELD[kind], value)
    if kind == "ints" and isinstance(expected, list):  # the network's field is a tuple, training's a list
        assert type(got_network) is tuple and type(got_training) is list
        got_network = list(got_network)
    assert got_network == expected and type(got_network) is type(expected)
    assert got_training == expected and type(got_training) is type(expected)


def test_network_overrides_in_a_training_config_coerce_like_training_fields():
    config = load_train_config(None, ["model.overrides.roi.size=16", "model.overrides.loss.kp3d=3e-4"])
    net = config.danet_config()
    assert net.roi.size == 16 and net.loss.kp3d == 3e-4 and isinstance(net.loss.kp3d, float)
    assert load_train_config(None, ["run.seed='7'"]).run.seed == 7
    assert config_from_dict({"roi": {"size": "7"}}).roi.size == 7


# ------------------------------------------------------------------------------------------------- YAML 1.2
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3e-4", 3e-4), ("-.5", -0.5), (".5", 0.5), ("1.", 1.0), ("010", 10), ("0o17", 15), ("0x1f", 31),
        (".inf", math.inf), ("-.Inf", -math.inf), ("true", True), ("False", False), ("null", None), ("~", None),
        ("yes", "yes"), ("on", "on"), ("off", "off"), ("1_000", "1_000"), ("2001-01-01", "2001-01-01"),
        ("1:30", "1:30"), ("[1, 2]", [1, 2]), ("{path: a/b}", {"path": "a/b"}), ("weights/x.pt", "weights/x.pt"),
    ],
)  # fmt: skip
def test_override_values_are_read_as_yaml_12(text, expected):
    got = parse_yaml_value(text)
    assert got == expected and type(got) is type(expected)


def test_yaml_12_nan():
    assert math.isnan(parse_yaml_value(".nan"))
