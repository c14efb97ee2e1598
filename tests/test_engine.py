"""The optimised engine (prefix cache, memory-bounded chunks, knocked-out output units,
one stream per device) counts exactly what the whole model counts for every trial."""

import hashlib
import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from replication import data
from replication.arrays import ALIGNMENT, aligned_empty
from replication.caffe.convert import convert_caffemodel
from replication.caffe.hdf5 import CaffeBlobs
from replication.models.alexnet import build_alexnet
from replication.models.groups import group_layers, weight_groups
from replication.models.registry import create_model
from replication.models.synthetic import synthetic_alexnet_net
from replication.models.weights import keras_arrays
from replication.perturb import SEMANTICS, Trial, gaussian, perturbation_names, perturbed
from replication.perturb.edits import Zero
from replication.run import engine, host
from replication.run.resident import ResidentGroup
from replication.run.scoring import scores_model

MODEL_ID = "test-engine"
PREP = data.Preprocessing(resize=227, crop=227, mean="pixel")  # the shared images are 227 x 227 already
BATCH = 8


@pytest.fixture(scope="module")
def validation(val_subset):
    """32 real validation images, decoded once, and their labels."""
    return data.load_arrays(data.find_dataset(val_subset, limit=32), PREP)


@pytest.fixture(scope="module")
def images(validation):
    return validation[0]


@pytest.fixture(scope="module")
def alexnet():
    """AlexNet with the project's synthetic weights (the real ones cannot be had here)."""
    model = build_alexnet()
    net = synthetic_alexnet_net(seed=3)
    for group in weight_groups(model).values():
        caffe = net.layer(group.caffe_name)
        members = group_layers(model, group)
        for layer, arrays in zip(members, keras_arrays(group, members, CaffeBlobs(caffe.type, caffe.blobs))):
            layer.set_weights(arrays)
    return model


@pytest.fixture(scope="module")
def alexnet_labels(alexnet, images):
    # Random weights know no ImageNet: take their own unperturbed top-1 as the truth, so
    # that perturbations visibly cost accuracy.
    return np.argmax(scores_model(alexnet).predict(images, verbose=0), axis=1)


@pytest.fixture(scope="module")
def squeezenet(caffe_dir, tmp_path_factory):
    folder = caffe_dir / "squeezenet_v1.1"
    weights = tmp_path_factory.mktemp("squeezenet") / "squeezenet_v1.1.h5"
    convert_caffemodel(folder / "squeezenet_v1.1.caffemodel", weights, prototxt=folder / "deploy.prototxt", progress=False)
    return create_model(str(folder / "deploy.prototxt"), weights)


def counts(model, images, labels, groups, trials, **options):
    results = engine.run_layers(model, images, labels, groups, trials, MODEL_ID, batch_size=BATCH, **options)
    assert sorted(map(repr, (r[0] for r in results))) == sorted(map(repr, trials)), "every trial reports once"
    return {trial: (top1, top5) for trial, top1, top5, _ in results}


def grid(names, kinds=("synapse", "node"), levels=(0.5,), repeats=(0,)):
    return [Trial(n, k, level, r) for n in names for k in kinds for level in levels for r in repeats]


def weights_digest(model) -> str:
    return hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()


def as_list(values):
    return list(values) if isinstance(values, (list, tuple)) else [values]


def cached_and_whole_logits(model, group, images, trial):
    """Logits of the perturbed network through the cut (prefix computed unperturbed) and
    through the whole scores model."""
    scoring = scores_model(model)
    cut = engine.cut_before(scoring, group)
    cached = as_list(keras.Model(scoring.inputs, cut).predict(images, verbose=0))
    suffix = keras.Model(cut, scoring.outputs)
    with perturbed(model, group, trial, MODEL_ID):
        through_cut = as_list(suffix.predict(cached if len(cached) > 1 else cached[0], verbose=0))[0]
        whole = scoring.predict(images, verbose=0)
    return through_cut, whole


# --- where the cut goes ---------------------------------------------------------------------


