"""Evaluate every trial of a sweep at little more than the cost of what each trial can
change, with the same top-1/top-5 counts as running the whole model per trial.

Three modes give the same counts and differ only in what they repeat per trial:
  "naive"      the whole model on freshly decoded images (a tf.data.Dataset read
               again for every trial), as the authors' code did;
  "decoded"    the whole model on images decoded once (`data.load_arrays`);
  "optimised"  what a trial cannot change is computed once (the frontier tensors at the
               cut before the perturbed layer, `graph.cut_before`); each trial runs only
               the network from there on. A layer's cache is computed from the previous
               layer's where the graph allows, and the unperturbed baseline is scored on
               the deepest cache of that chain, so each prefix is computed once per sweep.
               When the caches exceed the memory bound (the process's anonymous memory,
               `_memory_budget`) the images are taken in chunks, and a trial's weights are
               regenerated from its seed for every chunk.
               A layer's originals stay on the device while its trials run
               (`resident.ResidentGroup`): the next trials' draws are made on host
               threads while a trial runs, and only a trial's mask or new values cross
               to the device.
               When a trial's edits only zero whole units of a layer followed by
               parameter-free layers alone (AlexNet's dense_3), the zeroed logits are
               exactly 0 and the others are the cached unperturbed ones: no matrix product
               is needed, and the trial is still drawn once.
Every mode scores with `scoring.scores_model` and `scoring.topk_correct` on the same
batches. With several devices the trials are dealt round-robin to one stream per device,
each with its own copy of the model. docs/method.md explains each of these and why they
are exact.
"""

import collections
import functools
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction

import keras
import numpy as np
import tensorflow as tf

from replication.machine import half_the_ram_gb
from replication.models.groups import group_layers
from replication.perturb.apply import perturbed, trial_edits
from replication.perturb.edits import zeroed_units as edits_zeroed_units
from replication.run.graph import bytes_per_image, computable_from, cut_after_output_layer, cut_before
from replication.run.host import to_tensor
from replication.run.memory import MARGIN_BYTES, anonymous_bytes, batch_working_bytes, return_freed_memory
from replication.run.resident import ResidentGroup
from replication.run.scoring import scores_model, topk_correct

MODES = ("optimised", "decoded", "naive")
DRAWS_BYTES = 2 * 2**30  # host memory a host gives to trials' edits drawn ahead (see _draws_ahead)


def zeroed_units(model, group, trial, seed_scope, semantics="paper") -> np.ndarray | None:
    """Indices of the units `trial` zeroes entirely (kernel slice and bias), when that is all
    it changes in the group's single layer; None when it changes anything else
    (`perturb.edits.zeroed_units` on the trial's edits)."""
    (layer,) = group_layers(model, group)
    arrays = layer.get_weights()
    (edits,) = trial_edits([arrays], group, trial, seed_scope, semantics)
    return edits_zeroed_units(arrays, edits)


# --- compiled pieces of the network ------------------------------------------------------------


def _call_flat(model, *xs):
    return tuple(tf.nest.flatten(model(xs[0] if len(xs) == 1 else list(xs), training=False)))


def _compiled(model: keras.Model):
    """`model` as one function of its flat inputs returning its flat outputs, traced once
    (batch size left open) rather than per batch or per trial."""
    specs = [tf.TensorSpec(t.shape, t.dtype) for t in model.inputs]
    # A partial rather than a closure: TensorFlow tallies traces by Python code object and
    # would warn that these functions, each traced once, are "retracing". No autograph: a
    # Keras model's call has no Python control flow on tensors to convert, and starting
    # autograph and converting the wrapper costs the first trace of a process time for
    # nothing.
    return tf.function(functools.partial(_call_flat, model), input_signature=specs, autograph=False)


def _bridge(sources: list, targets: list):
    """A function from values of `sources` to values of `targets`, running the layers in
    between; a target that is also a source is passed through untouched."""
    position = {id(t): i for i, t in enumerate(sources)}
    computed = [t for t in targets if id(t) not in position]
    inner = _compiled(keras.Model(sources, computed)) if computed else None

    def run(*values):
        made = iter(inner(*values)) if inner is not None else iter(())
        return tuple(values[position[id(t)]] if id(t) in position else next(made) for t in targets)

    # Traces without running: a first run on a batch of another size would also set up
    # TensorFlow's kernels for a shape that is never used again.
    run.trace = inner.get_concrete_function if inner is not None else (lambda: None)
    return run


