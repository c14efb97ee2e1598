"""The authors' AlexNet (heuritech's convnets-keras, registered as convnets_keras) against an
independent NumPy forward pass, its preprocessing against PIL, and its weight file's refusals.

A synthetic weight file in exactly Keras 1's save_weights layout (random weights of the real
shapes, every layer listed, weightless ones with empty weight_names) is loaded into the Keras
3 model. The oracle below is written from the facts of heuritech's code, not from this
project's layers: channels-first, true convolution (Theano flips the kernels), pooling
before a LRN with k = 2 and alpha not divided by n, zero padding, channels-first flatten
into dense_1, all in float64.
"""

import csv

import h5py
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from replication import data
from replication.commands.common import preprocessing, run_cli
from replication.commands.figure import parse_figure_args
from replication.errors import ReplicationError
from replication.models.convnets_keras import KERAS1_SHAPES, synthetic_keras1_weights
from replication.models.keras1 import KERAS0, KERAS1, keras_layout, load_keras1_weights, write_keras1_weights
from replication.models.registry import create_model
from replication.run.scoring import scores_model

N_IMAGES = 16
TOLERANCE = 1e-4  # of max |logit|
MEAN_RGB = (123.68, 116.779, 103.939)
RECIPE = data.Preprocessing(resize=256, crop=227, mean="rgb_pixel", resize_filter="pil_bilinear")


# --- the independent oracle --------------------------------------------------------------


def authors_input(path) -> np.ndarray:
    """The recipe as heuritech's preprocess_image_batch states it: RGB, imresize to 256 x 256
    (PIL bilinear on uint8), float32 minus the RGB mean pixel, channels first, centre 227."""
    rgb = np.asarray(Image.open(path).convert("RGB"))
    resized = np.asarray(Image.fromarray(rgb).resize((256, 256), Image.Resampling.BILINEAR))
    image = resized.astype(np.float32)
    for channel, mean in enumerate(MEAN_RGB):
        image[:, :, channel] -= mean  # float32 arithmetic, as NumPy does it in place
    start = (256 - 227) // 2
    return image.transpose(2, 0, 1)[:, start : start + 227, start : start + 227]


def true_convolution(x, w, b, stride=1, pad=0):
    """Theano's conv2d (filters flipped): x (C, H, W), w (O, C, kh, kw) -> (O, OH, OW)."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    kh, kw = w.shape[2:]
    windows = sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::stride, ::stride]  # (C, OH, OW, kh, kw)
    channels, oh, ow = windows.shape[:3]
    columns = windows.transpose(1, 2, 0, 3, 4).reshape(oh * ow, channels * kh * kw)  # im2col
    flipped = w[:, :, ::-1, ::-1].reshape(w.shape[0], -1)
    return (columns @ flipped.T + b).T.reshape(-1, oh, ow)


def two_group_convolution(x, halves, pad):
    """Input channels split in two, each half convolved with its own layer, outputs concatenated."""
    return np.concatenate([true_convolution(part, *w, pad=pad) for part, w in zip(np.split(x, 2), halves)])


def cross_channel_lrn(x, k=2.0, alpha=1e-4, beta=0.75, n=5):
    """x / (k + alpha * sum of x^2 over the n channels around each) ** beta, zeros beyond the ends."""
    squares = np.pad(x * x, ((n // 2, n // 2), (0, 0), (0, 0)))
    window = sum(squares[i : i + x.shape[0]] for i in range(n))
    return x / (k + alpha * window) ** beta


def max_pool(x, size=3, stride=2):
    return sliding_window_view(x, (size, size), axis=(1, 2))[:, ::stride, ::stride].max(axis=(3, 4))


def relu(x):
    return np.maximum(x, 0.0)


def oracle_logits(images, weights):
    """The network on channels-first images; weights: layer -> (W, b) in Keras 1 layout."""
    w = {name: tuple(a.astype(np.float64) for a in arrays) for name, arrays in weights.items() if name.startswith("conv")}
    features = []
    for image in images.astype(np.float64):
        x = relu(true_convolution(image, *w["conv_1"], stride=4))
        x = cross_channel_lrn(max_pool(x))
        x = relu(two_group_convolution(x, (w["conv_2_1"], w["conv_2_2"]), pad=2))
        x = cross_channel_lrn(max_pool(x))
        x = relu(true_convolution(x, *w["conv_3"], pad=1))
        x = relu(two_group_convolution(x, (w["conv_4_1"], w["conv_4_2"]), pad=1))
        x = relu(two_group_convolution(x, (w["conv_5_1"], w["conv_5_2"]), pad=1))
        features.append(max_pool(x).reshape(-1))  # channels-first flatten
    x = np.stack(features)
    for name in ("dense_1", "dense_2", "dense_3"):
        matrix, bias = weights[name]
        # Column blocks keep the float64 copy of dense_1's matrix small.
        x = np.concatenate(
            [x @ matrix[:, i : i + 512].astype(np.float64) for i in range(0, matrix.shape[1], 512)], axis=1
        ) + bias
        x = relu(x) if name != "dense_3" else x
    return x


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic_layers():
    return synthetic_keras1_weights(seed=0)


@pytest.fixture(scope="module")
def keras1_file(synthetic_layers, tmp_path_factory):
    path = tmp_path_factory.mktemp("convnets_keras") / "alexnet_weights.h5"
    write_keras1_weights(path, synthetic_layers)
    return path


@pytest.fixture(scope="module")
def subset(val_subset):
    return data.find_dataset(val_subset, limit=N_IMAGES)


@pytest.fixture(scope="module")
def inputs(subset):
    """The recipe's inputs for the first N_IMAGES shared images, channels first."""
    return np.stack([authors_input(f) for f in subset.files])