def test_split_layer_is_cut_before_both_halves(alexnet):
    scoring = scores_model(alexnet)
    conv_2 = weight_groups(alexnet)["conv_2"]
    cut = engine.cut_before(scoring, conv_2)
    # The two channel halves of pool_1's output, one for each half of conv_2 (caching
    # pool_1's whole output instead would take as much memory and slice it every trial).
    halves = [alexnet.get_layer("conv_2_1_in").output, alexnet.get_layer("conv_2_2_in").output]
    assert len(cut) == 2 and all(c is h for c, h in zip(cut, halves))
    assert [tuple(t.shape) for t in cut] == [(None, 27, 27, 48)] * 2
    suffix = {layer.name for layer in keras.Model(cut, scoring.outputs).layers}
    assert {"conv_2_1", "conv_2_2", "dense_3"} <= suffix
    assert not {"conv_1", "pool_1", "conv_2_1_in", "conv_2_2_in"} & suffix


def test_fire_module_layer_takes_its_sibling_branch_as_input(squeezenet):
    scoring = scores_model(squeezenet)
    groups = weight_groups(squeezenet)
    cut = engine.cut_before(scoring, groups["fire3/expand3x3"])
    # The squeeze output it reads and the expand1x1 branch the concatenation joins to it.
    assert sorted(tuple(t.shape) for t in cut) == [(None, 56, 56, 16), (None, 56, 56, 64)]
    assert engine.cut_after_output_layer(scoring, groups["conv10"]) is not None
    assert engine.cut_after_output_layer(scoring, groups["fire9/expand3x3"]) is None


@pytest.mark.parametrize("name,kind", [("conv_2", "synapse"), ("conv_4", "node"), ("dense_1", "gaussian")])
def test_logits_through_the_cut_match_the_whole_model(alexnet, images, name, kind):
    through_cut, whole = cached_and_whole_logits(alexnet, weight_groups(alexnet)[name], images, Trial(name, kind, 0.5, 0))
    np.testing.assert_allclose(through_cut, whole, rtol=1e-4, atol=1e-4 * np.abs(whole).max())


def test_logits_through_a_fire_module_cut_match_the_whole_model(squeezenet, validation):
    group = weight_groups(squeezenet)["fire3/expand3x3"]
    through_cut, whole = cached_and_whole_logits(squeezenet, group, validation[0], Trial(group.name, "synapse", 0.5, 0))
    np.testing.assert_allclose(through_cut, whole, rtol=1e-4, atol=1e-4 * np.abs(whole).max())


# --- batches into TensorFlow -------------------------------------------------------------------


def test_an_aligned_batch_is_shared_with_tensorflow_and_never_written(images):
    """load_arrays aligns its images so that a batch reaches TensorFlow without a copy; the
    network's ops then read the array itself and must not write into it. Read-only,
    float64, unaligned and strided batches are copied; either way the tensor holds the same
    values."""
    if not host.share_host_arrays():
        pytest.skip("with a GPU, batches are copied to it, not shared")
    import tensorflow as tf

    assert images.ctypes.data % ALIGNMENT == 0
    batch = images[:16]
    before = batch.copy()
    shared = host.to_tensor(batch)
    assert np.shares_memory(np.asarray(shared), batch)
    # Elementwise ops are those that may reuse an input's buffer for their output.
    out = tf.function(lambda x: tf.nn.relu(x * 2.0 - 1.0))(shared)
    eager = tf.nn.relu(shared * 2.0 - 1.0)
    assert np.array_equal(batch, before)
    np.testing.assert_array_equal(out.numpy(), np.maximum(before * 2.0 - 1.0, 0.0))
    np.testing.assert_array_equal(eager.numpy(), out.numpy())

    read_only = images[:16].view()
    read_only.flags.writeable = False
    float64 = aligned_empty((16, *images.shape[1:]), np.float64)
    float64[...] = images[:16]
    unaligned = images[1:9]  # an image is 227 x 227 x 3 x 4 bytes, 44 more than a multiple of 64
    strided = images[:16, ::2]
    for other in (read_only, float64, unaligned, strided):
        assert other.ctypes.data % ALIGNMENT == (0 if other is not unaligned else 44)
        copied = host.to_tensor(other)
        assert not np.shares_memory(np.asarray(copied), other)
        np.testing.assert_array_equal(copied.numpy(), other)
    assert host.to_tensor(shared) is shared