def _count(scores_of, batches) -> tuple[Fraction, Fraction]:
    """Top-1/top-5 counts over the batches, summed exactly.

    A batch's count is fractional where ties touch a true class (`topk_correct`). Summing
    those floats as Fractions makes the total independent of how the batches are
    grouped, so the chunked and unchunked modes report the same float.
    """
    top1 = top5 = Fraction(0)
    for values, labels in batches:
        c1, c5 = topk_correct(np.asarray(scores_of(*values)[0], dtype=np.float32), np.asarray(labels))
        top1, top5 = top1 + Fraction(c1), top5 + Fraction(c5)
    return top1, top5


def _image_batches(images, labels, start, stop, batch_size):
    for s in range(start, stop, batch_size):
        e = min(s + batch_size, stop)
        yield (to_tensor(images[s:e]),), labels[s:e]


# --- the uncached modes ------------------------------------------------------------------------


def _whole_model_stream(model, group_of, trials, batches_for_trial, seed_scope, semantics):
    """The whole network for every trial, on batches from `batches_for_trial()`."""
    forward = _compiled(scores_model(model))

    def run(report):
        for trial in trials:
            t0 = time.perf_counter()
            with perturbed(model, group_of[trial.layer], trial, seed_scope, semantics):
                top1, top5 = _count(forward, batches_for_trial())
            report(trial, top1, top5, time.perf_counter() - t0)

    return run


# --- the optimised mode ----------------------------------------------------------------------


@dataclass
class _Stage:
    """Trials evaluated on one cached frontier."""

    frontier: list  # KerasTensors of the scores model
    suffix: object  # values of the frontier -> the scores model's outputs
    trials: list
    resident: ResidentGroup
    # The layer's output tensor when the group is an output layer (`cut_after_output_layer`):
    # its unperturbed values are cached too, for trials that only zero whole units.
    output: list | None = None
    to_output: object = None  # values of the frontier -> values of `output`
    tail: object = None  # values of `output` -> the scores model's outputs
    baseline: object = None  # the trial to report the unperturbed network as, scored on this cache
    make: object = None  # (previous cache, images slice) -> this stage's cache (`_plan_caches`)
    from_previous: bool = False
    primed: tuple | None = None  # this stage's cache of the first batch, made while measuring memory
    bytes_per_image: int = 0
    seconds: float = 0.0  # building its caches, shared among its trials
    tallies: list = field(default_factory=list)

    def run_trial(self, cache, outputs, edits):
        """(top-1, top-5) of one trial with `edits` (from `resident.draw`) on the cache.

        When the edits only zero whole units of an output layer, the zeroed logits are
        exactly 0 (a zeroed unit sums to 0, and linear or ReLU keeps it 0) and the others
        are the cached unperturbed ones, so no product is needed."""
        if self.output is not None:
            units = self.resident.zeroed_units(edits)
            if units is not None:
                mask = np.zeros(self.output[0].shape[-1], dtype=bool)
                mask[units] = True
                mask = tf.constant(mask)
                return _count(lambda x: self.tail(tf.where(mask, tf.zeros((), x.dtype), x)), outputs)
        with self.resident.applied(edits):
            return _count(self.suffix, cache)

    def run_baseline(self, cache, outputs):
        """(top-1, top-5) of the unperturbed network, from this stage's cache."""
        if self.output is not None:
            return _count(self.tail, outputs)
        return _count(self.suffix, cache)


