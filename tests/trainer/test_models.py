"""Tests of trainer.models: the registry is enumerated, so a new model is tested when registered.

Heavy builds (every model at its default input for the pinned counts, keras.applications
references) use a zeros initializer and no forward pass; forward passes, SGD steps and round
trips run at small inputs. The command line's listing (no TensorFlow) is tested in
test_models_main.py.
"""

import dataclasses
import io
import json
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from crawler.classes import CLASS_NAMES
from crawler.flowersite.render import render_flower
from trainer import data as data_lib
from trainer import export as export_lib
from trainer.models import (
    SEED_MODELS,
    UnknownOverrideError,
    accepted_overrides,
    create_model,
    get_spec,
    list_models,
    load_model,
    register_model,
    without_aux_heads,
)
from trainer.models import __main__ as cli
from trainer.models.specs import PINNED
from trainer.models.stats import count_flops, count_params

pytestmark = [
    pytest.mark.slow,
    # Keras's own saving code converts variables with np.array(copy=False) (numpy 2 warns).
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]

# Trainable parameters published by the papers, in millions, and the tolerance (relative).
# AlexNet: "60 million parameters" (two-tower, exact 60.97M). GoogLeNet: the paper's Table 1
# sums to 6.8M but its rows are ~3% below the row's own layer shapes (e.g. inception 5b is
# 1,443K exactly, 1,388K in the table); the exact count of those shapes is 7.0M.
# ResNet-18/34 are not tabulated in the paper: 11.7M/21.8M are the commonly cited figures.
PAPER_PARAMS = {
    "alexnet": (60.0, 0.02),
    "vgg11": (133, 0.005),
    "vgg13": (133, 0.005),
    "vgg16": (138, 0.005),
    "vgg19": (144, 0.005),
    "googlenet": (6.8, 0.03),
    "resnet18": (11.7, 0.005),
    "resnet34": (21.8, 0.005),
    "cifar_resnet20": (0.27, 0.01),
    "cifar_resnet32": (0.46, 0.01),
    "cifar_resnet44": (0.66, 0.01),
    "cifar_resnet56": (0.85, 0.01),
    "cifar_resnet110": (1.7, 0.02),
    "resnext29_8x64d": (34.4, 0.005),
    "resnext29_16x64d": (68.1, 0.005),
    "resnext50_32x4d": (25.0, 0.005),
}
# Small builds used for the serialisation tests: option-A shortcut layer, grouped conv,
# multi-output GoogLeNet.
ROUND_TRIP = (("cifar_resnet20", {}), ("seed004_resnext", {}), ("seed003_googlenet", {"aux_heads": True}))
# Keras names an unnamed layer after its class plus a session-wide counter; once one unnamed
# layer of each class exists (`_claim_auto_names`), every further unnamed one ends in "_<n>".
_AUTO_NAMED = (
    keras.layers.Conv2D,
    keras.layers.Dense,
    keras.layers.BatchNormalization,
    keras.layers.Activation,
    keras.layers.Add,
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.Flatten,
    keras.layers.Dropout,
    keras.layers.Concatenate,
    keras.layers.ZeroPadding2D,
)
_AUTO_NAME = re.compile(
    r"^(input_layer|conv2d|dense|batch_normalization|activation|add|"
    r"max_pooling2d|average_pooling2d|global_average_pooling2d|"
    r"global_max_pooling2d|flatten|dropout|concatenate|zero_padding2d|"
    r"channel_pad)_\d+$"
)


def _claim_auto_names():
    for cls in _AUTO_NAMED:
        args = {
            keras.layers.Conv2D: (1, 1),
            keras.layers.Dense: (1,),
            keras.layers.Activation: ("relu",),
            keras.layers.Dropout: (0.1,),
            keras.layers.MaxPooling2D: (2,),
            keras.layers.AveragePooling2D: (2,),
        }.get(cls, ())
        cls(*args)
    keras.Input((1,))


@pytest.fixture(autouse=True)
def _fresh_session():
    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session()


