"""Evaluation throughput on the 1,300 shared validation images.

For each model, three rates in images/s:
  pipeline     tf.data alone: read, decode, resize, crop, subtract the mean, batch;
  model        the network alone, on images decoded beforehand and held in memory;
  end to end   replication.run.scoring.evaluate_model(), decoding while the model runs.
and end to end / the slower of the two parts: 1.0 means the pipeline hides completely
behind the model (or the other way round); the goal is at least 0.85. On a CPU-only
machine both parts compete for the same cores, so the ratio cannot exceed
1 / (1 + slower / faster) there; with a GPU running the model, they overlap for real.

Models: AlexNet with synthetic weights (the real BVLC weights cannot be had offline;
the speed does not depend on the values), preprocessed as for BVLC models (resize 256,
crop 227, mean image); SqueezeNet v1.1 with its real weights, on the 227x227 images as
they are with the mean pixel (how its OpenCV reference accuracy was measured).

    python benchmarks/eval_throughput.py [--models alexnet,squeezenet] [--json out.json]

Reads $REPLICATION_SHARED (default ../shared). Each round measures the three rates one
after the other, and the ratio is taken within a round, so that a change in other load
on the machine between measurements does not distort it; medians over --rounds rounds
are printed.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from replication import data
from replication.caffe.convert import convert_caffemodel
from replication.commands.common import run_cli
from replication.errors import ReplicationError
from replication.files import atomic_output
from replication.models.registry import create_model
from replication.models.synthetic import write_synthetic_alexnet
from replication.paths import SHARED_ENV, shared_dir
from replication.run.scoring import evaluate_model, scores_model

GOAL = 0.85


def alexnet(shared: Path, work: Path):
    caffemodel = work / "synthetic_alexnet.caffemodel"
    write_synthetic_alexnet(caffemodel, seed=0)
    convert_caffemodel(caffemodel, work / "alexnet.h5", progress=False)
    prep = data.Preprocessing(resize=256, crop=227, mean="image", mean_file=shared / "data/caffe/ilsvrc_2012_mean.npy")
    return "AlexNet (synthetic weights)", create_model("alexnet", work / "alexnet.h5"), prep


def squeezenet(shared: Path, work: Path):
    folder = shared / "data/caffe/squeezenet_v1.1"
    convert_caffemodel(folder / "squeezenet_v1.1.caffemodel", work / "squeezenet.h5", progress=False)
    model = create_model(str(folder / "deploy.prototxt"), work / "squeezenet.h5", input_shape=(227, 227, 3))
    return "SqueezeNet v1.1", model, data.Preprocessing(resize=227, crop=227, mean="pixel")


MODELS = {"alexnet": alexnet, "squeezenet": squeezenet}


def pipeline_rate(ds, prep, batch_size) -> float:
    start = time.perf_counter()
    count = sum(len(labels) for _, labels in data.batches(ds, prep, batch_size))
    return count / (time.perf_counter() - start)


def model_rate(model, images, batch_size) -> float:
    logits = scores_model(model)
    score = tf.function(lambda x: logits(x, training=False))
    batches = [tf.constant(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    for batch in {tuple(b.shape): b for b in batches}.values():  # trace every batch shape first
        score(batch)
    start = time.perf_counter()
    for batch in batches:
        score(batch).numpy()
    return len(images) / (time.perf_counter() - start)


def measure(name, model, prep, ds, batch_size, rounds) -> dict:
    """The three rates, measured one after another in each round so that every round's
    ratio compares rates taken under the same load; the medians over the rounds."""
    images, _ = data.load_arrays(ds, prep)
    taken = []
    for _ in range(rounds):
        pipeline = pipeline_rate(ds, prep, batch_size)
        alone = model_rate(model, images, batch_size)
        end_to_end = evaluate_model(model, ds, prep, batch_size, progress=False)["images_per_s"]
        taken.append((pipeline, alone, end_to_end, end_to_end / min(pipeline, alone)))
        print(f"  round {len(taken)}: pipeline {pipeline:.1f}, model {alone:.1f}, end to end {end_to_end:.1f} images/s, "
              f"ratio {taken[-1][3]:.2f}", file=sys.stderr)
    pipeline, alone, end_to_end, ratio = np.median(np.array(taken), axis=0)
    return {
        "model": name,
        "images": len(ds),
        "preprocessing": f"resize {prep.resize}, crop {prep.crop}, mean {prep.mean}",
        "batch_size": batch_size,
        "rounds": rounds,
        "pipeline_images_per_s": pipeline,
        "model_images_per_s": alone,
        "end_to_end_images_per_s": end_to_end,
        "end_to_end_over_slower": ratio,
    }


def report(result) -> None:
    print(f"{result['model']}: {result['images']} images, {result['preprocessing']}, batch {result['batch_size']}, "
          f"median of {result['rounds']} rounds")
    print(f"  input pipeline alone     {result['pipeline_images_per_s']:8.1f} images/s")
    print(f"  model alone (decoded)    {result['model_images_per_s']:8.1f} images/s")
    print(f"  end to end               {result['end_to_end_images_per_s']:8.1f} images/s")
    ratio = result["end_to_end_over_slower"]
    print(f"  end to end / slower part {ratio:8.2f}  ({'meets' if ratio >= GOAL else 'below'} the goal of {GOAL})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="alexnet,squeezenet", help="comma-separated: alexnet, squeezenet")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--limit", type=int, help="only the first N images")
    parser.add_argument("--rounds", type=int, default=3, help="measurement rounds; medians are reported (default 3)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise ReplicationError(None, f"unknown model {unknown[0]!r}: choose from {', '.join(MODELS)}")
    shared = shared_dir()
    if not shared.is_dir():
        raise ReplicationError(shared, f"reference data not found (set {SHARED_ENV})")
    ds = data.find_dataset(shared / "data/ilsvrc2012_val_subset", limit=args.limit)
    gpus = tf.config.list_physical_devices("GPU")
    print(f"device: {'GPU ' + gpus[0].name if gpus else 'CPU only'}, TensorFlow {tf.__version__}")

    results = []
    with tempfile.TemporaryDirectory() as work:
        for name in names:
            label, model, prep = MODELS[name](shared, Path(work))
            results.append(measure(label, model, prep, ds, args.batch_size, args.rounds))
            report(results[-1])
            sys.stdout.flush()
    if args.json:
        with atomic_output(args.json) as tmp:
            tmp.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
