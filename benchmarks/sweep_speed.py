"""What a sweep costs three ways, and how close the fast way is to the unavoidable.

One grid (every weight layer x 3 levels x 2 repeats of synapse knockout) on the 1,300
shared validation images, for AlexNet with the project's synthetic weights and for
SqueezeNet v1.1 with its real weights, evaluated

  naive      the whole model on freshly decoded images for every trial;
  decoded    the whole model on images decoded once;
  optimised  replication.run.engine: cached prefixes passed from layer to layer, only each
             trial's suffix recomputed;

each in its own process, so that its peak memory (ru_maxrss) is its own. The floor is
what cannot be avoided: each trial's suffix multiply-adds (convolution and dense
products from the perturbed layer to the logits) over the rate at which this machine
runs the whole model on cached images. It ends with one line per model:

    MODEL: naive/optimised = X.XX, optimised/floor = Y.YY

Usage:
    python benchmarks/sweep_speed.py                    # the full run (about 40 min on 2 cores)
    python benchmarks/sweep_speed.py --models alexnet --layers conv_2,dense_1 --limit 200
    python benchmarks/sweep_speed.py --check-dense-batching
    python benchmarks/sweep_speed.py --host-work [--models alexnet] [--gpu-gmacs 15000]
    python benchmarks/sweep_speed.py --sweep [--sweeps "dense_1;conv_2,dense_1"] [--limit N | --images N] [--repeats N]
    python benchmarks/sweep_speed.py --sweep --sweeps dense_1 --images 50000 --no-separate --memory-gb 4 --cache-dir DIR
    python benchmarks/sweep_speed.py --memory [--bounds 2,4,8] [--images 2600]

--sweep times a sweep as users run it (`run.sweep.run_sweep`: the unperturbed baseline and
every trial), for synthetic AlexNet, one grid per --sweeps entry, each in its own process,
two ways in one run: "sweep" (the baseline scored on the first stage's cached activations)
and "separate" (the whole unperturbed model first, then the trials: what sweeps did before,
which computes the layers below the first perturbed one twice). Its floor is what cannot
be avoided: one pass over the layers below the first perturbed layer, the baseline's own
suffix from there (together: one pass of the whole model) and each trial's suffix, at the
whole model's measured rate on cached images (each batch made a tensor before its clock
starts). As this machine's speed drifts between processes, the rate is measured in two
places: in a process of its own before and after each timed run (the floor uses their
mean), and inside the timed run's process once its sweep has ended. That process also
times one trial's suffix of each layer on its cached frontier at the engine's batch size,
and a third floor puts each trial's suffix at that rate instead of the whole model's: a
dense layer's product on the engine's batches can run below the whole model's average
rate, so what is left above this floor is the engine's own work (tracing, first-run
set-up, draws, applying edits). It prints sweep/floor for each, separate/floor, the prefix
passes computed (the engine's counters; 1 per distinct cut) and the draws. With --images N
it runs on N links to the shared images (as --memory does), to show how the sweep's fixed
costs (tracing, the first batch's set-up) shrink against the floor as N grows. At a paper
scale give --cache-dir (the decoded images are memory-mapped from it when they exceed
--memory-gb) and --no-separate (the separate way takes longer than the sweep); the whole
model's rate is timed on the whole batches within the first RATE_IMAGES images. With
--repeats N each sweep is timed N times, each in a process of its own with a rate
process after it, and the summary gives the median ratio and the range.

--memory runs one conv_2 sweep (the baseline and one trial) per --memory-gb bound, each in
its own process, on a validation set of --images links to the shared images (image i is
shared image i mod 1,300) whose decoded images are memory-mapped from a cache folder (as
they are when they do not fit the bound), and prints each process's peak anonymous memory
(RssAnon, sampled every 10 ms) and peak resident memory (VmHWM, which also counts the
memory-mapped images' pages) against the bound.

--host-work measures what a trial costs besides the network, per layer and perturbation, on
the host path (`perturb.perturbed`: copy out, perturb, set_weights, restore) and on the
resident path the engine runs (`run.resident`: draw on the host, overlapped with the previous
trial; apply and restore on the device), and its share of a trial at 50,000 images, with the
network's time taken from the model's multiply-adds at this machine's measured rate and at
an assumed GPU rate (a projection, labelled so).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from replication.commands.common import run_cli
from replication.errors import ReplicationError
from replication.paths import shared_dir

MODELS = ("alexnet", "squeezenet")
WAYS = ("naive", "decoded", "optimised")
LEVELS = (0.2, 0.5, 0.8)
REPEATS = 2
KIND = "synapse"
SUFFIX_IMAGES = 1300  # at most, the images a suffix rate is timed on (see suffix_pass_seconds)
RATE_IMAGES = 6500  # at most, the images the whole model's rate is timed on (see measure_rates)


def default_data() -> Path:
    return shared_dir() / "data" / "ilsvrc2012_val_subset"


def squeezenet_files() -> tuple[Path, Path]:
    folder = shared_dir() / "data" / "caffe" / "squeezenet_v1.1"
    return folder / "deploy.prototxt", folder / "squeezenet_v1.1.caffemodel"


def prepare_weights(model: str, folder: Path) -> tuple[str, Path]:
    """(model argument for load_model, converted HDF5 weights)."""
    from replication.caffe.convert import convert_caffemodel

    weights = folder / f"{model}.h5"
    if model == "alexnet":
        from replication.models.synthetic import write_synthetic_alexnet

        caffemodel = folder / "synthetic_alexnet.caffemodel"
        write_synthetic_alexnet(caffemodel, seed=0)
        convert_caffemodel(caffemodel, weights, progress=False)
        caffemodel.unlink()
        return "alexnet", weights
    prototxt, caffemodel = squeezenet_files()
    if not caffemodel.is_file():
        raise ReplicationError(caffemodel, "SqueezeNet v1.1 weights not found (set REPLICATION_SHARED)")
    convert_caffemodel(caffemodel, weights, prototxt=prototxt, progress=False)
    return str(prototxt), weights


# --- the worker: one way, one model, in its own process ------------------------------------------


class AnonymousMemoryPeak:
    """Peak of this process's anonymous resident memory (RssAnon), sampled in a thread.

    ru_maxrss also counts the pages of a memory-mapped image cache that happen to be
    resident, which the kernel drops under pressure; RssAnon is the memory a run needs.
    """

    def __init__(self, every=0.01):
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(every,), daemon=True)

    def _sample(self, every):
        while not self._stop.is_set():
            with open("/proc/self/status") as status:
                for line in status:
                    if line.startswith("RssAnon:"):
                        self.peak = max(self.peak, int(line.split()[1]) * 1024)
            self._stop.wait(every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_):
        self._stop.set()
        self._thread.join()


def worker(args) -> dict:
    from replication import data
    from replication.models.groups import weight_groups
    from replication.models.registry import create_model
    from replication.perturb import Trial
    from replication.run import engine
    from replication.run.costs import model_macs, suffix_macs

    model = create_model(args.model_arg, args.weights)
    if args.worker == "memory":
        return memory_worker(args, model, data.find_dataset(args.data),
                             data.Preprocessing(resize=227, crop=227, mean="pixel"))
    groups = weight_groups(model)
    names = args.layers.split(",") if args.layers else list(groups)
    unknown = [n for n in names if n not in groups]
    if unknown:
        raise ReplicationError(None, f"{args.model_arg} has no layer {', '.join(unknown)}; it has {', '.join(groups)}")
    groups = [groups[n] for n in names]
    trials = [Trial(g.name, KIND, level, r) for g in groups for level in LEVELS for r in range(REPEATS)]
    dataset = data.find_dataset(args.data, limit=args.limit)
    prep = data.Preprocessing(resize=227, crop=227, mean="pixel")  # the shared images are 227 x 227
    report = {"way": args.worker, "images": len(dataset), "trials": len(trials)}

    start = time.perf_counter()
    if args.worker == "naive":
        images, labels = data.tf_dataset(dataset, prep, batch_size=args.batch_size), None
    else:
        images, labels = data.load_arrays(dataset, prep, cache_dir=args.cache_dir, memory_gb=args.memory_gb)
    report["decode_seconds"] = time.perf_counter() - start

    if args.worker in ("sweep", "separate"):
        return sweep_worker(args, model, names, dataset, prep, images, labels, report, start)

    if args.worker == "rate":
        report.update(measure_rates(model, [], images, labels, args.batch_size))
        report["macs"] = {**suffix_macs(model, groups), "<whole model>": model_macs(model)}
        return report

    results = engine.run_layers(
        model, images, labels, groups, trials, f"benchmark:{args.model_arg}", batch_size=args.batch_size,
        memory_gb=args.memory_gb, mode=args.worker,
    )
    report["seconds"] = time.perf_counter() - start
    report["counts"] = sorted([t.layer, t.level, t.repeat, top1, top5] for t, top1, top5, _ in results)
    report["trial_seconds"] = {t.layer: 0.0 for t, *_ in results}
    for t, _, _, seconds in results:
        report["trial_seconds"][t.layer] += seconds
    return report


def timed_images(images: int, cap: int, batch_size: int) -> int:
    """How many of `images` a rate is timed on: all of them up to `cap`, else the whole
    batches within `cap` (at least one)."""
    return images if images <= cap else max(cap // batch_size, 1) * batch_size


def measure_rates(model, groups, images, labels, batch_size) -> dict:
    """This machine's speed: the whole model on cached images, after one warm-up pass
    ("pass_seconds", the last two passes, fastest first, scaled to all the images), and one
    trial's suffix of each of `groups` ("suffix_pass_seconds"). Each batch is made a tensor
    before its clock starts, so the rate is the network's alone, without the copy a host
    array's batch costs on its way in. The whole model is timed on all the images up to
    RATE_IMAGES, else on the whole batches within RATE_IMAGES: a rate needs no more, and
    three passes over a paper-scale set would take longer than the sweep they measure. It
    takes one batch at a time, so that memory-mapped images are not all read into RAM,
    while a suffix's timing holds the frontiers of up to SUFFIX_IMAGES images (outside
    --memory-gb)."""
    import tensorflow as tf

    from replication.run import engine
    from replication.run.scoring import scores_model, topk_correct

    scoring = scores_model(model)
    forward = engine._compiled(scoring)  # traced as the engine traces its own functions
    timed = timed_images(len(labels), RATE_IMAGES, batch_size)
    passes = []
    for _ in range(3):
        seconds = 0.0
        for s in range(0, timed, batch_size):
            end = min(s + batch_size, timed)
            x, y = tf.constant(images[s:end]), labels[s:end]
            t0 = time.perf_counter()
            topk_correct(forward(x)[0].numpy(), y)
            seconds += time.perf_counter() - t0
        passes.append(seconds * len(labels) / timed)
    return {"pass_seconds": sorted(passes[1:]), "timed_images": timed,
            "suffix_pass_seconds": {g.name: suffix_pass_seconds(scoring, g, images, labels, batch_size) for g in groups}}


def whole_model_rate(macs: dict, images: int, rates: dict) -> float:
    """The whole model's multiply-adds per second in one `measure_rates` result, from its
    fastest pass over `images` images."""
    return macs["<whole model>"] * images / rates["pass_seconds"][0]


def suffix_pass_seconds(scoring, group, images, labels, batch_size) -> float:
    """The fastest of two passes (after a warm-up pass) of one trial's suffix over the
    images, at the engine's batch size, on cached frontier tensors: what the network costs
    a trial of `group` on this machine, where the floor assumes the whole model's rate.
    Timed on all the images up to SUFFIX_IMAGES, else on the whole batches within
    SUFFIX_IMAGES (their frontiers are all held), and scaled to all of them."""
    import tensorflow as tf

    from replication.run import engine
    from replication.run.graph import cut_before
    from replication.run.scoring import topk_correct

    frontier = cut_before(scoring, group)
    # The engine's own functions from the images to the frontier and from there to the scores.
    prefix, suffix = engine._bridge(scoring.inputs, frontier), engine._bridge(frontier, scoring.outputs)
    timed = timed_images(len(labels), SUFFIX_IMAGES, batch_size)
    cache = [(prefix(tf.constant(images[s : min(s + batch_size, timed)])), labels[s : min(s + batch_size, timed)])
             for s in range(0, timed, batch_size)]
    passes = []
    for _ in range(3):
        t0 = time.perf_counter()
        for values, y in cache:
            topk_correct(suffix(*values)[0].numpy(), y)
        passes.append(time.perf_counter() - t0)
    return min(passes[1:]) * len(labels) / timed


def sweep_worker(args, model, names, dataset, prep, images, labels, report, start) -> dict:
    """One whole sweep of synthetic AlexNet: run_sweep ("sweep"), or the unperturbed model
    first and then run_sweep's trials ("separate", what sweeps did before)."""
    import collections

    from replication.run import engine
    from replication.run.grid import Grid
    from replication.run.sweep import run_info, run_sweep, seed_scope

    grid = Grid(tuple(names), KIND, (0.0, *LEVELS), REPEATS)
    run = run_info("alexnet", args.weights, dataset, prep, images=len(labels))
    counters = collections.Counter()
    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        if args.worker == "separate":
            top1, top5 = engine.count_unperturbed(model, images, labels, args.batch_size)
            counters["whole_model_passes"] += 1
            baseline_seconds = time.perf_counter() - t0
            trials = [t for t in grid.trials() if t.layer in names]
            groups = [g for g in weight_groups_of(model) if g.name in names]
            rows = engine.run_layers(model, images, labels, groups, trials, seed_scope(run), batch_size=args.batch_size,
                                     memory_gb=args.memory_gb, counters=counters)
            counts = [("-", 0.0, 0, top1, top5)] + [(t.layer, t.level, t.repeat, a, b) for t, a, b, _ in rows]
        else:
            baseline_seconds = None
            table = run_sweep(model, grid, images, labels, Path(folder) / "sweep.csv", run, batch_size=args.batch_size,
                              memory_gb=args.memory_gb, progress=False, counters=counters)
            counts = [(r.layer, float(r.level), int(r.repeat), r.top1 * len(labels), r.top5 * len(labels))
                      for r in table.itertuples()]
        report["seconds"] = time.perf_counter() - t0
    report["baseline_seconds"] = baseline_seconds
    record_peaks(report, args.anonymous)  # the sweep's, before the measurements below
    # The rates again in this process, after the sweep: its own speed, which on a shared
    # host can differ from that of the processes before and after it.
    groups = [g for g in weight_groups_of(model) if g.name in names]
    report["in_process"] = measure_rates(model, groups, images, labels, args.batch_size)
    report["counts"] = sorted([str(c[0]), float(c[1]), int(c[2]), round(float(c[3]), 6), round(float(c[4]), 6)]
                              for c in counts)
    report["counters"] = {k: float(v) for k, v in counters.items()}
    return report