def test_drawn_masks_and_new_values_reach_tensorflow_without_a_copy(alexnet, monkeypatch):
    """The layer-sized masks (synapse knockout, node knockout's under "authors_code") and
    Gaussian noise's new values are drawn into aligned arrays, so on a host without GPUs
    `applied` shares them with TensorFlow instead of copying them; applying and restoring
    writes into neither the edits nor the originals, also when the variable is updated in
    place within the block."""
    if not host.share_host_arrays():
        pytest.skip("with a GPU, edits are copied to it, not shared")
    import tensorflow as tf

    from replication.run import resident as resident_module

    handed = []  # (array, whether its tensor shares its memory), for every array `applied` hands over

    def spy(values):
        tensor = host.to_tensor(values)
        handed.append((values, np.shares_memory(np.asarray(tensor), values)))
        return tensor

    monkeypatch.setattr(resident_module, "to_tensor", spy)
    group = weight_groups(alexnet)["dense_2"]
    kernel = alexnet.get_layer("dense_2").kernel
    for semantics, kind, repeat in [("paper", "synapse", 0), ("paper", "synapse", 1), ("authors_code", "node", 0),
                                    ("paper", "gaussian", 0), ("paper", "gaussian", 1)]:
        resident = ResidentGroup(alexnet, group, MODEL_ID, semantics)
        with resident.held():
            clean = originals_bytes(resident)
            edits = resident.draw(Trial("dense_2", kind, 0.5, repeat))
            kept = [e.where.copy() if isinstance(e, Zero) else e.copy() for e in edits]
            handed.clear()
            with resident.applied(edits):
                if kind == "gaussian":
                    np.testing.assert_array_equal(kernel.numpy(), edits[0])
                else:
                    expected = np.where(edits[0].where, np.float32(0), resident.originals[0][0])
                    np.testing.assert_array_equal(kernel.numpy(), expected)
                kernel.assign_add(tf.ones_like(kernel))  # an update in place writes the variable, not the edit
            big = [(values, shared) for values, shared in handed if values.size == kernel.shape.num_elements()]
            assert len(big) == 1 and big[0][1], (semantics, kind, "the kernel's edit was copied")
            assert big[0][0].ctypes.data % ALIGNMENT == 0
            for edit, before in zip(edits, kept):
                np.testing.assert_array_equal(edit.where if isinstance(edit, Zero) else edit, before)
            assert originals_bytes(resident) == clean


# --- same counts as the whole model -----------------------------------------------------------


def test_alexnet_counts_equal_the_uncached_path(alexnet, images, alexnet_labels):
    trials = grid(["conv_2", "dense_1", "dense_3"], levels=(0.3, 0.7)) + grid(["dense_3"], kinds=("gaussian",), levels=(1.0,))
    before = weights_digest(alexnet)
    optimised = counts(alexnet, images, alexnet_labels, weight_groups(alexnet), trials)
    assert weights_digest(alexnet) == before
    assert optimised == counts(alexnet, images, alexnet_labels, weight_groups(alexnet), trials, mode="decoded")
    assert len(set(optimised.values())) > 3, "the trials should not all score alike"
    assert min(top1 for top1, _ in optimised.values()) < len(images)


def test_squeezenet_counts_equal_the_uncached_path(squeezenet, validation):
    images, labels = validation
    groups = weight_groups(squeezenet)
    trials = grid(["fire2/squeeze1x1", "fire3/expand1x1", "fire3/expand3x3", "conv10"], levels=(0.5, 0.9))
    optimised = counts(squeezenet, images, labels, groups, trials)
    assert optimised == counts(squeezenet, images, labels, groups, trials, mode="decoded")
    assert len(set(optimised.values())) > 3