def _small_size(spec):
    """The forward-pass size: 32 for ImageNet-style models, 16 for CIFAR ones, or the minimum."""
    return max(spec.min_input_size, 32 if spec.default_input_shape[0] > 32 else 16)


def _batch(size, channels, n=2):
    return np.random.default_rng(0).normal(size=(n, size, size, channels)).astype("float32")


def _loss(model, x, y, training):
    out = model(x, training=training)
    return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y, out, from_logits=True))


def test_registry_has_every_model():
    names = set(list_models())
    assert names == set(PINNED)  # every model has pinned counts, and no stale row is left
    assert {n for ns in SEED_MODELS.values() for n in ns} == set(list_models("seed"))
    for seed_file, seed_names in SEED_MODELS.items():
        for name in seed_names:
            assert seed_file in get_spec(name).reference


@pytest.mark.parametrize("name", list_models())
def test_model_builds_and_trains(name):
    """Small input: explicit names, finite float32 logits, one SGD step lowers the loss.

    The step is taken and measured in inference mode: with a batch of 2 and 1x1 maps, training-
    mode batch norm makes the loss of the deep ResNets a near-discontinuous function of the
    weights (gradient norms ~1e10), so "one step lowers the loss" would test luck, not wiring.
    """
    spec = get_spec(name)
    size, channels = _small_size(spec), spec.default_input_shape[2]
    _claim_auto_names()
    model = create_model(name, num_classes=spec.num_classes, input_shape=(size, size, channels), dropout=0.0)
    auto = [layer.name for layer in model.layers if _AUTO_NAME.match(layer.name)]
    assert not auto, f"layers without explicit names: {auto[:5]}"
    assert len({layer.name for layer in model.layers}) == len(model.layers)

    x = _batch(size, channels)
    logits = model(x, training=False)
    assert logits.shape == (2, spec.num_classes)
    assert logits.dtype == "float32"
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(logits)))

    y = np.array([1, 3])
    optimizer = keras.optimizers.SGD(learning_rate=1e-3, global_clipnorm=1.0)
    with tf.GradientTape() as tape:
        before = _loss(model, x, y, training=False)
    grads = tape.gradient(before, model.trainable_variables)
    assert all(g is not None for g in grads)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    after = _loss(model, x, y, training=False)
    assert float(after) < float(before)


@pytest.mark.parametrize("name", list_models())
def test_pinned_counts_match_a_build(name):
    """What --list prints (the spec's pinned counts) is what a build at the default input has."""
    spec = get_spec(name)
    model = create_model(name, num_classes=spec.num_classes, kernel_initializer="zeros")
    counts = count_params(model)
    assert (counts.total, counts.trainable) == (spec.params, spec.trainable_params)
    assert count_flops(model) == spec.flops


@pytest.mark.parametrize("name", [n for n in list_models() if get_spec(n).keras_application])
def test_param_count_equals_keras_applications(name):
    spec = get_spec(name)
    reference = getattr(keras.applications, spec.keras_application)(weights=None)
    assert reference.input_shape[1:] == spec.default_input_shape
    expected = count_params(reference)
    del reference
    model = create_model(name, num_classes=1000, kernel_initializer="zeros")
    assert count_params(model) == expected


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))
def test_param_count_matches_paper(name):
    paper_millions, rel_tol = PAPER_PARAMS[name]
    trainable = get_spec(name).trainable_params  # asserted against real builds above
    assert trainable / 1e6 == pytest.approx(paper_millions, rel=rel_tol)


@pytest.mark.parametrize(
    "name,expected", [("resnet18", 11_689_512), ("resnet34", 21_797_672), ("resnet50", 25_557_032)]
)
def test_bias_free_resnets_equal_torchvision(name, expected):
    model = create_model(name, num_classes=1000, input_shape=(32, 32, 3), use_bias=False, kernel_initializer="zeros")
    assert count_params(model).trainable == expected


