"""tui_cifar.config: presets, overrides, validation that names the field, config files."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tui_cifar.config import PRESETS, ConfigError, TrainConfig, load_config_file, make_config
from tui_cifar.engine.backbones import BACKBONES


def test_defaults_are_a_valid_config():
    config = make_config()
    assert config == TrainConfig()
    assert config.backbone in BACKBONES
    assert config.run_name == "mobilenetv2-160px"
    assert json.loads(json.dumps(config.to_json())) == config.to_json()


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_is_valid_and_applied(preset):
    config = make_config(preset=preset)
    for key, value in PRESETS[preset].items():
        assert getattr(config, key) == value


def test_quick_preset_is_cheaper_than_default_and_best():
    quick, default, best = (make_config(preset=p) for p in ("quick", "default", "best"))
    assert default == TrainConfig()
    assert quick.image_size <= default.image_size <= best.image_size
    assert (quick.limit_train or 50000) < (default.limit_train or 50000) <= (best.limit_train or 50000)


def test_overrides_win_over_the_preset():
    config = make_config({"image_size": 128, "epochs_fine": 0}, preset="quick")
    assert config.image_size == 128 and config.epochs_fine == 0
    assert config.limit_train == PRESETS["quick"]["limit_train"]


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset 'turbo'.*quick"):
        make_config(preset="turbo")


def test_config_round_trips_through_its_json():
    config = make_config({"fine_tune_blocks": "all", "limit_train": 500, "val_size": 100, "backbone": "resnet50"})
    assert make_config(config.to_json()) == config


@pytest.mark.parametrize(
    "values, field, words",
    [
        ({"image_size": "big"}, "image_size", "whole number"),
        ({"image_size": 12.5}, "image_size", "whole number"),
        ({"image_size": True}, "image_size", "whole number"),
        ({"lr_head": "fast"}, "lr_head", "number"),
        ({"augment": "yes"}, "augment", "true or false"),
        ({"augment": 1}, "augment", "true or false"),
        ({"data_dir": 3}, "data_dir", "text"),
        ({"backbone": "vgg16"}, "vgg16", "mobilenetv2"),
        ({"weights": "random"}, "weights", "imagenet"),
        ({"mixed_precision": "maybe"}, "mixed_precision", "auto"),
    ],
)
def test_type_errors_name_the_field(values, field, words):
    with pytest.raises(ConfigError) as info:
        make_config(values)
    assert field in str(info.value) and words in str(info.value)


@pytest.mark.parametrize(
    "field, value",
    [("image_size", 16), ("image_size", 1024), ("batch_size", 0), ("dropout", 0.99), ("lr_head", 0.0),
     ("lr_fine", 2.0), ("label_smoothing", -0.1), ("epochs_head", -1), ("val_size", 5), ("limit_train", 10),
     ("limit_test", 5), ("seed", -1), ("patience", 0)],
)
def test_range_errors_name_the_field_and_the_range(field, value):
    with pytest.raises(ConfigError, match=rf"^{field} must be between"):
        make_config({field: value})


def test_whole_floats_are_accepted_as_ints():
    config = make_config({"image_size": 96.0, "epochs_head": 2.0})
    assert config.image_size == 96 and isinstance(config.image_size, int)


def test_ints_are_accepted_as_floats():
    config = make_config({"lr_head": 1, "dropout": 0})
    assert config.lr_head == 1.0 and isinstance(config.lr_head, float)


def test_optional_fields_take_none():
    config = make_config({"limit_train": None, "data_dir": None, "cache_dir": None})
    assert config.limit_train is None and config.data_dir is None


def test_unknown_keys_are_refused_by_name():
    with pytest.raises(ConfigError, match="unknown config key.*epochs_headd.*learning_rate"):
        make_config({"epochs_headd": 3, "learning_rate": 0.1})


@pytest.mark.parametrize("value, expected", [("all", "all"), (0, 0), (4, 4), ("3", 3), ("0", 0), (18, 18)])
def test_fine_tune_blocks_accepts_all_int_and_digit_text(value, expected):
    assert make_config({"fine_tune_blocks": value}).fine_tune_blocks == expected


@pytest.mark.parametrize("value", [-1, "-1", "some", "ALL", 2.5, True, None, ""])
def test_fine_tune_blocks_refuses_everything_else(value):
    with pytest.raises(ConfigError, match="fine_tune_blocks"):
        make_config({"fine_tune_blocks": value})


def test_nothing_to_train_is_refused():
    with pytest.raises(ConfigError, match="epochs_head and epochs_fine"):
        make_config({"epochs_head": 0, "epochs_fine": 0})


def test_validation_split_must_leave_training_images():
    with pytest.raises(ConfigError, match="val_size"):
        make_config({"limit_train": 100, "val_size": 100})
    assert make_config({"limit_train": 100, "val_size": 99}).val_size == 99


def test_json_config_file(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"backbone": "mobilenetv2-0.35", "image_size": 96, "fine_tune_blocks": "all"}))
    config = make_config(load_config_file(path))
    assert (config.backbone, config.image_size, config.fine_tune_blocks) == ("mobilenetv2-0.35", 96, "all")


def test_toml_config_file(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('backbone = "resnet50"\nimage_size = 128\nfine_tune_blocks = 2\naugment = false\n'
                    'lr_fine = 1e-5\ndata_dir = "~/data"\n')
    config = make_config(load_config_file(path))
    assert (config.backbone, config.image_size, config.fine_tune_blocks) == ("resnet50", 128, 2)
    assert config.augment is False and config.lr_fine == pytest.approx(1e-5)
    assert config.data_dir == "~/data"


def test_config_file_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(ConfigError, match="cannot read config file.*nope.json"):
        load_config_file(missing)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{image_size: 96")
    with pytest.raises(ConfigError, match="(?i)bad.json is not valid json"):
        load_config_file(bad_json)
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("image_size = = 96")
    with pytest.raises(ConfigError, match="(?i)bad.toml is not valid toml"):
        load_config_file(bad_toml)
    not_object = tmp_path / "list.json"
    not_object.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="object of settings"):
        load_config_file(not_object)


def test_a_bad_value_in_a_file_names_the_field(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('image_size = "large"\n')
    with pytest.raises(ConfigError, match="image_size"):
        make_config(load_config_file(path))


def test_every_setting_is_a_train_flag_and_reaches_the_config():
    """The CLI's flags are derived from TrainConfig's declarations: none missing, each one effective."""
    from tui_cifar.cli.commands import _config_from_args, build_parser
    from tui_cifar.config import SETTINGS

    other = {"image_size": "96", "fine_tune_blocks": "all", "epochs_head": "2", "epochs_fine": "1", "lr_head": "0.01",
             "lr_fine": "0.001", "batch_size": "64", "head_batch_size": "256", "dropout": "0.5", "label_smoothing": "0",
             "weight_decay": "0", "val_size": "100", "patience": "2", "seed": "7", "limit_train": "500",
             "limit_test": "200", "mixed_precision": "off", "weights": "none", "backbone": "resnet50",
             "data_dir": "d", "runs_dir": "r", "cache_dir": "c", "runtime": "litert", "devices": "cpu"}
    argv = ["train"]
    for s in SETTINGS:
        argv += [s.flag] if s.kind == "bool" else [s.flag, other[s.name]]
    config = _config_from_args(build_parser().parse_args(argv))
    defaults = TrainConfig()
    changed = [s.name for s in SETTINGS if getattr(config, s.name) != getattr(defaults, s.name)]
    assert changed == [s.name for s in SETTINGS]
    assert config.fine_tune_blocks == "all" and config.lr_head == 0.01
    assert config.augment is True and config.tta_flip is False  # each bool flag flips its default
    # and each has its opposite, so scripts written for either default keep working
    config = _config_from_args(build_parser().parse_args(["train", "--no-augment", "--tta"]))
    assert config.augment is False and config.tta_flip is True


def test_settings_declare_what_the_form_shows():
    from tui_cifar.config import SETTING_BY_NAME, SETTINGS

    assert [s.name for s in SETTINGS] == [f.name for f in dataclasses.fields(TrainConfig)]
    assert all(s.label for s in SETTINGS)
    assert SETTING_BY_NAME["limit_train"].optional and not SETTING_BY_NAME["image_size"].optional
    assert SETTING_BY_NAME["image_size"].range == (32, 600)
    assert SETTING_BY_NAME["weights"].values == ("imagenet", "none")
    assert SETTING_BY_NAME["backbone"].kind == "select" and "resnet50" in SETTING_BY_NAME["backbone"].values


def test_fine_tune_blocks_beyond_the_backbone_are_refused():
    with pytest.raises(ConfigError, match=r"fine_tune_blocks must be at most 18 \(mobilenetv2 has 18 blocks"):
        make_config({"fine_tune_blocks": 99})
    with pytest.raises(ConfigError, match="resnet50 has 16 blocks"):
        make_config({"backbone": "resnet50", "fine_tune_blocks": 17})
    assert make_config({"backbone": "resnet50", "fine_tune_blocks": 16}).fine_tune_blocks == 16
    assert make_config({"fine_tune_blocks": "all"}).fine_tune_blocks == "all"