def test_knocked_out_output_units_are_exactly_zero_logits(alexnet, images):
    dense_3 = weight_groups(alexnet)["dense_3"]
    trial = Trial("dense_3", "node", 0.3, 1)
    units = engine.zeroed_units(alexnet, dense_3, trial, MODEL_ID)
    assert units is not None and len(units) == 300
    scoring = scores_model(alexnet)
    unperturbed = scoring.predict(images, verbose=0)
    with perturbed(alexnet, dense_3, trial, MODEL_ID):
        knocked = scoring.predict(images, verbose=0)
    assert np.all(knocked[:, units] == 0)
    kept = np.setdiff1d(np.arange(1000), units)
    np.testing.assert_allclose(knocked[:, kept], unperturbed[:, kept], rtol=1e-5, atol=1e-5)


def test_the_output_shortcut_is_taken_only_for_whole_unit_knockout(alexnet):
    dense_3 = weight_groups(alexnet)["dense_3"]
    assert engine.zeroed_units(alexnet, dense_3, Trial("dense_3", "synapse", 0.3, 0), MODEL_ID) is None
    assert engine.zeroed_units(alexnet, dense_3, Trial("dense_3", "gaussian", 1.0, 0), MODEL_ID) is None
    # The authors' code also zeroes dense_3's input rows: other logits change too.
    authors = Trial("dense_3", "node", 0.3, 0)
    assert engine.zeroed_units(alexnet, dense_3, authors, MODEL_ID, semantics="authors_code") is None
    assert engine.zeroed_units(alexnet, dense_3, authors, MODEL_ID, semantics="paper") is not None


def test_authors_code_semantics_counts_equal_the_uncached_path(alexnet, images, alexnet_labels):
    trials = grid(["conv_2", "dense_3"], kinds=("node",), levels=(0.5,))
    groups = weight_groups(alexnet)
    optimised = counts(alexnet, images, alexnet_labels, groups, trials, semantics="authors_code")
    assert optimised == counts(alexnet, images, alexnet_labels, groups, trials, semantics="authors_code", mode="decoded")


def test_naive_mode_decodes_again_and_counts_the_same(alexnet, val_subset, images, alexnet_labels):
    import tensorflow as tf

    # The synthetic net's labels are its own predictions: pair them with freshly decoded images.
    decoded = data.tf_dataset(data.find_dataset(val_subset, limit=32), PREP, batch_size=BATCH).map(lambda x, y: x)
    dataset = tf.data.Dataset.zip((decoded, tf.data.Dataset.from_tensor_slices(alexnet_labels).batch(BATCH)))
    groups = weight_groups(alexnet)
    trials = grid(["conv_5"], levels=(0.5,))
    naive = engine.run_layers(alexnet, dataset, None, groups, trials, MODEL_ID, batch_size=BATCH, mode="naive")
    assert {t: (a, b) for t, a, b, _ in naive} == counts(alexnet, images, alexnet_labels, groups, trials, mode="decoded")


# --- bounded memory ----------------------------------------------------------------------------


def test_chunks_regenerate_each_trial_and_count_the_same(alexnet, images, alexnet_labels, monkeypatch):
    groups = weight_groups(alexnet)
    trials = grid(["conv_2", "dense_2", "dense_3"], levels=(0.5,), repeats=(0, 1))
    in_memory = counts(alexnet, images, alexnet_labels, groups, trials)

    calls = []
    real, real_draw = engine.perturbed, ResidentGroup.draw

    def counting(model, group, trial, *args, **kwargs):
        calls.append(trial)
        return real(model, group, trial, *args, **kwargs)

    def counting_draw(self, trial):
        calls.append(trial)
        return real_draw(self, trial)

    monkeypatch.setattr(ResidentGroup, "draw", counting_draw)
    monkeypatch.setattr(engine, "perturbed", counting)
    # Room for the images plus about 8 images' worth of conv_2 activations (280 kB each).
    tiny = (images.nbytes + 8 * 27 * 27 * 96 * 4 + 1000) / 2**30
    chunked = counts(alexnet, images, alexnet_labels, groups, trials, memory_gb=tiny)
    assert chunked == in_memory
    chunks = len(images) // BATCH  # 32 images in chunks of 8
    for trial in trials:
        # Weights are drawn again for every chunk, dense_3's too: its knocked-out-units
        # shortcut is read from the same draw.
        assert calls.count(trial) == chunks, trial


