"""Optimizers and learning-rate schedules (trainer/optim.py): each registry entry is enumerated, so
a new optimizer or schedule is tested the moment it is registered."""

import pytest

from trainer import config as C
from trainer import optim


def optim_config(**overrides) -> C.OptimConfig:
    return C.build_config(overrides=overrides).optim


def rates(lr: optim.LearningRate, steps) -> list[float]:
    return [lr(s) for s in steps]


# -- schedules ------------------------------------------------------------------------------
def test_seed004_step_schedule_switches_at_epochs_100_and_200():
    """004_5c920be0a47925d0.txt: 0.01, then 0.001 from epoch 100, 0.0001 from epoch 200 (CIFAR-10's
    50,000 images in batches of 64: 781 steps per epoch)."""
    spe = 781
    lr = optim.LearningRate(C.build_config("seed004_resnext_cifar").optim, spe)
    steps = [0, int(99.9 * spe), 100 * spe - 1, 100 * spe, 199 * spe, 200 * spe - 1, 200 * spe, 300 * spe - 1]
    assert rates(lr, steps) == pytest.approx([0.01, 0.01, 0.01, 0.001, 0.001, 0.001, 0.0001, 0.0001], rel=1e-6)


def test_step_schedule_without_values_decays_by_its_rate_per_boundary():
    lr = optim.LearningRate(
        optim_config(schedule="step", learning_rate=1.0, boundaries=(1, 3), step_decay_rate=0.5), 10
    )
    assert rates(lr, [9, 10, 29, 30, 99]) == pytest.approx([1.0, 0.5, 0.5, 0.25, 0.25])


def test_cosine_with_warmup():
    lr = optim.LearningRate(
        optim_config(schedule="cosine", learning_rate=1.0, epochs=10, warmup_epochs=2, min_learning_rate=0.1), 100
    )
    # Linear warmup over 200 steps to 1.0, then a cosine from 1.0 (step 200) to the floor 0.1 (step 1000).
    assert rates(lr, [0, 99, 199]) == pytest.approx([1 / 200, 0.5, 1.0])
    assert rates(lr, [200, 600, 1000, 1100]) == pytest.approx([1.0, 0.55, 0.1, 0.1], rel=1e-6)


def test_exponential_decays_per_epoch_down_to_its_floor():
    lr = optim.LearningRate(optim_config(schedule="exponential", learning_rate=1.0, exponential_decay_rate=0.5), 100)
    assert rates(lr, [0, 50, 100, 300]) == pytest.approx([1.0, 0.5**0.5, 0.5, 0.125], rel=1e-6)
    floored = optim.LearningRate(
        optim_config(schedule="exponential", learning_rate=1.0, exponential_decay_rate=0.5, min_learning_rate=0.2), 100
    )
    assert rates(floored, [100, 300, 1000]) == pytest.approx([0.5, 0.2, 0.2], rel=1e-6)


@pytest.mark.parametrize("schedule", sorted(optim.SCHEDULES))
def test_every_schedule_gets_the_same_warmup_and_starts_when_it_ends(schedule):
    """With 2 warmup epochs of 6, the rate climbs linearly to the schedule's first rate, then is
    the 4-epoch schedule, started at the warmup's end."""
    spe = 10
    base = dict(schedule=schedule, learning_rate=0.4, boundaries=(2, 3), exponential_decay_rate=0.5)
    plain = optim.LearningRate(optim_config(**base, epochs=4), spe)
    warm = optim.LearningRate(optim_config(**base, epochs=6, warmup_epochs=2), spe)
    assert warm.warmup_steps == 20
    assert rates(warm, range(20)) == pytest.approx([plain(0) * (s + 1) / 20 for s in range(20)])
    after = range(20, 70, 7)
    assert rates(warm, after) == pytest.approx(rates(plain, [s - 20 for s in after]))
    assert len(set(rates(plain, range(0, 50, 7)))) > 1 or schedule in ("constant", "plateau")  # it does change


