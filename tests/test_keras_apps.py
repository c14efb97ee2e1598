"""The Keras Applications models (vgg16, vgg19, resnet50, inception_v3): their preprocessing
against Keras's own functions on real images, their weight files against Keras's own
loader, their layers, the engine on their graphs, and the Caffe VGG-16 against OpenCV.

The preprocessing oracle is Keras itself: `keras.utils.load_img(path, target_size=...)`,
`img_to_array` and `keras.applications.<model>.preprocess_input`, what the authors' net.py
calls. The weight-file oracle is Keras's `model.load_weights` on the same legacy HDF5 file
(the path keras.applications takes with its downloaded files). The Caffe VGG-16 oracle is
OpenCV's Caffe importer, reading the packaged prototxt and a synthetic .caffemodel.
"""

import h5py
import keras
import numpy as np
import pytest

from replication import data
from replication.errors import ReplicationError
from replication.models import keras_apps
from replication.models.groups import weight_groups
from replication.models.keras_apps import (
    APPLICATIONS,
    build_keras_application,
    load_keras_weights,
    synthetic_keras_arrays,
    write_keras_weights,
    write_synthetic_keras_weights,
)
from replication.models.registry import create_model, get_model_spec
from replication.run.scoring import scores_model

N_IMAGES = 64  # real images for the bit-for-bit preprocessing checks
N_ORACLE = 16  # real images through the Caffe VGG-16 (15.5 GMAC each)
VGG16_LAYERS = (
    "block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2", "block3_conv1", "block3_conv2",
    "block3_conv3", "block4_conv1", "block4_conv2", "block4_conv3", "block5_conv1", "block5_conv2",
    "block5_conv3", "fc1", "fc2", "predictions",
)  # fmt: skip


@pytest.fixture(scope="module")
def subset(val_subset):
    return data.find_dataset(val_subset, limit=N_IMAGES)


def keras_recipe(paths, size, preprocess_input) -> np.ndarray:
    """The authors' net.py recipe, with Keras's own functions."""
    arrays = [keras.utils.img_to_array(keras.utils.load_img(str(p), target_size=(size, size))) for p in paths]
    return preprocess_input(np.stack(arrays))


# --- preprocessing, bit for bit ----------------------------------------------------------


def test_vgg16_preprocessing_is_keras_bit_for_bit(subset):
    spec = get_model_spec("vgg16")
    prep = data.Preprocessing(**spec.preprocessing)
    assert (prep.resize, prep.crop, prep.mean, prep.resize_filter) == (224, 224, "keras_caffe", "pil_nearest")
    ours, labels = data.load_arrays(subset, prep)
    theirs = keras_recipe(subset.files, 224, keras.applications.vgg16.preprocess_input)
    assert ours.shape == theirs.shape == (N_IMAGES, 224, 224, 3) and list(labels) == list(subset.labels)
    assert ours.dtype == theirs.dtype == np.float32
    assert np.array_equal(ours, theirs), f"max difference {np.abs(ours - theirs).max()}"


def test_resnet50_preprocess_input_is_the_same_recipe(val_subset):
    """Keras's resnet50.preprocess_input is mode "caffe" too: resnet50 shares vgg16's recipe."""
    assert get_model_spec("resnet50").preprocessing == get_model_spec("vgg16").preprocessing
    few = data.find_dataset(val_subset, limit=8)
    ours, _ = data.load_arrays(few, data.Preprocessing(**get_model_spec("resnet50").preprocessing))
    assert np.array_equal(ours, keras_recipe(few.files, 224, keras.applications.resnet50.preprocess_input))