def weight_groups_of(model):
    from replication.models.groups import weight_groups

    return list(weight_groups(model).values())


def sweep_benchmark(folder: Path, args) -> list[str]:
    """Per --sweeps entry: run_sweep (--repeats times) and, unless --no-separate, the
    separate way, each in its own process followed by a rate process, against the floor;
    returns one summary line per sweep, with the median of the repeats."""
    model_arg, weights = prepare_weights("alexnet", folder)
    if args.images:
        sys.path.insert(0, str(Path(__file__).parent))
        from paper_scale import make_validation_set

        args.data, args.limit = make_validation_set(folder / "val", args.images), None

    # This machine's speed drifts between processes (shared hosts), so the whole model's rate
    # is measured in a process of its own before and after every timed run, and again inside
    # the timed run's own process once its sweep has ended.
    first = run_worker("rate", model_arg, weights, args)
    macs, images = first["macs"], first["images"]
    rates = [whole_model_rate(macs, images, first)]
    print(f"alexnet: whole model {rates[0] / 1e9:.1f} GMAC/s = {rates[0] / macs['<whole model>']:.0f} images/s "
          f"on {images} cached images (timed on {first['timed_images']})", flush=True)
    summary = []
    for layers in [entry for entry in args.sweeps.split(";") if entry]:
        args.layers = layers
        names = layers.split(",")
        per_layer = len(LEVELS) * REPEATS  # trials of each layer
        trials = per_layer * len(names)
        # One pass of the whole model (the first layer's prefix, shared, and the baseline's
        # suffix) and each trial's suffix.
        floor_macs = (macs["<whole model>"] + sum(macs[n] for n in names) * per_layer) * images
        runs, ratio, repeated, counts, sweep_seconds = {}, {}, [], [], []
        ways = ["sweep"] * args.repeats + ([] if args.no_separate else ["separate"])
        for way in ways:
            run = runs[way] = run_worker(way, model_arg, weights, args)
            rates.append(whole_model_rate(macs, images, run_worker("rate", model_arg, weights, args)))
            own = run["in_process"]
            own_rate = whole_model_rate(macs, images, own)
            floor = {"neighbours": floor_macs / ((rates[-2] + rates[-1]) / 2), "in process": floor_macs / own_rate}
            # In the same process, with each trial's suffix at the rate it runs at there
            # rather than the whole model's (a dense layer's product on the engine's batches can
            # run below the whole model's average rate): what is left above this is
            # the engine's own work (tracing, first-run set-up, draws, applying edits).
            floor["suffixes at their rates"] = floor["in process"] + per_layer * sum(
                own["suffix_pass_seconds"][n] - macs[n] * images / own_rate for n in names)
            ratio[way] = {k: run["seconds"] / v for k, v in floor.items()}
            if way == "sweep":
                repeated.append(ratio[way])
                sweep_seconds.append(run["seconds"])
            counts.append(run["counts"])
            c = run["counters"]
            passes = c.get("prefix_passes", 0) + c.get("whole_model_passes", 0)
            suffix_rates = ", ".join(f"{n} {macs[n] * images / own['suffix_pass_seconds'][n] / 1e9:.1f}" for n in names)
            print(f"alexnet {layers:15s} {way:8s} {run['seconds']:7.1f} s; floor {floor['neighbours']:5.1f} s = "
                  f"{ratio[way]['neighbours']:4.2f} x (whole model {rates[-2] / 1e9:.1f} GMAC/s before, "
                  f"{rates[-1] / 1e9:.1f} after); in this process {floor['in process']:5.1f} s = "
                  f"{ratio[way]['in process']:4.2f} x (whole model {own_rate / 1e9:.1f} GMAC/s), with "
                  f"the suffixes at their rates ({suffix_rates} GMAC/s) {floor['suffixes at their rates']:5.1f} s = "
                  f"{ratio[way]['suffixes at their rates']:4.2f} x; prefix passes {passes:g} (cached "
                  f"{c.get('prefix_passes', 0):g} for {len(names)} cut(s), whole model "
                  f"{c.get('whole_model_passes', 0):g}); draws {c.get('draws', 0):g} for {trials} trials; peak anonymous "
                  f"{run['peak_anonymous_gb']:.2f} GB", flush=True)
        if len(counts) > 1:  # every timed run of this grid, the separate way's and the repeats'
            same = all(other == counts[0] for other in counts[1:])
            if not same:
                print("counts differ:", [(a, b) for other in counts[1:] for a, b in zip(counts[0], other) if a != b][:3],
                      flush=True)
            print(f"alexnet {layers:15s} counts identical: {'yes' if same else 'NO'} ({len(counts)} runs)", flush=True)
        if "separate" in runs:
            against = (f", separate/floor = {ratio['separate']['neighbours']:.2f}, sweep/separate = "
                       f"{float(np.median(sweep_seconds)) / runs['separate']['seconds']:.2f}"
                       f"{' (the median sweep)' if len(sweep_seconds) > 1 else ''}")
        else:
            against = " (the separate way not run: counts not compared with it)"
        c = runs["sweep"]["counters"]
        # With --repeats, the median of each floor's ratios over the sweep's processes: on a
        # shared host one process's speed can differ from its neighbours'.
        mine = {k: float(np.median([r[k] for r in repeated])) for k in repeated[0]}
        spread = (f" (median of {len(repeated)} sweeps, {min(r['neighbours'] for r in repeated):.2f}–"
                  f"{max(r['neighbours'] for r in repeated):.2f})" if len(repeated) > 1 else "")
        summary.append(f"alexnet {layers}: sweep/floor = {mine['neighbours']:.2f}{spread} (in its own process "
                       f"{mine['in process']:.2f}, with the suffixes at their rates {mine['suffixes at their rates']:.2f})"
                       f"{against}, prefix passes = "
                       f"{c.get('prefix_passes', 0) + c.get('whole_model_passes', 0):g} for {len(names)} cut(s)")
    return summary