def test_plateau_lowers_the_rate_after_patience_and_keeps_its_floor():
    lr = optim.LearningRate(
        optim_config(
            schedule="plateau", learning_rate=1.0, plateau_factor=0.1, plateau_patience=2, min_learning_rate=0.005
        ),
        10,
    )
    seen = []
    for loss in (1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95):
        seen.append(lr(0))
        lr.end_epoch(loss)
    assert seen == pytest.approx([1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.01, 0.01])
    assert lr(0) == pytest.approx(0.005)  # 0.001, floored
    # Its state is what the loop checkpoints; a restored controller goes on from it.
    restored = optim.LearningRate(optim_config(schedule="plateau", learning_rate=1.0), 10)
    restored.plateau.load(lr.plateau.state())
    assert restored(0) == pytest.approx(0.001)


def test_other_schedules_ignore_the_validation_loss():
    lr = optim.LearningRate(optim_config(schedule="constant", learning_rate=1.0, plateau_patience=0), 10)
    for loss in (1.0, 2.0, 3.0):
        lr.end_epoch(loss)
    assert lr(5) == 1.0


# -- optimizers and weight decay ------------------------------------------------------------
def build(cfg: C.OptimConfig):
    """The model and the optimizer, as the trainer builds them from the config."""
    from trainer.models import create_model

    model = create_model("cifar_resnet20", num_classes=3, input_shape=(32, 32, 3), weight_decay=optim.kernel_l2(cfg))
    return model, optim.make_optimizer(cfg)


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_every_optimizer_builds_and_applies_weight_decay_once(name):
    model, opt = build(optim_config(optimizer=name, learning_rate=0.05, weight_decay=3e-4, clip_norm=1.0))
    assert opt.learning_rate.numpy() == pytest.approx(0.05) and opt.global_clipnorm == 1.0
    kernel_l2 = len(model.losses) > 0
    decoupled = bool(opt.weight_decay)
    assert kernel_l2 != decoupled, (name, len(model.losses), opt.weight_decay)  # exactly one of the two
    if optim.OPTIMIZERS[name].decoupled_decay is not None:
        assert opt.weight_decay == pytest.approx(3e-4)  # --weight_decay, not a hidden default


def test_adamw_decays_only_in_the_optimizer_with_the_flag_value():
    """The bug: --optimizer=adamw put --weight_decay on the kernels (L2 in the loss) and gave it to
    AdamW as its decoupled decay as well, and `or 1e-4` turned --weight_decay=0 into 1e-4."""
    model, opt = build(optim_config(optimizer="adamw", weight_decay=5e-4))
    assert model.losses == [] and opt.weight_decay == pytest.approx(5e-4)
    _, opt = build(optim_config(optimizer="adamw", weight_decay=0.0))
    assert opt.weight_decay == 0.0
    # Not given: the default --help states.
    _, opt = build(optim_config(optimizer="adamw"))
    assert opt.weight_decay == pytest.approx(optim.OPTIMIZERS["adamw"].decoupled_decay)
    assert f"adamw: its decoupled weight decay only, the model's kernel L2 is off (default {opt.weight_decay:g})" in (
        C.PARAMS["weight_decay"].help
    )


def test_seed004_keeps_its_kernel_l2_under_sgd():
    model, opt = build(C.build_config("seed004_resnext_cifar").optim)
    assert model.losses and not opt.weight_decay


def test_unknown_names_list_the_known_ones_and_names_register_once():
    with pytest.raises(ValueError, match="known: sgd, adam, adamw, rmsprop"):
        optim.make_optimizer(optim_config(optimizer="lbfgs"))
    with pytest.raises(ValueError, match="known: constant, step"):
        optim.LearningRate(optim_config(schedule="zigzag"), 10)
    with pytest.raises(ValueError, match="'adam' is already registered"):
        optim.register_optimizer("adam", "again")(lambda c, **kw: None)
    with pytest.raises(ValueError, match="'cosine' is already registered"):
        optim.register_schedule("cosine", "again")(lambda c, spe: None)