class _OptimisedStream:
    """One device's stages (network order) for its share of the trials. Built in three
    steps, because the memory bound is shared among streams and measured on the first:
    the stages (here), `measure_working_bytes` (first stream only), then `plan`."""

    def __init__(self, model, groups, trials, seed_scope, semantics, baseline=None, counters=None):
        self.scoring = scores_model(model)
        self.baseline, self.counters, self.chunk = baseline, counters, 1
        self.stages = []
        for group in groups:
            mine = [t for t in trials if t.layer == group.name]
            if not mine:
                continue
            cut = cut_before(self.scoring, group)
            stage = _Stage(cut, _bridge(cut, self.scoring.outputs), mine,
                           ResidentGroup(model, group, seed_scope, semantics))
            output = cut_after_output_layer(self.scoring, group)
            if output is not None:
                stage.output, stage.to_output, stage.tail = output, _bridge(cut, output), _bridge(output, self.scoring.outputs)
            self.stages.append(stage)
        if self.stages:
            self.stages[0].make = _bridge(self.scoring.inputs, self.stages[0].frontier)

    def measure_working_bytes(self, images, batch_size) -> int:
        """What one batch needs while it runs through the model: measured on the first
        batch, through the first stage's own functions (its cache, then its suffix), which
        the sweep traces anyway. The batch's cache is kept for the sweep to start from."""
        if not self.stages:
            return 0
        stage = self.stages[0]
        first = to_tensor(images[:batch_size])
        stage.make.trace()  # outside the measurement
        stage.suffix.trace()

        def one_batch():
            stage.primed = stage.make(first)
            return [np.asarray(t) for t in stage.suffix(*stage.primed)]

        return batch_working_bytes(one_batch)

    def plan(self, images, memory_bytes, batch_size) -> None:
        """Decide how each stage's cache is made, the chunk size, and where the baseline is
        scored."""
        self.chunk = _plan_caches(self.scoring, self.stages, images, memory_bytes, batch_size)
        if self.baseline is not None and self.stages:
            # The deepest stage whose cache was computed from the images through the chain
            # of caches before it: the unperturbed network up to its cut has then been
            # computed anyway, so the baseline costs only that stage's suffix.
            last = 0
            while last + 1 < len(self.stages) and self.stages[last + 1].from_previous:
                last += 1
            self.stages[last].baseline = self.baseline

    def run(self, images, labels, batch_size, report, streams=1):
        """Every stage's trials (and the baseline where it is scored), reported as they end."""
        _staged_loop(self.stages, images, labels, self.chunk, batch_size, report, streams, self.counters)