def test_the_baseline_is_scored_on_the_cache_and_every_prefix_runs_once(alexnet, images, alexnet_labels):
    import collections

    groups = weight_groups(alexnet)
    whole = engine.count_unperturbed(alexnet, images, alexnet_labels, BATCH)
    baseline = Trial("-", "none", 0.0, 0)
    for names in (["dense_1"], ["conv_2", "dense_1"], ["dense_3"], ["conv_4", "dense_3"]):
        trials = grid(names, levels=(0.5,))
        counters = collections.Counter()
        results = engine.run_layers(alexnet, images, alexnet_labels, [groups[n] for n in names], trials, MODEL_ID,
                                    batch_size=BATCH, baseline=baseline, counters=counters)
        scored = {t: (a, b) for t, a, b, _ in results}
        assert scored.pop(baseline) == whole, names
        assert scored == counts(alexnet, images, alexnet_labels, groups, trials, mode="decoded"), names
        assert counters["prefix_passes"] == len(names), "one pass per distinct cut"
        assert counters["whole_model_passes"] == 0
        assert counters["draws"] == len(trials)
    # With the cached activations in chunks: still one pass per cut, the same counts.
    counters = collections.Counter()
    tiny = (images.nbytes + 8 * 27 * 27 * 96 * 4) / 2**30
    results = engine.run_layers(alexnet, images, alexnet_labels, [groups["conv_2"]], grid(["conv_2"]), MODEL_ID,
                                batch_size=BATCH, baseline=baseline, counters=counters, memory_gb=tiny)
    assert {t: (a, b) for t, a, b, _ in results}[baseline] == whole
    assert counters["prefix_passes"] == 1 and counters["draws"] == 2 * len(images) // BATCH


def test_output_layer_trials_are_drawn_once(alexnet, images, alexnet_labels, monkeypatch):
    import collections

    trials = grid(["dense_3"], kinds=("synapse", "node", "gaussian"), levels=(0.3, 1.0))
    groups = weight_groups(alexnet)
    expected = counts(alexnet, images, alexnet_labels, groups, trials, mode="decoded")
    drawn, shortcut = [], []
    real_draw, real_zeroed = ResidentGroup.draw, ResidentGroup.zeroed_units

    def draw(self, trial):
        drawn.append(trial)
        return real_draw(self, trial)

    def zeroed(self, edits):
        units = real_zeroed(self, edits)
        shortcut.append(units is not None)
        return units

    def no_host_path(*args, **kwargs):
        raise AssertionError("the optimised mode drew a trial on the host path")

    monkeypatch.setattr(ResidentGroup, "draw", draw)
    monkeypatch.setattr(ResidentGroup, "zeroed_units", zeroed)
    monkeypatch.setattr(engine, "perturbed", no_host_path)
    counters = collections.Counter()
    assert counts(alexnet, images, alexnet_labels, groups, trials, counters=counters) == expected
    assert sorted(map(repr, drawn)) == sorted(map(repr, trials)), "every trial drawn exactly once"
    assert counters["draws:dense_3"] == len(trials)
    # Whole units zeroed (node knockout, and synapse knockout of every synapse) take the
    # shortcut; synapse knockout of some synapses and noise do not.
    assert shortcut == [False, True, True, True, False, False]


# --- perturbations drawn on the host, applied on the device ------------------------------------


def test_resident_group_applies_what_perturbed_applies_and_restores_every_bit(alexnet, monkeypatch):
    dense_2 = alexnet.get_layer("dense_2")
    saved = dense_2.get_weights()
    w, b = (a.copy() for a in saved)
    w[0, :3], b[:2] = -0.0, -0.0  # a -0.0 that a knockout leaves alone must stay -0.0
    dense_2.set_weights([w, b])
    try:
        check_resident_groups(alexnet, monkeypatch)
    finally:
        dense_2.set_weights(saved)


def group_digest(model, group) -> str:
    """The digest of one group's arrays: what a trial of that group may change."""
    arrays = [w for member in group.members for w in model.get_layer(member).get_weights()]
    return hashlib.sha256(b"".join(w.tobytes() for w in arrays)).hexdigest()


