import json

import pytest

from trainer import config as C
from trainer import optim


def test_precedence_defaults_preset_file_flags(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("epochs: 7\nlearning_rate: 0.5\n")
    cfg = C.build_config("seed004_resnext_cifar", str(f), {"learning_rate": 0.2})
    assert cfg.model == "seed004_resnext" and cfg.nesterov and cfg.boundaries == (100, 200)
    assert cfg.epochs == 7 and cfg.learning_rate == 0.2


def test_unknown_preset_and_keys_are_named(tmp_path):
    with pytest.raises(ValueError, match="known presets"):
        C.build_config("nope")
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"epochz": 3}))
    with pytest.raises(ValueError, match="epochz"):
        C.build_config("", str(f))


def test_save_load_and_identity_changes(tmp_path):
    cfg = C.build_config("demo_flowers", overrides={"data_dir": "/d"})
    C.save(cfg, tmp_path / "config.json")
    back = C.load(str(tmp_path / "config.json"))
    assert back == cfg
    changed = C.build_config("demo_flowers", overrides={"data_dir": "/d", "model": "cifar_resnet20", "epochs": 99})
    assert C.identity_changes(back, changed) == ["model: 'resnet18' -> 'cifar_resnet20'"]


def test_seed004_step_schedule():
    cfg = C.build_config("seed004_resnext_cifar")
    assert [optim.lr_at(cfg, e) for e in (0, 99.9, 100, 199, 200, 299)] == [0.01, 0.01, 0.001, 0.001, 0.0001, 0.0001]


def test_cosine_with_warmup_and_exponential():
    cfg = C.build_config(overrides={"schedule": "cosine", "learning_rate": 1.0, "epochs": 10, "warmup_epochs": 2})
    assert optim.lr_at(cfg, 1.0) == pytest.approx(0.5, abs=1e-3)
    assert optim.lr_at(cfg, 2.0) == pytest.approx(1.0)
    assert optim.lr_at(cfg, 6.0) == pytest.approx(0.5)
    assert optim.lr_at(cfg, 10.0) == pytest.approx(0.0, abs=1e-9)
    cfg = C.build_config(overrides={"schedule": "exponential", "learning_rate": 1.0, "decay_rate": 0.5})
    assert optim.lr_at(cfg, 3) == pytest.approx(0.125)


def test_plateau_controller_decays_after_patience():
    p = optim.PlateauController(factor=0.1, patience=2, min_lr=1e-4)
    lrs = [p.update(loss, 1.0) for loss in (1.0, 0.9, 0.95, 0.95, 0.95, 0.95)]
    assert lrs == pytest.approx([1.0, 1.0, 1.0, 0.1, 0.1, 0.01])


def test_unknown_optimizer_and_schedule():
    with pytest.raises(ValueError, match="known"):
        optim.make_optimizer(C.build_config(overrides={"optimizer": "lbfgs"}))
    with pytest.raises(ValueError, match="known"):
        optim.lr_at(C.build_config(overrides={"schedule": "zigzag"}), 1.0)


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
    ],
)
def test_out_of_range_values_are_named_with_their_bound(field, value, message):
    cfg = C.build_config(overrides={field: value})
    with pytest.raises(ValueError) as e:
        C.check_values(cfg, cores=2)
    assert str(e.value).startswith(message), str(e.value)


def test_every_numeric_field_has_a_bound_and_the_defaults_and_presets_pass():
    import dataclasses
    import typing

    hints = typing.get_type_hints(C.TrainConfig)
    numeric = {
        f.name
        for f in dataclasses.fields(C.TrainConfig)
        if {int, float} & set(typing.get_args(hints[f.name]) or (hints[f.name],)) and hints[f.name] is not bool
    }
    assert numeric <= set(C.BOUNDS), sorted(numeric - set(C.BOUNDS))
    for preset in ("", *C.PRESETS):
        C.check_values(C.build_config(preset), cores=2)


def test_cpu_replicas_far_above_the_cores_are_refused():
    C.check_values(C.build_config(overrides={"cpu_replicas": 8}), cores=2)  # 4x: allowed
    with pytest.raises(ValueError, match=r"--cpu_replicas=9: more than 4x the 2 CPU cores"):
        C.check_values(C.build_config(overrides={"cpu_replicas": 9}), cores=2)