def test_inception_v3_preprocessing_is_keras_bit_for_bit(subset):
    """Keras's recipe for InceptionV3: nearest-neighbour up to 299 (the shared images are
    227), RGB scaled to [-1, 1]."""
    prep = data.Preprocessing(**get_model_spec("inception_v3").preprocessing)
    assert prep.channel_order == "RGB" and prep.resize == prep.crop == 299
    ours, _ = data.load_arrays(subset, prep)
    theirs = keras_recipe(subset.files, 299, keras.applications.inception_v3.preprocess_input)
    assert np.array_equal(ours, theirs), f"max difference {np.abs(ours - theirs).max()}"
    assert ours.min() >= -1.0 and ours.max() <= 1.0


def test_nearest_resize_really_resamples(val_subset):
    """The images are 227 x 227 and 224 drops rows and columns: a centre crop in place of
    the resize would give other arrays, so the bit-for-bit checks above do see the resize."""
    few = data.find_dataset(val_subset, limit=2)
    resized, _ = data.load_arrays(few, data.Preprocessing(**get_model_spec("vgg16").preprocessing))
    cropped, _ = data.load_arrays(few, data.Preprocessing(resize=227, crop=224, mean="keras_caffe"))
    assert not np.array_equal(resized, cropped)


# --- the models --------------------------------------------------------------------------


def test_vgg16_layers_are_the_papers_and_logits_are_scored():
    model = create_model("vgg16")
    assert tuple(weight_groups(model)) == VGG16_LAYERS
    assert model.get_layer("prob").__class__.__name__ == "Softmax"
    assert model.get_layer("predictions").activation is keras.activations.linear
    logits_model = scores_model(model)
    assert logits_model.output.shape == (None, 1000)
    assert logits_model.layers[-1].name == "predictions"


@pytest.mark.parametrize(
    ("name", "shape", "groups", "first", "penultimate"),
    [
        ("vgg19", None, 19, "block1_conv1", "fc2"),
        ("resnet50", (64, 64, 3), 54, "conv1_conv", "conv5_block3_3_conv"),
        ("inception_v3", (96, 96, 3), 95, "conv2d_1", "conv2d_94"),
    ],
)
def test_every_conv_and_dense_layer_is_a_group(name, shape, groups, first, penultimate):
    model = build_keras_application(name, shape)
    names = list(weight_groups(model))
    assert len(names) == groups and names[0] == first and names[-2] == penultimate and names[-1] == "predictions"
    batch_norm = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert not set(names) & {layer.name for layer in batch_norm}  # never perturbed
    if name != "vgg19":
        assert len(batch_norm) == groups - 1


def test_automatic_names_do_not_depend_on_earlier_models():
    first = build_keras_application("inception_v3", (96, 96, 3))
    second = build_keras_application("inception_v3", (96, 96, 3))
    assert [layer.name for layer in first.layers] == [layer.name for layer in second.layers]
    assert list(weight_groups(second))[:3] == ["conv2d_1", "conv2d_2", "conv2d_3"]
    assert second.get_layer("batch_normalization_94") is not None


# --- the weight files --------------------------------------------------------------------


@pytest.mark.parametrize(("name", "shape"), [("vgg16", (32, 32, 3)), ("resnet50", (32, 32, 3)),
                                             ("inception_v3", (75, 75, 3))])
def test_our_loader_sets_what_keras_load_weights_sets(name, shape, tmp_path):
    path = tmp_path / "weights.h5"
    model = build_keras_application(name, shape)
    write_keras_weights(path, model, synthetic_keras_arrays(model, seed=1), net_name="test")
    ours = load_keras_weights(build_keras_application(name, shape), path)
    keras_own = build_keras_application(name, shape)
    keras_own.load_weights(str(path))  # Keras's legacy HDF5 loader, as keras.applications uses it
    assert all(np.array_equal(a, b) for a, b in zip(ours.get_weights(), keras_own.get_weights()))
    assert any(np.abs(w).max() > 0 for w in ours.get_weights())
    with h5py.File(path, "r") as f:  # the layout: every layer listed, Keras 2's weight names
        assert len(f.attrs["layer_names"]) == len(model.layers)
        first = f[next(la for la in model.layers if la.weights).name].attrs["weight_names"][0]
        assert (first.decode() if isinstance(first, bytes) else first).endswith("/kernel:0")