def _plan_caches(scoring, stages, images, memory_bytes, batch_size) -> int:
    """Decide how each stage's cache is made and return the chunk size (images) that keeps
    two consecutive caches within memory_bytes."""
    inputs = scoring.inputs
    previous, previous_bytes, peak = inputs, 0, 0
    for stage in stages:
        stage.from_previous = previous is not inputs and computable_from(stage.frontier, previous)
        if stage.make is None:  # the first stage's is made with the stream, to measure with
            stage.make = _bridge(previous if stage.from_previous else inputs, stage.frontier)
        size = bytes_per_image(stage.frontier)
        if size is None:  # sizes known only at run time: measure on one image
            size = sum(v.numpy().nbytes for v in _bridge(inputs, stage.frontier)(tf.convert_to_tensor(images[:1])))
        stage.bytes_per_image = size + (bytes_per_image(stage.output) or 0 if stage.output is not None else 0)
        peak = max(peak, stage.bytes_per_image + (previous_bytes if stage.from_previous else 0))
        previous, previous_bytes = stage.frontier, stage.bytes_per_image
    n = len(images)
    if peak * n <= memory_bytes:
        return max(n, 1)
    return max(batch_size, memory_bytes // peak // batch_size * batch_size)


def _staged_loop(stages, images, labels, chunk, batch_size, report, streams=1, counters=None):
    """Chunks of images outside, stages in network order inside, each stage's trials inside
    that. A trial reports when its last chunk is done, so with one chunk every trial
    reports as soon as it has run. A trial's seconds are its own run time (waiting for its
    draw included) plus an equal share of the time spent building its stage's caches and
    copying its layer's originals; a draw made while another trial ran is in no trial's
    seconds. The baseline's seconds are its own run time.

    While one trial runs on the device, host threads draw the next trials' edits
    (`draw_threads`), so the host's NumPy work overlaps the network's (NumPy and
    TensorFlow both release the GIL).
    """
    n = len(labels)
    starts = list(range(0, n, chunk)) or [0]
    for stage in stages:
        stage.tallies = [[Fraction(0), Fraction(0), 0.0] for _ in stage.trials + [stage.baseline]]
    depth = max(1, draw_threads() // streams)
    with ThreadPoolExecutor(depth, thread_name_prefix="draw") as drawer:
        for i, start in enumerate(starts):
            stop = min(start + chunk, n)
            cache = None
            for stage in stages:
                if not stage.from_previous:
                    cache = None  # free the previous stage's cache before this one is built
                    return_freed_memory()
                t0 = time.perf_counter()
                with stage.resident.held():
                    stage.seconds += time.perf_counter() - t0  # copying the originals: the stage's cost
                    cache = _run_stage(stage, drawer, depth, DRAWS_BYTES // streams, cache, images, labels,
                                       start, stop, batch_size, report if i == len(starts) - 1 else None, counters)


def _tally(counters, key, amount=1) -> None:
    if counters is not None:
        with _COUNTERS_LOCK:
            counters[key] += amount


_COUNTERS_LOCK = threading.Lock()


def _run_stage(stage, drawer, depth, draws_bytes, cache, images, labels, start, stop, batch_size, report,
               counters=None):
    """One stage on one chunk: its cache, from the previous stage's `cache` or the images,
    then the baseline when it is scored here, then its trials, tallied; with `report` (the
    last chunk) each reports. Returns the stage's cache. Draws still queued when it ends
    (after an error) are cancelled."""
    # The first draws start before the cache is built, and so overlap it.
    ahead, queued = _draws_ahead(drawer, stage, depth, draws_bytes, counters)
    try:
        t0 = time.perf_counter()
        if stage.from_previous:
            cache = [(stage.make(*values), y) for values, y in cache]
        else:
            # Held as tensors even where the frontier is the images themselves: on a GPU
            # they then stay in its memory instead of being copied there for every trial.
            # The first batch's cache was made while measuring memory: its images are
            # not made a tensor again.
            primed = stage.primed is not None and not start
            cache = [(stage.primed, labels[start : min(start + batch_size, stop)])] if primed else []
            cache += [(stage.make(*values), y) for values, y
                      in _image_batches(images, labels, start + batch_size if primed else start, stop, batch_size)]
            stage.primed = None
        outputs = None
        if stage.output is not None:
            outputs = [(stage.to_output(*values), y) for values, y in cache]
        stage.seconds += time.perf_counter() - t0
        _tally(counters, "prefix_passes", Fraction(stop - start, len(labels)))
        if stage.baseline is not None:
            tally = stage.tallies[-1]
            t0 = time.perf_counter()
            top1, top5 = stage.run_baseline(cache, outputs)
            tally[0], tally[1], tally[2] = tally[0] + top1, tally[1] + top5, tally[2] + time.perf_counter() - t0
            if report is not None:
                report(stage.baseline, tally[0], tally[1], tally[2])
        for trial, tally in zip(stage.trials, stage.tallies):
            t0 = time.perf_counter()
            top1, top5 = stage.run_trial(cache, outputs, next(ahead))
            tally[0] += top1
            tally[1] += top5
            tally[2] += time.perf_counter() - t0
            if report is not None:
                report(trial, tally[0], tally[1], tally[2] + stage.seconds / len(stage.trials))
    finally:
        for future in queued:  # after an error: the draws that have not started never will
            future.cancel()
    return cache


def draw_threads() -> int:
    """How many trials' edits a host draws at once, each on its own thread: half the host's
    cores, at least 1 and at most 8, shared among the device streams. Each trial's draw is
    an independent NumPy stream, so draws of different trials run in parallel (NumPy
    releases the GIL); on a GPU this is what keeps the host's draws of a dense layer from
    bounding its trials."""
    return max(1, min(8, (os.cpu_count() or 2) // 2))


def _draws_ahead(drawer, stage, depth: int, draws_bytes: int, counters=None):
    """An iterator over the stage's trials' edits, in order, and the deque of the draws it
    has queued (for cancelling them). Up to `depth` trials ahead are
    drawn on `drawer` while the current trial runs; the first draws start now. It holds
    depth + 1 trials' edits at most, fewer where their new values (as large as the layer)
    would pass `draws_bytes`, and never fewer than two; the draws' own temporaries are not
    counted. Each trial is drawn once per chunk ("draws" in `counters`)."""
    if not stage.trials:
        return iter(()), collections.deque()
    depth = max(1, min(depth, draws_bytes // max(stage.resident.nbytes, 1) - 1))

    def draw(trial):
        _tally(counters, "draws")
        _tally(counters, f"draws:{trial.layer}")
        return stage.resident.draw(trial)

    pending = collections.deque(drawer.submit(draw, t) for t in stage.trials[:depth])

    def in_turn():
        for following in stage.trials[depth:] + [None] * min(depth, len(stage.trials)):
            edits = pending.popleft().result()
            if following is not None:
                pending.append(drawer.submit(draw, following))
            yield edits

    return in_turn(), pending


# --- several devices --------------------------------------------------------------------------


def _device_names(devices) -> list[str]:
    if devices is not None:
        return list(devices)
    gpus = tf.config.list_logical_devices("GPU")
    return [gpu.name for gpu in gpus] if len(gpus) > 1 else []


def _replica(model: keras.Model, device: str) -> keras.Model:
    with tf.device(device):
        copy = keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
    return copy


def _memory_budget(memory_gb, working: int, model, groups, streams: int) -> int:
    """Bytes each stream may give to cached activations, so that the process's anonymous
    memory stays within memory_gb (default half the RAM) plus `memory.MARGIN_BYTES`:
    the bound less what the process holds now (TensorFlow, the models, images held in
    RAM), less `working`, what a batch needs while it runs through the model
    (`_OptimisedStream.measure_working_bytes`), for each stream, less each stream's copies
    of its largest layer (two: the originals held while the model holds a trial's values,
    and those values as they are built) and its drawn edits
    (`_draws_ahead`, with one draw's temporaries per draw thread), less the margin."""
    if memory_gb is None:
        memory_gb = half_the_ram_gb()
    largest = max((ResidentGroup(model, g, "").nbytes for g in groups), default=0)
    depth = max(1, draw_threads() // streams)
    layer_copies = streams * largest * (2 + min(depth + 1, max(2, DRAWS_BYTES // max(largest, 1))) + depth)
    held = anonymous_bytes() + streams * working + layer_copies + MARGIN_BYTES
    return max(0, int(memory_gb * 2**30) - held) // streams


# --- entry points -------------------------------------------------------------------------------


def run_layers(
    model,
    images,
    labels,
    groups,
    trials,
    seed_scope: str,
    semantics: str = "paper",
    batch_size: int = 64,
    memory_gb: float | None = None,
    mode: str = "optimised",
    on_result=None,
    devices=None,
    baseline=None,
    counters=None,
):
    """Evaluate `trials` (`perturb.Trial`s) of the weight groups `groups` (network order).

    images, labels: the decoded dataset (NHWC float32 array or memmap, int labels). In
    mode="naive", `images` is instead a tf.data.Dataset of (images, labels) batches that
    is iterated, and so decoded, afresh for every trial, and `labels` is unused.
    memory_gb: bound on the process's anonymous memory (default: half the RAM), less
    `memory.MARGIN_BYTES` for what is not measured; the cached activations are taken in
    chunks that keep it (see `_memory_budget`). What the process holds before the sweep
    can leave no room: the chunks are then one batch.
    on_result(trial, top1_count, top5_count, seconds) is called once per trial as it
    finishes (with several devices from their threads, one call at a time).
    devices: device names, one trial stream each; default all GPUs when there are several.
    baseline: when given, the unperturbed network is scored too and reported as this
    trial: in the optimised mode through the first stream's cached activations, so the
    layers below the first perturbed one run once for the baseline and the trials together.
    counters: a collections.Counter that the optimised mode adds to: "prefix_passes"
    (passes over all the images that computed a stage's cached activations: 1 per distinct
    cut), "draws" and "draws:<layer>" (trials' draws; each trial is drawn once per chunk),
    "whole_model_passes" (the baseline on the whole model, where it had no cache to use).
    Returns [(trial, top1_count, top5_count, seconds)] in the order they finished; counts
    are floats, fractional where ties touch a true class (`scoring.topk_correct`). The
    model's weights are as they were on return, also after an exception.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    groups = list(groups.values()) if isinstance(groups, dict) else list(groups)
    group_of = {g.name: g for g in groups}
    trials = list(trials)
    stray = [t.layer for t in trials if t.layer not in group_of]
    if stray:
        raise ValueError(f"trials of layer {stray[0]!r}, which is not among the groups {list(group_of)}")
    if mode != "naive":
        labels = np.asarray(labels)
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")

    results = []
    lock = threading.Lock()

    def report(trial, top1, top5, seconds):
        with lock:
            results.append((trial, float(top1), float(top5), seconds))
            if on_result is not None:
                on_result(trial, float(top1), float(top5), seconds)

    names = _device_names(devices)
    models = [model] + [_replica(model, d) for d in names[1:]]
    placements = names or [None]
    streams = []
    for i, (replica, device) in enumerate(zip(models, placements)):
        share = trials[i :: len(placements)]
        # Keras builds sub-models here, one device after another (its graph building is
        # not thread-safe); the threads below only run traced functions.
        with tf.device(device):
            if mode == "naive":
                # Iterating the dataset again decodes every image again.
                def fresh():
                    return (((x,), y) for x, y in images)

                run = _whole_model_stream(replica, group_of, share, fresh, seed_scope, semantics)
            elif mode == "decoded":
                def decoded():
                    return _image_batches(images, labels, 0, len(labels), batch_size)

                run = _whole_model_stream(replica, group_of, share, decoded, seed_scope, semantics)
            else:
                run = _OptimisedStream(replica, groups, share, seed_scope, semantics,
                                       baseline=baseline if i == 0 else None, counters=counters)
        streams.append((device, run))
    if mode == "optimised":
        memory_bytes = 0
        if trials:
            with tf.device(placements[0]):
                working = streams[0][1].measure_working_bytes(images, batch_size)
            memory_bytes = _memory_budget(memory_gb, working, model, groups, len(placements))
        for device, stream in streams:
            with tf.device(device):
                stream.plan(images, memory_bytes, batch_size)
        streams = [(device, functools.partial(stream.run, images, labels, batch_size, streams=len(placements)))
                   for device, stream in streams]
    if baseline is not None and (mode != "optimised" or not trials[:: len(placements)]):
        # No cache to score it on: the whole unperturbed model, before the trials.
        if mode == "naive":
            batches = (((x,), y) for x, y in images)
        else:
            batches = _image_batches(images, labels, 0, len(labels), batch_size)
        t0 = time.perf_counter()
        with tf.device(placements[0]):
            top1, top5 = _count(_compiled(scores_model(model)), batches)
        _tally(counters, "whole_model_passes")
        report(baseline, top1, top5, time.perf_counter() - t0)

    def run_stream(device, run):
        with tf.device(device):
            run(report)

    if len(streams) == 1:
        run_stream(*streams[0])
    else:
        with ThreadPoolExecutor(len(streams)) as pool:
            for future in [pool.submit(run_stream, *stream) for stream in streams]:
                future.result()
    return results


def count_unperturbed(model, images, labels, batch_size: int = 64) -> tuple[float, float]:
    """Top-1/top-5 counts of the unperturbed model on the decoded dataset (array or
    memmap, read batch by batch), scored and batched as every trial is."""
    return counter(model, batch_size)(images, labels)


def counter(model, batch_size: int = 64):
    """A function (images, labels) -> (top-1, top-5 counts) of `model` with the weights it
    holds when called, traced once: for scoring one model many times (recovery curves)."""
    forward = _compiled(scores_model(model))

    def count(images, labels) -> tuple[float, float]:
        top1, top5 = _count(forward, _image_batches(images, labels, 0, len(labels), batch_size))
        return float(top1), float(top5)

    return count
