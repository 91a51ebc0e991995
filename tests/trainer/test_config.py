import dataclasses
import json

import pytest

from trainer import config as C

# What trainer/config.py wrote as <run_dir>/config.json before the config had sections (main at
# 23855e5: `TrainConfig().to_json()` through `config.save`), byte for byte.
FLAT_CONFIG_JSON = """{
  "augment_crop_pad": 0,
  "augment_flip": true,
  "aux_heads": false,
  "batch_size": 64,
  "bn_momentum": null,
  "boundaries": [],
  "cache": false,
  "checkpoint_every": 0,
  "clip_norm": 0.0,
  "cpu_replicas": 0,
  "cutmix_alpha": 0.0,
  "data_dir": "",
  "decay_rate": 0.1,
  "deterministic": false,
  "dropout": null,
  "epochs": 10,
  "image_size": 0,
  "jit": false,
  "label_smoothing": 0.0,
  "learning_rate": 0.01,
  "log_every": 20,
  "max_nan_recoveries": 3,
  "max_to_keep": 3,
  "min_learning_rate": 0.0,
  "mixup_alpha": 0.0,
  "model": "cifar_resnet20",
  "momentum": 0.9,
  "nan_lr_factor": 0.1,
  "nesterov": false,
  "normalization": "dataset",
  "num_gpus": -1,
  "optimizer": "sgd",
  "plateau_patience": 5,
  "precision": "float32",
  "recover_from_nan": false,
  "schedule": "constant",
  "seed": 0,
  "shuffle_buffer": 2048,
  "stop_grace_seconds": 20.0,
  "strategy": "auto",
  "sync_bn": false,
  "test_split": "test",
  "tfds_data_dir": "",
  "tfds_name": "",
  "train_split": "train",
  "validation_split": "validation",
  "values": [],
  "warmup_epochs": 0.0,
  "weight_decay": null
}
"""


def test_precedence_defaults_preset_file_flags(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("epochs: 7\nlearning_rate: 0.5\n")
    cfg = C.build_config("seed004_resnext_cifar", str(f), {"learning_rate": 0.2})
    assert cfg.model.name == "seed004_resnext" and cfg.optim.nesterov and cfg.optim.boundaries == (100, 200)
    assert cfg.optim.epochs == 7 and cfg.optim.learning_rate == 0.2


def test_config_files_take_sections_flat_keys_or_both(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("optim: {epochs: 7, learning_rate: 0.5}\nmodel: resnet18\ndata: {augment_crop_pad: 2}\n")
    cfg = C.build_config("seed004_resnext_cifar", str(f), {"learning_rate": 0.2})
    assert cfg.optim.epochs == 7 and cfg.optim.learning_rate == 0.2  # the flag still wins
    assert cfg.model.name == "resnet18" and cfg.data.augment_crop_pad == 2
    assert cfg.optim.boundaries == (100, 200)  # the rest of the preset stays
    j = tmp_path / "c.json"
    j.write_text(json.dumps({"optim": {"boundaries": [10, 20], "values": [0.1, 0.01, 0.001]}, "schedule": "step"}))
    cfg = C.build_config("", str(j))
    assert cfg.optim.boundaries == (10, 20) and cfg.optim.values == (0.1, 0.01, 0.001) and cfg.optim.schedule == "step"


def test_unknown_preset_and_keys_are_named(tmp_path):
    with pytest.raises(ValueError, match="known presets"):
        C.build_config("nope")
    f = tmp_path / "c.json"
    for bad, name in (({"epochz": 3}, "epochz"), ({"optim": {"epochz": 3}}, "optim.epochz")):
        f.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=f"unknown config keys \\['{name}'\\]"):
            C.build_config("", str(f))


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"epochs": "abc"}, "epochs='abc' is not an integer"),
        ({"optim": {"learning_rate": "fast"}}, "learning_rate='fast' is not a number"),
        ({"boundaries": [100, "x"]}, "boundaries=[100, 'x'] is not a list of integers"),
        ({"cache": "yes"}, "cache='yes' is not true or false"),
        ({"epochs": 3, "optim": {"epochs": 4}}, "optim.epochs is given twice"),
    ],
)
def test_values_of_the_wrong_type_or_given_twice_are_named(overrides, message):
    with pytest.raises(ValueError, match="^c.yaml: ") as e:
        C.apply_overrides(C.TrainConfig(), overrides, "c.yaml")
    assert message in str(e.value)


def test_save_load_and_identity_changes(tmp_path):
    cfg = C.build_config("demo_flowers", overrides={"data_dir": "/d"})
    C.save(cfg, tmp_path / "config.json")
    saved = json.loads((tmp_path / "config.json").read_text())
    assert set(saved) == {"model", "data", "optim", "runtime"}  # nested now
    assert saved["model"]["name"] == "resnet18" and saved["data"]["data_dir"] == "/d"
    back = C.load(str(tmp_path / "config.json"))
    assert back == cfg
    changed = C.build_config("demo_flowers", overrides={"data_dir": "/d", "model": "cifar_resnet20", "epochs": 99})
    assert C.identity_changes(back, changed) == ["model: 'resnet18' -> 'cifar_resnet20'"]