def test_synthetic_real_shape_vgg16_file(tmp_path, capsys):
    path = tmp_path / "synthetic_vgg16.h5"
    write_synthetic_keras_weights(path, "vgg16", seed=0)
    model = create_model("vgg16", path)
    assert "note:" not in capsys.readouterr().err  # a synthetic file says what it is itself
    from replication.models.synthetic import synthetic_note

    assert "chance by design" in synthetic_note(path)
    fc1 = model.get_layer("fc1").get_weights()[0]
    assert fc1.shape == (25088, 4096) and 0.5 < fc1.std() * np.sqrt(25088 / 2) < 2.0


def test_published_file_names_must_have_keras_md5(tmp_path):
    small = build_keras_application("vgg16", (32, 32, 3))
    impostor = tmp_path / APPLICATIONS["vgg16"].weights_file
    write_keras_weights(impostor, small)
    with pytest.raises(ReplicationError, match="md5 .*Keras publishes 64373286793e3c8b2b4e3219cbf3544b"):
        load_keras_weights(build_keras_application("vgg16", (32, 32, 3)), impostor)


def test_another_file_that_fits_loads_with_a_note(tmp_path, capsys):
    model = build_keras_application("vgg16", (32, 32, 3))
    path = tmp_path / "fine_tuned.h5"
    write_keras_weights(path, model, synthetic_keras_arrays(model, seed=2))
    load_keras_weights(build_keras_application("vgg16", (32, 32, 3)), path)
    assert "not Keras's published VGG-16 weight file" in capsys.readouterr().err


def test_files_that_do_not_fit_are_refused(tmp_path):
    small = build_keras_application("vgg16", (32, 32, 3))
    other_size = tmp_path / "vgg16_at_32.h5"
    write_keras_weights(other_size, small)
    with pytest.raises(ReplicationError, match="'fc1'.*needs"):
        load_keras_weights(build_keras_application("vgg16", (64, 64, 3)), other_size)
    vgg19 = tmp_path / "vgg19.h5"
    write_keras_weights(vgg19, build_keras_application("vgg19", (32, 32, 3)))
    with pytest.raises(ReplicationError, match="19 layers with weights, but VGG-16 has 16"):
        load_keras_weights(small, vgg19)
    with pytest.raises(ReplicationError, match="no such weight file"):
        load_keras_weights(small, tmp_path / "missing.h5")
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(other_size.read_bytes()[:4096])
    with pytest.raises(ReplicationError):
        load_keras_weights(small, truncated)


def test_a_keras_applications_file_is_refused_by_caffe_models(tmp_path):
    path = tmp_path / "vgg.h5"
    write_keras_weights(path, build_keras_application("vgg16", (32, 32, 3)))
    with pytest.raises(ReplicationError, match="vgg16"):
        create_model("alexnet", path)


# --- the engine on their graphs ----------------------------------------------------------


@pytest.mark.parametrize(("name", "shape", "layers"), [
    ("resnet50", (48, 48, 3), ("conv2_block1_0_conv", "conv3_block2_2_conv", "predictions")),
    ("inception_v3", (80, 80, 3), ("conv2d_5", "conv2d_40", "predictions")),
])
def test_optimised_engine_counts_what_the_whole_model_counts(name, shape, layers, tmp_path):
    """Shortcut additions (ResNet) and concatenations (Inception) around the cut."""
    from replication.perturb.trials import Trial
    from replication.run.engine import run_layers

    model = build_keras_application(name, shape)
    for layer, arrays in zip((la for la in model.layers if la.weights), synthetic_keras_arrays(model, seed=3)):
        layer.set_weights(arrays)
    rng = np.random.default_rng(0)
    images = rng.normal(0.0, 1.0, (12, *shape)).astype(np.float32)
    # The unperturbed network's own top-1 as labels: every image counts before any
    # perturbation, so the counts compared below are not all zero.
    labels = scores_model(model).predict(images, verbose=0).argmax(axis=1)
    groups = [g for g in weight_groups(model).values() if g.name in layers]
    trials = [Trial(g.name, "gaussian", level, 0) for g in groups for level in (0.5, 2.0)]
    before = [w.copy() for w in model.get_weights()]
    results = {}
    for mode in ("optimised", "decoded"):
        rows = run_layers(model, images, labels, groups, trials, "test:0", batch_size=4, mode=mode)
        results[mode] = {t.key: (top1, top5) for t, top1, top5, _ in rows}
    assert results["optimised"] == results["decoded"] and len(results["decoded"]) == len(trials)
    top1 = [counts[0] for counts in results["decoded"].values()]
    assert max(top1) > 0 and min(top1) < len(labels)  # the perturbations change the outcome
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