def test_seed_googlenet_with_aux_heads():
    for name, size in (("seed003_googlenet", 32), ("googlenet", 65)):
        spec = get_spec(name)
        assert spec.aux_loss_weights == (0.3, 0.3)
        model = create_model(name, num_classes=10, input_shape=(size, size, 3), aux_heads=True)
        x = _batch(size, 3)
        outputs = model(x, training=False)
        assert isinstance(outputs, (list, tuple)) and len(outputs) == 3
        for out in outputs:
            assert out.shape == (2, 10) and out.dtype == "float32"
        main = without_aux_heads(model)
        assert len(main.outputs) == 1
        np.testing.assert_allclose(main(x), outputs[0], rtol=1e-5, atol=1e-5)
        # The trainer's weighted loss: 1 * main + 0.3 * aux1 + 0.3 * aux2.
        y = np.array([0, 1])
        losses = [keras.losses.sparse_categorical_crossentropy(y, o, from_logits=True) for o in outputs]
        total = sum(w * keras.ops.mean(v) for w, v in zip((1.0, *spec.aux_loss_weights), losses))
        assert np.isfinite(float(total))
        keras.backend.clear_session()
    with pytest.raises(ValueError, match="65"):
        create_model("googlenet", input_shape=(64, 64, 3), aux_heads=True)
    with pytest.raises(ValueError, match="auxiliary"):
        create_model("resnet18", aux_heads=True)


def test_unknown_name_lists_known_models():
    with pytest.raises(ValueError) as err:
        create_model("resnet9000")
    for name in ("resnet50", "seed004_resnext", "vgg16_bn"):
        assert name in str(err.value)
    with pytest.raises(ValueError, match="cifar_resnet20"):
        get_spec("nope")


def test_unknown_override_lists_accepted_ones():
    with pytest.raises(UnknownOverrideError) as err:
        create_model("resnet18", widht=2)
    assert isinstance(err.value, TypeError) and isinstance(err.value, ValueError)
    for accepted in ("cardinality", "base_width", "kernel_initializer"):
        assert accepted in str(err.value)
    assert "batch_norm" in accepted_overrides("vgg11")


@pytest.mark.parametrize("name", [n for n in list_models() if get_spec(n).min_input_size > 8])
def test_too_small_input_names_the_minimum(name):
    spec = get_spec(name)
    small = spec.min_input_size - 1
    with pytest.raises(ValueError, match=f">= {spec.min_input_size}"):
        create_model(name, input_shape=(small, small, spec.default_input_shape[2]))


def test_a_builder_named_by_module_is_checked_when_first_used(monkeypatch):
    """Specs name builders as "module:function" (no Keras import to list them); a wrong name or
    a keyword the builder does not take fails loudly, at registration or at the first build."""
    from trainer.models import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    spec = dataclasses.replace(get_spec("cifar_resnet20"), name="lazy_test")
    with pytest.raises(TypeError, match="module:function"):
        register_model(spec, "trainer.models.resnet.build_resnet")
    register_model(spec, "trainer.models.resnet:build_resnet", block="basic", stage_blocks=(1,), widht=2)
    with pytest.raises(TypeError, match=r"build_resnet does not take \['widht'\]"):
        create_model("lazy_test")


def test_bad_options_fail_clearly():
    with pytest.raises(ValueError, match="include_top=False"):
        create_model("cifar_resnet20", pooling="avg")
    with pytest.raises(ValueError, match="pooling"):
        create_model("cifar_resnet20", include_top=False, pooling="mean")
    with pytest.raises(ValueError, match="input_shape"):
        create_model("cifar_resnet20", input_shape=(32, 32))
    with pytest.raises(ValueError, match="dropout"):
        create_model("cifar_resnet20", dropout=1.5)
    with pytest.raises(ValueError, match="already registered"):
        register_model(get_spec("resnet18"), lambda inputs, opts: inputs)


