"""One check of the engine on a GPU, ready for the day one is lent: at most about 8 minutes
on one GPU. It prints each figure and writes them all as JSON.

  devices     what TensorFlow sees;
  exact       float32 logits with TF32 off on the device against the CPU's, on real images
              (largest difference relative to the largest logit; must be <= 1e-5);
  precisions  TF32 and bfloat16 against float32: images/s and how the logits and top-1
              classes change;
  evaluation  the model's images/s and its multiply-add rate against a float32 matrix
              product's rate measured in the same run;
  sweep       a dense_1 sweep (baseline and trials, `engine.run_layers`) against its floor
              (one pass of the whole model and each trial's suffix at the model's measured
              rate), and the share of a dense_1 trial that is host work (its draw);
  streams     the same trials as two streams on the one device against one stream.

`--cpu` runs the same code on the CPU on a tiny input (AlexNet at 67 x 67 pixels, random
weights and images, a few images): it checks the script, not the hardware.

Usage:
    python benchmarks/gpu_check.py [--images 512] [--out gpu_check.json]
    python benchmarks/gpu_check.py --cpu --out /tmp/gpu_check.json
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

TOLERANCE = 1e-5


def _rel(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / max(np.max(np.abs(b)), 1e-30))


def _timed(run, rounds: int = 2) -> float:
    run()  # traced and warmed outside the timing
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return best


def _inputs(args):
    """(model builder, images, labels): synthetic AlexNet at full size on real images, or
    tiny random ones for --cpu."""
    from replication.models.alexnet import build_alexnet
    from replication.models.groups import group_layers, weight_groups
    from replication.models.synthetic import synthetic_alexnet_net
    from replication.models.weights import keras_arrays

    if args.cpu:
        rng = np.random.default_rng(0)
        reference = build_alexnet(image_size=67)
        weights = [rng.normal(0, np.sqrt(2 / np.prod(w.shape[:-1])), w.shape).astype("float32")
                   for w in reference.get_weights()]
        images = rng.normal(0, 50, (args.images, 67, 67, 3)).astype("float32")
        return (lambda: build_alexnet(image_size=67)), weights, images, None

    from replication import data
    from replication.caffe.hdf5 import CaffeBlobs
    from replication.paths import shared_dir

    reference = build_alexnet()
    net = synthetic_alexnet_net(seed=0)
    for group in weight_groups(reference).values():
        caffe = net.layer(group.caffe_name)
        members = group_layers(reference, group)
        for layer, arrays in zip(members, keras_arrays(group, members, CaffeBlobs(caffe.type, caffe.blobs))):
            layer.set_weights(arrays)
    folder = args.data or shared_dir() / "data" / "ilsvrc2012_val_subset"
    prep = data.Preprocessing(resize=227, crop=227, mean="pixel")
    images, _ = data.load_arrays(data.find_dataset(folder, limit=args.images), prep)
    return build_alexnet, reference.get_weights(), images, None


def check(args) -> dict:
    import keras
    import tensorflow as tf

    from replication.models.groups import weight_groups
    from replication.perturb import Trial
    from replication.run import engine
    from replication.run.costs import model_macs, suffix_macs
    from replication.run.resident import ResidentGroup
    from replication.run.scoring import scores_model

    device = "/CPU:0" if args.cpu else "/GPU:0"
    report = {"mode": "cpu" if args.cpu else "gpu", "device": device,
              "devices": [d.name for d in tf.config.list_physical_devices()]}
    print(f"devices: {report['devices']}", flush=True)
    if not args.cpu and not tf.config.list_physical_devices("GPU"):
        raise SystemExit("error: no GPU visible to TensorFlow (use --cpu to check the script on the CPU)")
    build, weights, images, _ = _inputs(args)
    batch = min(args.batch_size, len(images))

    def model_in(precision):
        policy = {"float32": "float32", "tf32": "float32", "bfloat16": "mixed_bfloat16"}[precision]
        keras.mixed_precision.set_global_policy(policy)
        try:
            model = build()
            model.set_weights(weights)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        return model

    def logits_on(model, where):
        scoring = scores_model(model)
        with tf.device(where):
            forward = tf.function(lambda x: tf.cast(scoring(x, training=False), tf.float32))
            return lambda: np.concatenate([forward(images[s : s + batch]).numpy() for s in range(0, len(images), batch)])

    # Exactness: float32 with TF32 off, the device against the CPU.
    tf.config.experimental.enable_tensor_float_32_execution(False)
    model = model_in("float32")
    on_cpu = logits_on(model, "/CPU:0")()
    run32 = logits_on(model, device)
    on_device = run32()
    report["exact"] = {"max_relative_difference": _rel(on_device, on_cpu), "tolerance": TOLERANCE}
    report["exact"]["passed"] = report["exact"]["max_relative_difference"] <= TOLERANCE
    print(f"float32 (TF32 off) {device} against the CPU: {report['exact']['max_relative_difference']:.2e} "
          f"(<= {TOLERANCE:g}: {report['exact']['passed']})", flush=True)

    # Precisions: speed and how far the logits and top-1 classes move.
    seconds32 = _timed(run32)
    report["precisions"] = {"float32": {"images_per_s": len(images) / seconds32}}
    for precision in ("tf32", "bfloat16"):
        tf.config.experimental.enable_tensor_float_32_execution(precision == "tf32")
        run = logits_on(model_in(precision), device)
        logits, seconds = run(), _timed(run)
        report["precisions"][precision] = {
            "images_per_s": len(images) / seconds, "speed_vs_float32": seconds32 / seconds,
            "max_relative_difference": _rel(logits, on_device),
            "top1_changed": float(np.mean(np.argmax(logits, 1) != np.argmax(on_device, 1)))}
        print(f"{precision}: {report['precisions'][precision]}", flush=True)
    tf.config.experimental.enable_tensor_float_32_execution(False)

    # Evaluation against a matrix product's rate measured now.
    size = 512 if args.cpu else 8192
    with tf.device(device):
        a = tf.random.normal((size, size))
        product = tf.function(lambda: tf.reduce_sum(tf.matmul(a, a)))
        matmul_gmacs = size**3 / _timed(lambda: product().numpy()) / 1e9
    model_gmacs = model_macs(model) * len(images) / seconds32 / 1e9
    report["evaluation"] = {"images_per_s": len(images) / seconds32, "model_gmacs": model_gmacs,
                            "matmul_gmacs": matmul_gmacs, "share_of_matmul_peak": model_gmacs / matmul_gmacs}
    print(f"evaluation: {report['evaluation']}", flush=True)

    # A dense_1 sweep against its floor; the host's share of a trial.
    groups = weight_groups(model)
    labels = np.argmax(on_device, axis=1)
    trials = [Trial("dense_1", "synapse", 0.5, r) for r in range(args.trials)]
    baseline = Trial("-", "none", 0.0, 0)

    def sweep(devices=None):
        with tf.device(device):
            return engine.run_layers(model, images, labels, [groups["dense_1"]], trials, "gpu-check",
                                     batch_size=batch, baseline=baseline, devices=devices)

    sweep()  # traced outside the timing
    t0 = time.perf_counter()
    one = sweep()
    sweep_seconds = time.perf_counter() - t0
    rate = model_macs(model) * len(images) / seconds32
    floor = (model_macs(model) + len(trials) * suffix_macs(model, groups)["dense_1"]) * len(images) / rate
    resident = ResidentGroup(model, groups["dense_1"], "gpu-check")
    with resident.held():
        draw = _timed(lambda: resident.draw(trials[0]), rounds=1)
    trial_seconds = float(np.mean([s for t, _, _, s in one if t != baseline]))
    report["sweep"] = {"seconds": sweep_seconds, "floor_seconds": floor, "sweep_over_floor": sweep_seconds / floor,
                       "trials": len(trials), "dense_1_draw_seconds": draw, "dense_1_trial_seconds": trial_seconds,
                       "host_share_of_a_dense_1_trial": draw / (draw + trial_seconds)}
    print(f"sweep: {report['sweep']}", flush=True)

    # Two trial streams on the one device against one.
    t0 = time.perf_counter()
    two = sweep(devices=[device, device])
    two_seconds = time.perf_counter() - t0
    same = sorted((repr(t), a, b) for t, a, b, _ in one) == sorted((repr(t), a, b) for t, a, b, _ in two)
    report["streams"] = {"one_seconds": sweep_seconds, "two_seconds": two_seconds,
                         "two_over_one_speed": sweep_seconds / two_seconds, "same_counts": same}
    print(f"streams: {report['streams']}", flush=True)
    report["passed"] = bool(report["exact"]["passed"] and same)
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", action="store_true", help="run on the CPU on a tiny input (checks the script)")
    parser.add_argument("--images", type=int, help="images (default 512; 16 with --cpu)")
    parser.add_argument("--trials", type=int, default=4, help="dense_1 trials in the sweep")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--data", type=Path, help="validation images (default: the shared subset)")
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"), help="where the JSON goes")
    args = parser.parse_args(argv)
    if args.images is None:
        args.images = 16 if args.cpu else 512
    if args.cpu:
        args.batch_size = min(args.batch_size, 8)
    report = check(args)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {args.out}; passed: {report['passed']}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