@pytest.fixture(scope="module")
def model(keras1_file):
    return create_model("convnets_keras", keras1_file)


# --- the network -------------------------------------------------------------------------


def test_keras_model_matches_the_numpy_oracle(model, synthetic_layers, inputs):
    weights = {name: tuple(array for _, array in arrays) for name, arrays in synthetic_layers if arrays}
    oracle = oracle_logits(inputs, weights)
    ours = scores_model(model).predict(inputs.transpose(0, 2, 3, 1), batch_size=N_IMAGES, verbose=0)
    assert ours.shape == oracle.shape == (N_IMAGES, 1000)
    relative = float(np.abs(ours - oracle).max() / np.abs(oracle).max())
    top5_ours, top5_oracle = np.argsort(-ours, axis=1)[:, :5], np.argsort(-oracle, axis=1)[:, :5]
    agree = sum(set(a) == set(b) for a, b in zip(top5_ours, top5_oracle))
    print(f"\nconvnets_keras vs NumPy: max |diff| {relative:.3g} of max |logit| {np.abs(oracle).max():.4g}; "
          f"top-5 sets agree on {agree}/{N_IMAGES} images")
    assert relative <= TOLERANCE
    assert agree == N_IMAGES
    # The comparison means something only if the outputs depend on the image.
    assert len(set(oracle.argmax(axis=1))) >= N_IMAGES // 4


def test_the_lrn_is_far_from_the_identity(synthetic_layers, inputs):
    """With these weights the LRN's sum term is comparable to k, so a wrong alpha, k or
    channel window would move the logits beyond the tolerance."""
    w = dict(synthetic_layers)["conv_1"]
    x = max_pool(relu(true_convolution(inputs[0].astype(np.float64), w[0][1], w[1][1], stride=4)))
    squares = np.pad(x * x, ((2, 2), (0, 0), (0, 0)))
    window = sum(squares[i : i + x.shape[0]] for i in range(5))
    assert np.median(1e-4 * window[x > 0]) > 0.5  # against k = 2


def test_table1_rows_are_the_papers(model, shared_data):
    from replication.analysis.table1 import weight_rows

    with open(shared_data / "paper" / "table1_published.csv", newline="") as f:
        published = [row for row in csv.DictReader(line for line in f if not line.startswith("#"))]
    rows = weight_rows(model)
    assert [name for name, _ in rows] == [row["layer"] for row in published]
    assert [array.size for _, array in rows] == [int(row["size"]) for row in published]


def test_a_sweep_runs_and_restores_the_weights(model, keras1_file, subset, inputs, tmp_path):
    from replication.run.grid import Grid
    from replication.run.sweep import run_info, run_sweep

    before = [w.copy() for w in model.get_weights()]
    grid = Grid(("conv_2", "dense_1"), "node", (0.0, 0.5), 1)
    run = run_info("convnets_keras", keras1_file, subset, RECIPE)
    table = run_sweep(model, grid, inputs.transpose(0, 2, 3, 1), subset.labels, tmp_path / "results.csv", run,
                      progress=False)
    assert sorted(zip(table["layer"], table["level"])) == [("-", 0.0), ("conv_2", 0.5), ("dense_1", 0.5)]
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