def originals_bytes(resident) -> bytes:
    """The bytes of the originals a ResidentGroup holds, in the order of its variables."""
    return b"".join(a.tobytes() for member in resident.originals for a in member)


def check_resident_groups(alexnet, monkeypatch):
    whole = weights_digest(alexnet)
    groups = weight_groups(alexnet)
    cases = [(name, kind, level, semantics) for name in ("conv_2", "dense_2") for kind in perturbation_names()
             for level in (0.0, 0.5) for semantics in SEMANTICS]
    cases.append(("dense_1", "node", 0.5, "authors_code"))  # its input rows are found through row_order
    for name, kind, level, semantics in cases:
        group = groups[name]
        clean = group_digest(alexnet, group)
        resident = ResidentGroup(alexnet, group, MODEL_ID, semantics)
        trial = Trial(name, kind, level, 1)
        with perturbed(alexnet, group, trial, MODEL_ID, semantics):
            expected = group_digest(alexnet, group)
        assert (expected == clean) == (level == 0), (name, kind, level, semantics)
        with resident.held():
            held = originals_bytes(resident)
            assert hashlib.sha256(held).hexdigest() == clean
            with resident.applied(resident.draw(trial)):
                assert group_digest(alexnet, group) == expected, (name, kind, level, semantics)
                # The originals are a snapshot of the variables, not a copy: the trial's
                # values in the variables did not reach them.
                assert originals_bytes(resident) == held
            assert group_digest(alexnet, group) == clean
            with resident.applied(resident.draw(trial)):  # drawn again from the same originals
                assert group_digest(alexnet, group) == expected, (name, kind, level, semantics)
            assert group_digest(alexnet, group) == clean
            with pytest.raises(RuntimeError, match="block failed"):
                with resident.applied(resident.draw(trial)):
                    raise RuntimeError("block failed")
            assert group_digest(alexnet, group) == clean
    # Every case touched its own group only, and left every bit of the whole model as it was.
    assert weights_digest(alexnet) == whole
    edits = ResidentGroup(alexnet, groups["dense_2"], MODEL_ID)
    with edits.held():
        node = edits.draw(Trial("dense_2", "node", 0.5, 0))
        # The originals are views of the snapshot, vouched unchanging: σ is computed once.
        gaussian_sigmas = []
        real = gaussian._population_std
        monkeypatch.setattr(gaussian, "_population_std", lambda arrays: gaussian_sigmas.append(1) or real(arrays))
        edits.draw(Trial("dense_2", "gaussian", 0.5, 0))
        first = len(gaussian_sigmas)
        for repeat in (1, 2):
            edits.draw(Trial("dense_2", "gaussian", 0.5, repeat))
        assert first >= 1 and len(gaussian_sigmas) == first
    assert all(isinstance(e, Zero) for e in node) and node[0].where.shape == (4096,), "one flag per unit"


@pytest.mark.parametrize("threads", [1, 3])
def test_the_next_trials_draw_runs_while_this_trial_runs(alexnet, images, alexnet_labels, monkeypatch, threads):
    import threading

    monkeypatch.setattr(engine, "draw_threads", lambda: threads)
    trials = grid(["dense_2"], kinds=("synapse", "gaussian"), levels=(0.5,), repeats=(0, 1, 2))
    second_drawn, overlapped, names = threading.Event(), [], set()
    real_draw, real_applied = ResidentGroup.draw, ResidentGroup.applied

    def draw(self, trial):
        names.add(threading.current_thread().name)
        if trial == trials[1]:
            second_drawn.set()
        return real_draw(self, trial)

    def applied(self, edits):
        if not overlapped:  # the first trial: its successor's draw must start meanwhile
            overlapped.append(second_drawn.wait(timeout=60))
        return real_applied(self, edits)

    monkeypatch.setattr(ResidentGroup, "draw", draw)
    monkeypatch.setattr(ResidentGroup, "applied", applied)
    groups = weight_groups(alexnet)
    assert counts(alexnet, images, alexnet_labels, groups, trials) == counts(
        alexnet, images, alexnet_labels, groups, trials, mode="decoded")
    assert overlapped == [True]
    assert names and threading.current_thread().name not in names
    assert len(names) <= threads