def test_a_flat_config_json_of_an_old_run_loads_and_is_compared_on_resume(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(FLAT_CONFIG_JSON)
    old = C.load(str(path))
    assert old == C.TrainConfig()  # every field, in its section
    assert C.identity_changes(old, C.TrainConfig()) == []
    new = C.build_config(overrides={"model": "resnet18", "normalization": "unit", "epochs": 3})
    assert C.identity_changes(old, new) == [
        "model: 'cifar_resnet20' -> 'resnet18'",
        "normalization: 'dataset' -> 'unit'",
    ]


@pytest.mark.parametrize(
    "schedule,field",
    [
        ("step", "step_decay_rate"),
        ("exponential", "exponential_decay_rate"),
        ("plateau", "plateau_factor"),
        ("constant", None),
        ("cosine", None),
    ],
)
def test_an_old_decay_rate_lands_in_the_field_of_its_schedule(tmp_path, schedule, field):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**json.loads(FLAT_CONFIG_JSON), "schedule": schedule, "decay_rate": 0.5}))
    optim = C.load(str(path)).optim
    rates = {f: getattr(optim, f) for f in ("step_decay_rate", "exponential_decay_rate", "plateau_factor")}
    assert rates == {f: 0.5 if f == field else 0.1 for f in rates}
    # --decay_rate (kept as the old name) sets the field of the schedule in effect in its layer.
    flags = C.build_config("seed004_resnext_cifar", overrides={"schedule": schedule, "decay_rate": 0.5}).optim
    assert {f: getattr(flags, f) for f in rates} == rates


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("learning_rate", -1.0, "--learning_rate=-1.0: must be > 0"),
        ("learning_rate", float("nan"), "--learning_rate=nan: must be > 0"),
        ("cpu_replicas", -4, "--cpu_replicas=-4: must be >= 0"),
        ("batch_size", 0, "--batch_size=0: must be >= 1"),
        ("epochs", -1, "--epochs=-1: must be >= 1"),
        ("shuffle_buffer", 0, "--shuffle_buffer=0: must be >= 1"),
        ("momentum", 1.5, "--momentum=1.5: must be in [0, 1]"),
        ("label_smoothing", 1.0, "--label_smoothing=1.0: must be in [0, 1)"),
        ("dropout", -0.1, "--dropout=-0.1: must be in [0, 1)"),
        ("weight_decay", float("inf"), "--weight_decay=inf: must be >= 0"),
        ("nan_lr_factor", 2.0, "--nan_lr_factor=2.0: must be in (0, 1)"),
        ("max_to_keep", 0, "--max_to_keep=0: must be >= 1"),
        ("num_gpus", -2, "--num_gpus=-2: must be >= -1"),
        ("seed", -1, "--seed=-1: must be >= 0"),
        ("values", (0.1, -0.01), "--values=0.1,-0.01: must be >= 0"),
        ("plateau_factor", 0.0, "--plateau_factor=0.0: must be > 0"),
        ("precision", "float8", "--precision=float8: must be one of float32, mixed_float16, mixed_bfloat16"),
        ("optimizer", "lbfgs", "--optimizer=lbfgs: must be one of sgd, adam, adamw, rmsprop"),
        ("schedule", "zigzag", "--schedule=zigzag: must be one of constant, step, cosine, exponential, plateau"),
        ("strategy", "tpu", "--strategy=tpu: must be one of auto, one_device, mirrored, multi_worker"),
        ("normalization", "z", "--normalization=z: must be one of dataset, imagenet, cifar10_seed004, unit"),
    ],
)
def test_out_of_range_values_are_named_with_their_bound(field, value, message):
    """Whichever layer set them (a preset or a config file is not checked by the flag parser)."""
    cfg = C.build_config(overrides={field: value})
    with pytest.raises(ValueError) as e:
        C.check_values(cfg, cores=2)
    assert str(e.value).startswith(message), str(e.value)


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"boundaries": (100, 200), "values": (0.1, 0.01)}, "--values: the step schedule's 2 --boundaries need 3"),
        ({"boundaries": (200, 100)}, "--boundaries=200,100: must increase"),
    ],
)
def test_a_step_schedule_it_cannot_follow_is_refused_before_any_work(overrides, message):
    cfg = C.build_config(overrides={"schedule": "step", **overrides})
    with pytest.raises(ValueError, match=message):
        C.check_values(cfg, cores=2)


def test_every_field_has_help_every_numeric_field_a_bound_and_the_defaults_and_presets_pass():
    for p in C.PARAMS.values():
        assert p.help.strip(), p.path
        kind = p.item_type or p.type
        if kind in (int, float):
            assert p.bounds is not None, p.path
        if p.choices:
            assert p.default in p.choices, p.path
    for preset in ("", *C.PRESETS):
        C.check_values(C.build_config(preset), cores=2)


def test_flags_are_flat_and_named_as_before_the_sections():
    """Every flag of the flat config (and so every command line) still exists; --decay_rate is
    the one whose meaning moved to three fields (and stays as their old name)."""
    old_flags = set(json.loads(FLAT_CONFIG_JSON))
    assert old_flags - {"decay_rate"} <= set(C.PARAMS)
    assert {p.section for p in C.PARAMS.values()} == set(C.SECTIONS)
    assert (
        len({p.path for p in C.PARAMS.values()})
        == len(C.PARAMS)
        == sum(len(dataclasses.fields(t)) for t in (C.ModelConfig, C.DataConfig, C.OptimConfig, C.RuntimeConfig))
    )


def test_cpu_replicas_far_above_the_cores_are_refused():
    C.check_values(C.build_config(overrides={"cpu_replicas": 8}), cores=2)  # 4x: allowed
    with pytest.raises(ValueError, match=r"--cpu_replicas=9: more than 4x the 2 CPU cores"):
        C.check_values(C.build_config(overrides={"cpu_replicas": 9}), cores=2)