# --- preprocessing -----------------------------------------------------------------------


def test_preprocessing_is_the_recipe(subset, inputs):
    images, labels = data.load_arrays(subset, RECIPE)
    assert images.shape == (N_IMAGES, 227, 227, 3) and list(labels) == list(subset.labels)
    difference = float(np.abs(images - inputs.transpose(0, 2, 3, 1)).max())
    print(f"\npreprocessing vs PIL + mean + crop: max difference {difference:g} grey levels")
    assert difference <= 1.0


def test_preprocessing_shrinks_as_pil_does(subset, tmp_path):
    """ILSVRC images are larger than 256: PIL's shrinking bilinear filter widens with the scale."""
    files = []
    for i, source in enumerate(subset.files[:3]):
        large = Image.open(source).convert("RGB").resize((500 - 40 * i, 375 + 30 * i), Image.Resampling.BICUBIC)
        files.append(tmp_path / f"large_{i}.JPEG")
        large.save(files[-1], quality=90)
    ds = data.Dataset(files, np.zeros(len(files), np.int32), tmp_path)
    images, _ = data.load_arrays(ds, RECIPE)
    expected = np.stack([authors_input(f) for f in files]).transpose(0, 2, 3, 1)
    assert float(np.abs(images - expected).max()) <= 1.0


def test_the_recipe_has_its_own_dataset_id(subset):
    ids = {
        data.dataset_id(subset, prep)
        for prep in (RECIPE, data.Preprocessing(mean="rgb_pixel"), data.Preprocessing(mean="pixel"),
                     data.Preprocessing(mean="pixel", resize_filter="pil_bilinear"))
    }
    assert len(ids) == 4
    # The default filter adds nothing to the recipe: ids of earlier tables stay valid.
    assert data.dataset_id(subset, data.Preprocessing(mean="pixel", resize_filter="bilinear")) == data.dataset_id(
        subset, data.Preprocessing(mean="pixel")
    )


def test_the_model_brings_its_preprocessing_as_the_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = parse_figure_args(1, ["--model", "convnets_keras", "--weights", "w.h5"])
    assert preprocessing(args) == RECIPE
    args = parse_figure_args(1, ["--model", "convnets_keras", "--weights", "w.h5", "--mean", "pixel", "--crop", "224"])
    assert (args.mean, args.resize_filter, args.resize, args.crop) == ("pixel", "pil_bilinear", 256, 224)
    args = parse_figure_args(1, ["--model", "alexnet"])
    assert (args.mean, args.resize_filter, args.resize, args.crop) == ("image", "bilinear", 256, 227)
    assert args.mean_file is not None


# --- the weight file ---------------------------------------------------------------------


def refused(path, *words, model="convnets_keras"):
    with pytest.raises(ReplicationError) as error:
        create_model(model, path)
    message = str(error.value)
    assert message.startswith(f"{path}: "), message
    for word in words:
        assert word in message, message
    return message


def test_layouts_are_recognised_by_content(keras1_file, tmp_path):
    renamed = tmp_path / "weights.bin"
    renamed.symlink_to(keras1_file)
    old = tmp_path / "keras0.h5"
    with h5py.File(old, "w") as f:
        f.attrs["nb_layers"] = 1
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["format"] = "replication-caffe-hdf5"
    assert [keras_layout(p) for p in (renamed, old, other, tmp_path / "absent.h5")] == [KERAS1, KERAS0, None, None]


def test_keras0_files_are_refused(tmp_path):
    path = tmp_path / "alexnet_weights.h5"
    with h5py.File(path, "w") as f:
        f.attrs["nb_layers"] = 2
        f.create_group("layer_0").attrs["nb_params"] = 0
        group = f.create_group("layer_1")
        group.attrs["nb_params"] = 2
        group["param_0"] = np.zeros((96, 3, 11, 11), np.float32)
        group["param_1"] = np.zeros(96, np.float32)
    refused(path, "Keras 0.x", "nb_layers", "without guessing")