def memory_benchmark(args) -> None:
    """A conv_2 sweep per --memory-gb bound, each in its own process (see the module notes)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from paper_scale import make_validation_set

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        model_arg, weights = prepare_weights("alexnet", folder)
        args.images = args.images or 2600
        args.data = make_validation_set(folder / "val", args.images)
        args.cache_dir, args.layers, args.limit = folder / "cache", "conv_2", None
        for bound in [float(b) for b in args.bounds.split(",") if b]:
            args.memory_gb = bound
            run = run_worker("memory", model_arg, weights, args)
            margin = run["margin_gb"]
            print(f"--memory-gb {bound:g}: peak anonymous {run['peak_anonymous_gb']:.2f} GB "
                  f"({'within' if run['peak_anonymous_gb'] <= bound + margin else 'ABOVE'} the bound + "
                  f"{margin * 1024:.0f} MiB margin), peak resident {run['peak_resident_gb']:.2f} GB, "
                  f"{run['images']} images, {run['seconds']:.1f} s, chunks of {run['chunk']} images, "
                  f"counts {run['counts']}", flush=True)


def memory_worker(args, model, dataset, prep) -> dict:
    """The baseline and one conv_2 trial through run_sweep, images memory-mapped."""
    from replication import data
    from replication.run import engine, memory
    from replication.run.grid import Grid
    from replication.run.sweep import run_info, run_sweep

    images, labels = data.load_arrays(dataset, prep, cache_dir=args.cache_dir, memory_gb=0)
    chunks = []
    plan = engine._plan_caches

    def noted(*a, **k):
        chunks.append(plan(*a, **k))
        return chunks[-1]

    engine._plan_caches = noted
    grid = Grid(("conv_2",), KIND, (0.0, 0.5), 1)
    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        table = run_sweep(model, grid, images, labels, Path(folder) / "sweep.csv",
                          run_info("alexnet", args.weights, dataset, prep, images=len(labels)),
                          batch_size=args.batch_size, memory_gb=args.memory_gb, progress=False)
        seconds = time.perf_counter() - t0
    return {"images": len(labels), "seconds": seconds, "chunk": chunks[-1] if chunks else None,
            "counts": [round(float(v) * len(labels), 3) for v in table["top5"]],
            "margin_gb": memory.MARGIN_BYTES / 2**30}


def run_worker(way: str, model_arg: str, weights: Path, args) -> dict:
    command = [sys.executable, __file__, "--worker", way, "--model-arg", model_arg, "--weights", str(weights),
               "--data", str(args.data), "--batch-size", str(args.batch_size), "--memory-gb", str(args.memory_gb)]
    for option in ("limit", "layers", "cache_dir"):
        if getattr(args, option) is not None:
            command += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-5000:])
        raise ReplicationError(None, f"the {way} run of {model_arg} failed (exit {done.returncode})")
    *_, last = done.stdout.strip().splitlines()
    return json.loads(last)


# --- the comparison ---------------------------------------------------------------------------


def benchmark_model(name: str, folder: Path, args) -> str:
    model_arg, weights = prepare_weights(name, folder)
    runs = {}
    for way in args.ways:
        runs[way] = run_worker(way, model_arg, weights, args)
        run = runs[way]
        print(f"{name:10s} {way:9s} {run['seconds']:8.1f} s  peak RSS {run['peak_rss_gb']:5.2f} GB "
              f"(anonymous {run['peak_anonymous_gb']:5.2f} GB)  "
              f"({run['trials']} trials x {run['images']} images, decoding {run['decode_seconds']:.1f} s)", flush=True)
    rate = run_worker("rate", model_arg, weights, args)
    macs, images = rate["macs"], rate["images"]
    per_second = whole_model_rate(macs, images, rate)
    some = next(iter(runs.values()))
    floor = sum(macs[layer] * images / per_second for layer, *_ in some["counts"])
    print(f"{name:10s} floor     {floor:8.1f} s  (whole model {per_second / 1e9:.1f} GMAC/s = "
          f"{images / rate['pass_seconds'][0]:.0f} images/s on cached images)")
    counts = {json.dumps(run["counts"]) for run in runs.values()}
    print(f"{name:10s} counts identical in every way: {'yes' if len(counts) == 1 else 'NO'}")
    if "optimised" in runs:
        per_layer = ", ".join(f"{k} {v:.1f}" for k, v in runs["optimised"]["trial_seconds"].items())
        print(f"{name:10s} optimised seconds per layer (all its trials): {per_layer}")
    if "naive" in runs:
        # An engine that runs every trial's suffix cannot beat the floor, so this bounds
        # naive/optimised from above: the grid's shape, not the engine, sets it.
        print(f"{name:10s} naive/floor = {runs['naive']['seconds'] / floor:.2f} "
              f"(the most naive/optimised can be without skipping a trial's suffix)")
    parts = []
    if {"naive", "optimised"} <= runs.keys():
        parts.append(f"naive/optimised = {runs['naive']['seconds'] / runs['optimised']['seconds']:.2f}")
    if "optimised" in runs:
        parts.append(f"optimised/floor = {runs['optimised']['seconds'] / floor:.2f}")
    return f"{name}: {', '.join(parts)}"


def check_dense_batching(args) -> None:
    """Does stacking several trials' dense kernels into one matrix product save time, and
    does it give the same products? (replication/run/engine.py leaves it out on this evidence.)"""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    images, trials = args.limit or 1300, 6
    for rows, cols in ((9216, 4096), (4096, 4096), (4096, 1000)):  # AlexNet's dense_1..3
        x = tf.constant(np.maximum(rng.normal(size=(images, rows)), 0).astype(np.float32))
        kernels = [rng.normal(0, 0.01, (rows, cols)).astype(np.float32) for _ in range(trials)]
        for k in kernels:
            k[rng.random(k.shape) < 0.5] = 0  # synapse knockout
        product = tf.function(tf.matmul)
        stacked = tf.constant(np.concatenate(kernels, axis=1))
        separate = [tf.constant(k) for k in kernels]
        batches = [x[s : s + args.batch_size] for s in range(0, images, args.batch_size)]
        product(batches[0], separate[0]), product(batches[0], stacked)  # trace both shapes
        t0 = time.perf_counter()
        apart = [tf.concat([product(b, k) for b in batches], 0).numpy() for k in separate]
        t1 = time.perf_counter()
        together = tf.concat([product(b, stacked) for b in batches], 0).numpy()
        t2 = time.perf_counter()
        same = all(np.array_equal(a, together[:, i * cols : (i + 1) * cols]) for i, a in enumerate(apart))
        print(f"{rows}x{cols}, {trials} trials, batch {args.batch_size}: one product per trial {t1 - t0:.2f} s, "
              f"stacked {t2 - t1:.2f} s, identical: {same}")


def _edit_bytes(edits) -> int:
    """Bytes a trial's edits send to the device: a Zero's mask, or the new values."""
    from replication.perturb.edits import Zero

    return sum(e.where.nbytes if isinstance(e, Zero) else e.nbytes for e in edits)


def _share(host: float, net: float) -> str:
    """The share of a trial that is not the network, when the host adds `host` seconds."""
    return f"{host / (host + net):6.1%}"


def host_work(args) -> None:
    """Per layer and perturbation, what a trial costs besides the network, two ways:

    host path     `perturb.perturbed`: copy the weights out, perturb the copies, set_weights,
                  set the originals back, all on the stream's critical path;
    resident path `run.resident.ResidentGroup`, what the optimised engine runs: draw the edits
                  on host threads (`engine.draw_threads` trials at once, while the network
                  runs), then apply them and restore on the device; timed after one draw
                  of the layer, as in a sweep (Gaussian noise's σ is then remembered).

    and the share of a 50,000-image trial that is not the network. On this CPU it is
    measured: the host path's seconds, or the resident path's max(draw / threads, net) − net
    plus apply and restore. On a GPU it is a projection: the network at --gpu-gmacs, the
    draws on --gpu-host-threads, the edits sent at --pcie-gbs, and applying and restoring as
    four passes over the layer at --gpu-memory-gbs."""
    import tensorflow as tf

    from replication.models.groups import weight_groups
    from replication.models.registry import create_model
    from replication.perturb import Trial, perturbed
    from replication.run.costs import model_macs, suffix_macs
    from replication.run.engine import draw_threads
    from replication.run.resident import ResidentGroup
    from replication.run.scoring import scores_model

    scope, threads = "host-work", draw_threads()
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models.split(","):
            model_arg, weights = prepare_weights(name, Path(folder))
            model = create_model(model_arg, weights)
            groups = weight_groups(model)
            macs = suffix_macs(model, groups)
            size = model.input_shape[1]
            scoring = scores_model(model)
            forward = tf.function(lambda x, scoring=scoring: scoring(x, training=False))
            batch = tf.random.normal((args.batch_size, size, size, 3))
            forward(batch)
            t0 = time.perf_counter()
            for _ in range(3):
                forward(batch).numpy()
            rate = 3 * args.batch_size * model_macs(model) / (time.perf_counter() - t0)
            print(f"{name}: whole model {rate / 1e9:.1f} GMAC/s here, {threads} draw thread(s). Projected GPU: "
                  f"{args.gpu_gmacs:g} GMAC/s, {args.gpu_host_threads} draw threads, {args.pcie_gbs:g} GB/s to the "
                  f"device, {args.gpu_memory_gbs:g} GB/s device memory (assumptions, not measurements)")
            print(f"{'layer':10s} {'perturbation':12s} {'host path s':>11s} {'draw s':>7s} {'apply+restore s':>15s} "
                  f"{'to device MB':>12s} {'50k net s CPU':>13s} {'host path':>9s} {'resident':>8s} "
                  f"{'50k net s GPU':>13s} {'host path':>9s} {'resident':>8s}")
            for group in groups.values():
                resident = ResidentGroup(model, group, scope)
                for perturbation in ("synapse", "node", "gaussian"):
                    trial = Trial(group.name, perturbation, 0.5, 0)
                    t0 = time.perf_counter()
                    with perturbed(model, group, trial, scope):
                        pass
                    old = time.perf_counter() - t0
                    with resident.held():
                        # A sweep's steady state: σ is remembered after a layer's first Gaussian trial.
                        resident.draw(Trial(group.name, perturbation, 0.5, 1))
                        t0 = time.perf_counter()
                        edits = resident.draw(trial)
                        t1 = time.perf_counter()
                        with resident.applied(edits):
                            pass
                        for variable in resident.variables:
                            variable.numpy()  # wait for the device's assignments
                        t2 = time.perf_counter()
                    draw, apply_restore, sent = t1 - t0, t2 - t1, _edit_bytes(edits)
                    cpu = macs[group.name] * 50_000 / rate
                    gpu = macs[group.name] * 50_000 / (args.gpu_gmacs * 1e9)
                    cpu_extra = max(draw / threads, cpu) - cpu + apply_restore
                    gpu_extra = (max(draw / args.gpu_host_threads, gpu) - gpu + sent / (args.pcie_gbs * 1e9)
                                 + 4 * resident.nbytes / (args.gpu_memory_gbs * 1e9))
                    print(f"{group.name:10s} {perturbation:12s} {old:11.3f} {draw:7.3f} {apply_restore:15.3f} "
                          f"{sent / 1e6:12.1f} {cpu:13.1f} {_share(old, cpu):>9s} {_share(cpu_extra, cpu):>8s} "
                          f"{gpu:13.2f} {_share(old, gpu):>9s} {_share(gpu_extra, gpu):>8s}", flush=True)
            _parallel_draws(model, groups, scope)


def _parallel_draws(model, groups, scope) -> None:
    """Whether trials' draws run in parallel here: 2 × cores Gaussian draws of the largest
    layer, one after another and on one thread per core."""
    from concurrent.futures import ThreadPoolExecutor

    from replication.perturb import Trial
    from replication.run.resident import ResidentGroup

    cores = os.cpu_count() or 1
    resident = max((ResidentGroup(model, g, scope) for g in groups.values()), key=lambda r: r.nbytes)
    largest = resident.group
    trials = [Trial(largest.name, "gaussian", 0.5, r) for r in range(2 * cores)]
    with resident.held():
        resident.draw(trials[0])  # warm up
        t0 = time.perf_counter()
        for trial in trials:
            resident.draw(trial)
        t1 = time.perf_counter()
        with ThreadPoolExecutor(cores) as pool:
            list(pool.map(resident.draw, trials))
        t2 = time.perf_counter()
    print(f"parallel draws: {len(trials)} Gaussian draws of {largest.name}, one thread {t1 - t0:.2f} s, "
          f"{cores} threads {t2 - t1:.2f} s ({(t1 - t0) / (t2 - t1):.2f}x)", flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated, from: " + ", ".join(MODELS))
    parser.add_argument("--ways", default=",".join(WAYS), help="comma-separated, from: " + ", ".join(WAYS))
    parser.add_argument("--layers", help="comma-separated weight groups of the one model in --models (default: every one)")
    parser.add_argument("--limit", type=int, help="use only the first N images")
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--memory-gb", type=float, default=8.0, help="bound on decoded images + cached activations")
    parser.add_argument("--cache-dir", type=Path, help="for a memory-mapped image cache when --memory-gb is small")
    parser.add_argument("--check-dense-batching", action="store_true",
                        help="only measure stacked vs separate dense products")
    parser.add_argument("--host-work", action="store_true",
                        help="only measure each trial's work besides the network, host path and resident path")
    parser.add_argument("--gpu-gmacs", type=float, default=15000.0,
                        help="assumed GPU multiply-add rate for --host-work's projection (default 15000 GMAC/s)")
    parser.add_argument("--pcie-gbs", type=float, default=20.0,
                        help="assumed host-to-device rate for --host-work's projection (default 20 GB/s)")
    parser.add_argument("--gpu-memory-gbs", type=float, default=2000.0,
                        help="assumed GPU memory bandwidth for --host-work's projection (default 2000 GB/s)")
    parser.add_argument("--gpu-host-threads", type=int, default=8,
                        help="draw threads a GPU host runs in --host-work's projection (default 8, the engine's most)")
    parser.add_argument("--sweep", action="store_true",
                        help="only time whole sweeps (run_sweep: baseline + trials) against their floor")
    parser.add_argument("--sweeps", default="dense_1;conv_2,dense_1",
                        help="for --sweep: the layers of each sweep, sweeps separated by ';'")
    parser.add_argument("--repeats", type=int, default=1,
                        help="for --sweep: time each sweep this many times, each in a process of its own between "
                             "two rate processes, and summarise by the median ratio")
    parser.add_argument("--no-separate", action="store_true",
                        help="for --sweep: time run_sweep alone, not also the separate way (whose run is also "
                             "the check that the counts are the same)")
    parser.add_argument("--memory", action="store_true",
                        help="only measure a conv_2 sweep's peak anonymous memory at each of --bounds")
    parser.add_argument("--bounds", default="2,4,8", help="for --memory: --memory-gb values, comma-separated")
    parser.add_argument("--images", type=int,
                        help="for --memory (default 2600) and --sweep (default: the shared 1,300): images in a "
                             "validation set of links to the shared ones")
    # Internal: one way in a child process.
    parser.add_argument("--worker", choices=(*WAYS, "rate", "sweep", "separate", "memory"), help=argparse.SUPPRESS)
    parser.add_argument("--model-arg", help=argparse.SUPPRESS)
    parser.add_argument("--weights", type=Path, help=argparse.SUPPRESS)
    return parser


def record_peaks(report: dict, anonymous) -> None:
    """This process's peak memory so far, three ways, unless `report` already has them:
    ru_maxrss, the sampled anonymous peak and VmHWM (which also counts memory-mapped
    images' pages)."""
    report.setdefault("peak_rss_gb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30)  # Linux: kB
    report.setdefault("peak_anonymous_gb", anonymous.peak / 2**30)
    with open("/proc/self/status") as status:
        hwm = [int(line.split()[1]) for line in status if line.startswith("VmHWM:")]
    report.setdefault("peak_resident_gb", hwm[0] * 1024 / 2**30 if hwm else None)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        with AnonymousMemoryPeak() as args.anonymous:
            report = worker(args)
        record_peaks(report, args.anonymous)
        print(json.dumps(report))
        return 0
    if args.check_dense_batching:
        check_dense_batching(args)
        return 0
    if args.host_work:
        host_work(args)
        return 0
    if args.sweep:
        if args.repeats < 1:
            raise ReplicationError(None, f"--repeats must be at least 1, not {args.repeats}")
        with tempfile.TemporaryDirectory() as folder:
            print("\n".join(sweep_benchmark(Path(folder), args)))
        return 0
    if args.memory:
        memory_benchmark(args)
        return 0
    args.ways = [w for w in args.ways.split(",") if w]
    unknown = set(args.ways) - set(WAYS) | set(args.models.split(",")) - set(MODELS)
    if unknown:
        raise ReplicationError(None, f"unknown model or way: {', '.join(sorted(unknown))}")
    summary = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models.split(","):
            summary.append(benchmark_model(name, Path(folder), args))
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