def test_a_failed_draw_stops_the_run_and_leaves_the_weights_as_they_were(alexnet, images, alexnet_labels, monkeypatch):
    trials = grid(["conv_3"], kinds=("synapse",), levels=(0.5,), repeats=(0, 1, 2))
    real_draw = ResidentGroup.draw

    def draw(self, trial):
        if trial == trials[1]:
            raise ValueError("this draw failed")
        return real_draw(self, trial)

    monkeypatch.setattr(ResidentGroup, "draw", draw)
    before, reported = weights_digest(alexnet), []
    with pytest.raises(ValueError, match="this draw failed"):
        engine.run_layers(alexnet, images, alexnet_labels, weight_groups(alexnet), trials, MODEL_ID,
                          batch_size=BATCH, on_result=lambda trial, *_: reported.append(trial))
    assert reported == trials[:1]
    assert weights_digest(alexnet) == before


def test_a_failed_trial_stops_the_run_cancels_queued_draws_and_restores_the_weights(
        alexnet, images, alexnet_labels, monkeypatch):
    monkeypatch.setattr(engine, "draw_threads", lambda: 4)
    trials = grid(["dense_2"], kinds=("synapse",), levels=(0.5,), repeats=range(10))
    real_count, real_draw, runs, drawn = engine._count, ResidentGroup.draw, [], []

    def count(scores_of, batches):
        runs.append(1)
        if len(runs) == 2:
            raise RuntimeError("this trial failed")
        return real_count(scores_of, batches)

    def draw(self, trial):
        drawn.append(trial)
        return real_draw(self, trial)

    monkeypatch.setattr(engine, "_count", count)
    monkeypatch.setattr(ResidentGroup, "draw", draw)
    before = weights_digest(alexnet)
    with pytest.raises(RuntimeError, match="this trial failed"):
        engine.run_layers(alexnet, images, alexnet_labels, weight_groups(alexnet), trials, MODEL_ID, batch_size=BATCH)
    assert weights_digest(alexnet) == before, "the failed trial's weights were put back"
    assert len(drawn) < len(trials), "queued draws were cancelled, not run"


# --- several devices -------------------------------------------------------------------------

_TWO_DEVICES = textwrap.dedent(
    """
    import json, threading
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from replication.run import engine
    from replication.run.scoring import scores_model
    from replication.models.groups import weight_groups
    from replication.models.alexnet import build_alexnet
    from replication.perturb import Trial

    model = build_alexnet(image_size=67)  # small images keep this quick
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, np.sqrt(2 / np.prod(w.shape[:-1])), w.shape).astype("float32")
                       for w in model.get_weights()])
    images = rng.normal(0, 50, (24, 67, 67, 3)).astype("float32")
    labels = np.argmax(scores_model(model).predict(images, verbose=0), axis=1)
    groups = weight_groups(model)
    trials = [Trial(n, k, 0.5, r) for n in ("conv_2", "dense_1", "dense_3") for k in ("synapse", "node") for r in (0, 1)]
    threads = set()
    def seen(*_):
        threads.add(threading.current_thread().name)
    one = engine.run_layers(model, images, labels, groups, trials, "x", batch_size=8)
    two = engine.run_layers(model, images, labels, groups, trials, "x", batch_size=8,
                            devices=["/CPU:0", "/CPU:1"], on_result=seen)
    key = lambda results: sorted((repr(t), a, b) for t, a, b, _ in results)
    print(json.dumps({"same": key(one) == key(two), "threads": len(threads), "trials": len(two),
                      "distinct": len({(a, b) for _, a, b, _ in one})}))
    """
)


def test_one_trial_stream_per_device_counts_the_same():
    done = subprocess.run([sys.executable, "-c", _TWO_DEVICES], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome == {"same": True, "threads": 2, "trials": 12, "distinct": outcome["distinct"]}
    assert outcome["distinct"] > 2