def test_truncated_and_foreign_files_are_refused(keras1_file, tmp_path):
    truncated = tmp_path / "truncated.h5"
    with open(keras1_file, "rb") as source, open(truncated, "wb") as target:
        target.write(source.read(keras1_file.stat().st_size // 2))
    refused(truncated, "damaged or truncated")
    noise = tmp_path / "noise.h5"
    noise.write_bytes(np.random.default_rng(0).bytes(10_000))
    refused(noise, "not an HDF5 file")
    refused(tmp_path / "absent.h5", "no such weight file")
    caffe = tmp_path / "bvlc_alexnet.h5"
    with h5py.File(caffe, "w") as f:
        f.attrs["format"] = "replication-caffe-hdf5"
    refused(caffe, "converted Caffe weight file")
    # And a Keras file given to a Caffe model.
    refused(keras1_file, "--model convnets_keras", model="alexnet")


def small_file(path, layers, **attrs):
    write_keras1_weights(path, layers)
    with h5py.File(path, "a") as f:
        f.attrs.update(attrs)
    return path


def conv_1(shape=KERAS1_SHAPES["conv_1"]):
    return ("conv_1", [("conv_1_W", np.zeros(shape, np.float32)), ("conv_1_b", np.zeros(96, np.float32))])


def test_files_that_do_not_fit_are_refused(tmp_path):
    refused(small_file(tmp_path / "keras2.h5", [conv_1()], keras_version="2.1.5"), "Keras 2.1.5")
    refused(small_file(tmp_path / "tf.h5", [conv_1()], backend="tensorflow"), "tensorflow backend")
    refused(small_file(tmp_path / "missing.h5", [("input_1", []), conv_1()]), "'conv_2_1'", "not in the file")
    refused(small_file(tmp_path / "shape.h5", [conv_1((11, 11, 3, 96))]), "conv_1_W", "(11, 11, 3, 96)", "(96, 3, 11, 11)")
    one_weight = [("conv_1", [("conv_1_W", np.zeros(KERAS1_SHAPES["conv_1"], np.float32))])]
    refused(small_file(tmp_path / "no_bias.h5", one_weight), "'conv_1' has 1 weights")
    listed_only = tmp_path / "listed.h5"
    small_file(listed_only, [conv_1()])
    with h5py.File(listed_only, "a") as f:
        del f["conv_1"]["conv_1_b"]
    refused(listed_only, "'conv_1_b'", "not in the file")


def test_layers_the_model_lacks_are_refused(tmp_path):
    import keras

    inputs = keras.Input((4,))
    tiny = keras.Model(inputs, keras.layers.Dense(3, name="d")(inputs))
    dense = [("d_W", np.ones((4, 3), np.float32)), ("d_b", np.zeros(3, np.float32))]
    path = small_file(tmp_path / "extra.h5", [("d", dense), ("e", dense)])
    with pytest.raises(ReplicationError, match="layers the model lacks: e"):
        load_keras1_weights(tiny, path)
    assert not np.any(tiny.get_weights()[0] == 1)  # nothing was set
    load_keras1_weights(tiny, small_file(tmp_path / "fits.h5", [("d", dense)]))
    assert np.all(tiny.get_weights()[0] == 1)


# --- python -m replication.convert -------------------------------------------------------


def test_convert_describes_a_keras1_file(keras1_file, tmp_path, capsys):
    import hashlib

    from replication.commands.convert import main

    out = tmp_path / "out.h5"
    assert run_cli(main, [str(keras1_file), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert hashlib.sha256(keras1_file.read_bytes()).hexdigest() in printed
    assert "no conversion needed" in printed and "--model convnets_keras" in printed
    table = {line.split()[0]: line.split() for line in printed.splitlines() if line.strip()}
    assert table["dense_1"][1:] == ["dense_1_W", "9216x4096,", "dense_1_b", "4096", "37,752,832"]
    assert table["total"][-1] == "60,965,224"
    assert not out.exists()


def test_convert_refuses_a_keras0_file(tmp_path, capsys):
    from replication.commands.convert import main

    path = tmp_path / "old.h5"
    with h5py.File(path, "w") as f:
        f.attrs["nb_layers"] = 0
    assert run_cli(main, [str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path}: ") and "Keras 0.x" in err and "\n" not in err