@pytest.mark.parametrize(
    "name,size",
    [("cifar_resnet20", 32), ("vgg11", 32), ("seed002_resnet50", 64), ("inception_v3", 75), ("seed003_alexnet", 67)],
)
def test_backbone_options(name, size):
    channels = get_spec(name).default_input_shape[2]
    shape = (size, size, channels)
    features = create_model(name, input_shape=shape, include_top=False)
    assert len(features.output.shape) == 4
    pooled = create_model(name, input_shape=shape, include_top=False, pooling="max")
    assert len(pooled.output.shape) == 2
    assert pooled.output.shape[-1] == features.output.shape[-1]
    assert not any(layer.name == "predictions" for layer in pooled.layers)


def test_variable_input_size_for_global_pooling_models():
    model = create_model("cifar_resnet20", input_shape=(None, None, 3))
    for size in (32, 48):
        assert model(_batch(size, 3)).shape == (2, 10)


def test_weight_decay_is_an_l2_kernel_regularizer():
    model = create_model("cifar_resnet20", weight_decay=1e-4)
    kernels = [w for w in model.trainable_weights if "kernel" in w.path]
    model(_batch(32, 3))
    assert len(model.losses) == len(kernels) > 0
    assert not create_model("cifar_resnet20").losses
    seed = create_model("seed004_resnext")
    assert isinstance(seed.get_layer("predictions").kernel_regularizer, keras.regularizers.L2)
    assert seed.get_layer("predictions").kernel_regularizer.l2 == pytest.approx(5e-4)
    assert create_model("seed004_resnext", weight_decay=0.0).get_layer("predictions").kernel_regularizer is None


def test_defaults_he_normal_and_dropout_override():
    model = create_model("alexnet", input_shape=(67, 67, 3), dropout=0.3)
    assert isinstance(model.get_layer("conv1").kernel_initializer, keras.initializers.HeNormal)
    rates = [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert rates == [0.3, 0.3]
    assert create_model("alexnet", input_shape=(67, 67, 3)).get_layer("drop6").rate == 0.5
    assert create_model("seed004_resnext").get_layer("predictions").use_bias is False


def test_logits_stay_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = create_model("seed003_googlenet", aux_heads=True, input_shape=(32, 32, 3))
        for out in model(_batch(32, 3)):
            assert out.dtype == "float32"
        assert model.get_layer("conv1_7x7").compute_dtype == "float16"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_layer_names_are_deterministic():
    first = [layer.name for layer in create_model("seed002_resnet50").layers]
    second = [layer.name for layer in create_model("seed002_resnet50").layers]
    assert first == second
    assert "res2a_branch2a" in first and "bn5c_branch2c" in first and "fc10" in first


@pytest.mark.parametrize("name,kwargs", ROUND_TRIP)
def test_keras_file_round_trip(name, kwargs, tmp_path):
    model = create_model(name, **kwargs)
    x = _batch(get_spec(name).default_input_shape[0], 3)
    expected = model(x, training=False)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    restored = load_model(path)
    got = restored(x, training=False)
    for e, g in zip(keras.tree.flatten(expected), keras.tree.flatten(got)):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)
    assert [w.path for w in restored.weights] == [w.path for w in model.weights]


def _photo_jpeg(width, height) -> bytes:
    out = io.BytesIO()
    render_flower(CLASS_NAMES[0], 7, size=(width, height)).save(out, format="JPEG", quality=90)
    return out.getvalue()