# --- the Caffe VGG-16 against OpenCV -----------------------------------------------------


@pytest.mark.slow
def test_caffe_vgg16_computes_what_opencv_computes(cv2, val_subset, tmp_path):
    """The packaged deploy prototxt with a synthetic .caffemodel of VGG-16's real shapes:
    converted and loaded, its fc8 is OpenCV's within 1e-4 of max |fc8| and its top-5 sets
    are OpenCV's, on real images."""
    from replication.caffe.convert import convert_caffemodel
    from replication.models.vgg16_caffe import VGG16_PROTOTXT, write_synthetic_vgg16

    caffemodel, h5 = tmp_path / "synthetic_vgg16.caffemodel", tmp_path / "synthetic_vgg16.h5"
    write_synthetic_vgg16(caffemodel, seed=0)
    convert_caffemodel(caffemodel, h5, prototxt=VGG16_PROTOTXT, progress=False)
    model = scores_model(create_model(str(VGG16_PROTOTXT), h5))
    cv_net = cv2.dnn.readNetFromCaffe(str(VGG16_PROTOTXT), str(caffemodel))
    if hasattr(cv_net, "enableWinograd"):
        # OpenCV's Winograd 3x3 convolutions round differently: through VGG's 13 layers they
        # alone put fc8 7e-5 (of max |fc8|) from a plain float32 convolution.
        cv_net.enableWinograd(False)
    lines = (val_subset / "val.txt").read_text().split()[: 2 * N_ORACLE]
    images = [cv2.imread(str(val_subset / "images" / name)) for name in lines[0::2]]
    blob = cv2.dnn.blobFromImages(images, 1.0, (224, 224), (103.939, 116.779, 123.68), swapRB=False, crop=False)
    cv_net.setInput(blob)
    theirs = cv_net.forward("fc8").reshape(N_ORACLE, -1)
    ours = model.predict(blob.transpose(0, 2, 3, 1), batch_size=8, verbose=0)
    error = float(np.abs(ours - theirs).max() / np.abs(theirs).max())
    top5_ours, top5_theirs = np.argsort(-ours, 1)[:, :5], np.argsort(-theirs, 1)[:, :5]
    agree = sum(set(a) == set(b) for a, b in zip(top5_ours, top5_theirs))
    print(f"\nCaffe VGG-16 vs OpenCV: max |fc8 diff| {error:.2e} of max |fc8| {np.abs(theirs).max():.4g}; "
          f"top-5 sets agree on {agree}/{N_ORACLE} images")
    assert error <= 1e-4
    assert agree == N_ORACLE
    assert len(set(theirs.argmax(1))) >= N_ORACLE // 4  # the logits depend on the image


def test_keras_apps_module_registers_the_four_models():
    assert set(keras_apps.APPLICATIONS) == {"vgg16", "vgg19", "resnet50", "inception_v3"}
    for name, app in keras_apps.APPLICATIONS.items():
        spec = get_model_spec(name)
        assert spec.weights_format == "keras_applications" and spec.zoo_file + ".h5" == app.weights_file