@pytest.mark.parametrize("name,kwargs", ROUND_TRIP)
def test_project_export_serves_the_models_predictions(name, kwargs, tmp_path):
    """trainer/export.py's SavedModel (aux heads dropped, preprocessing inside) gives the Keras
    model's probabilities on a photo: JPEG bytes through `serving_default`, uint8 pixels through
    `serve_uint8`. The photo is not square and not the model's size, so the resize runs."""
    size = _small_size(get_spec(name))
    model = create_model(name, num_classes=3, input_shape=(size, size, 3), **kwargs)
    prep = export_lib.preprocessing_info(size, 3, [120.0, 110.0, 90.0], [60.0, 55.0, 65.0], ["a", "b", "c"])
    _, export_dir = export_lib.export(model, str(tmp_path / "run"), prep)
    assert export_lib.check_complete(str(tmp_path / "run")) == export_dir

    jpeg = _photo_jpeg(size + 13, size + 5)
    image = data_lib.decode_resize(tf.constant(jpeg), size, 3)
    logits = without_aux_heads(model)(data_lib.normalize(image[None], prep["mean"], prep["std"]), training=False)
    expected = tf.nn.softmax(logits, axis=-1).numpy()

    reloaded = tf.saved_model.load(export_dir)
    served = reloaded.signatures["serving_default"](images=tf.constant([jpeg]))
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, rtol=1e-5, atol=1e-6)
    assert [c.decode() for c in served["class_names"].numpy()[0]] == ["a", "b", "c"]
    pixels = tf.io.decode_jpeg(jpeg, channels=3)[None]
    np.testing.assert_allclose(reloaded.serve_uint8(pixels)["probabilities"].numpy(), expected, rtol=1e-5, atol=1e-6)


def test_count_flops_uses_the_tf_profiler():
    flops = count_flops(create_model("cifar_resnet20"))
    # 40.6M multiply-adds in the convolutions and the classifier, counted as 2 FLOPs each.
    assert 75e6 < flops < 90e6


def test_count_flops_includes_grouped_convolutions():
    shape = (67, 67, 3)  # conv2 sees 7x7 maps, conv4 and conv5 3x3 maps
    single = count_flops(create_model("alexnet", input_shape=shape, groups=1, kernel_initializer="zeros"))
    grouped = count_flops(create_model("alexnet", input_shape=shape, groups=2, kernel_initializer="zeros"))
    # Two groups halve the multiply-adds of conv2, conv4 and conv5.
    saved = 7 * 7 * 256 * 25 * 48 + 3 * 3 * 384 * 9 * 192 + 3 * 3 * 256 * 9 * 192
    assert single - grouped == 2 * saved


def test_load_model_in_a_fresh_process(tmp_path):
    """Importing trainer.models loads no builder (and no custom layer): load_model registers them."""
    path = tmp_path / "m.keras"
    create_model("cifar_resnet20").save(path)  # has the option-A ChannelPad layers
    code = f"from trainer.models import load_model; print(load_model({str(path)!r}).count_params())"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == str(get_spec("cifar_resnet20").params)


def test_cli_measure(capsys):
    assert cli.run(["flower-models", "--measure=cifar_resnet20", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    spec = get_spec("cifar_resnet20")
    assert (row["params"], row["trainable_params"], row["flops"]) == (spec.params, spec.trainable_params, spec.flops)


def test_cli_measure_reports_counts_that_differ_from_the_pinned_ones(capsys, monkeypatch):
    from trainer.models import registry

    entry = registry._REGISTRY["cifar_resnet20"]
    stale = dataclasses.replace(entry.spec, params=entry.spec.params + 1)
    monkeypatch.setitem(registry._REGISTRY, "cifar_resnet20", dataclasses.replace(entry, spec=stale))
    assert cli.run(["flower-models", "--measure=cifar_resnet20"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cifar_resnet20 differs") and "271,099" in err[0]


def test_cli_summary_plot_and_errors(capsys, tmp_path):
    assert cli.run(["flower-models", "--summary=cifar_resnet20"]) == 0
    assert "conv4_block3_out" in capsys.readouterr().out
    assert cli.run(["flower-models", "--summary=nope"]) == 2
    assert "cifar_resnet20" in capsys.readouterr().err
    assert cli.run(["flower-models", "--measure=nope"]) == 2
    assert capsys.readouterr().err.startswith("error: Unknown model 'nope'")
    assert cli.run(["flower-models"]) == 2
    out = tmp_path / "m.png"
    code = cli.run(["flower-models", "--plot=cifar_resnet20", f"--out={out}"])
    missing = cli.plot_dependencies_missing()
    if missing:
        assert code == 1
        assert "graphviz" in capsys.readouterr().err.lower()
    else:
        assert code == 0 and out.exists()
