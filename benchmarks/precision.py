"""float32 against bfloat16 (Keras mixed precision) on real weights and real images, in one run:
the speed ratio of the model alone on decoded images, top-1/top-5 in each precision, and
the number of images whose top-5 set changes.

Models: SqueezeNet v1.1 and BVLC GoogLeNet from ../shared (real weights). Both precisions
are built in this one process (the policy applies when a model is built), and their timing
rounds alternate, so that the machine's other load falls on both alike.

Usage:
    python benchmarks/precision.py [--limit 1300] [--rounds 3] [--json out.json]
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from replication.paths import shared_dir

MODELS = {"squeezenet": ("squeezenet_v1.1", 227), "googlenet": ("bvlc_googlenet", 224)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=1300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    import tensorflow as tf

    from replication import data
    from replication.caffe.convert import convert_caffemodel
    from replication.models.registry import create_model
    from replication.run.precision import set_precision
    from replication.run.scoring import scores_model, topk_correct

    caffe = shared_dir() / "data" / "caffe"
    report = {}
    with tempfile.TemporaryDirectory() as work:
        for name in args.models.split(","):
            folder, size = MODELS[name]
            weights = Path(work) / f"{name}.h5"
            convert_caffemodel(caffe / folder / f"{folder}.caffemodel", weights, progress=False)
            ds = data.find_dataset(shared_dir() / "data" / "ilsvrc2012_val_subset", limit=args.limit)
            images, labels = data.load_arrays(ds, data.Preprocessing(resize=size, crop=size, mean="pixel"))
            forwards = {}
            for precision in ("float32", "bfloat16"):
                set_precision(precision)
                model = scores_model(create_model(caffe / folder / "deploy.prototxt", weights,
                                                  input_shape=(size, size, 3)))
                forwards[precision] = tf.function(lambda x, m=model: tf.cast(m(x, training=False), tf.float32))
            set_precision("float32")
            logits, seconds = {}, {p: [] for p in forwards}
            for _ in range(args.rounds):
                for precision, forward in forwards.items():
                    forward(images[: args.batch_size])  # traced and warm
                    start = time.perf_counter()
                    out = [forward(images[s : s + args.batch_size]).numpy()
                           for s in range(0, len(labels), args.batch_size)]
                    seconds[precision].append(time.perf_counter() - start)
                    logits[precision] = np.concatenate(out)
            result = {"images": len(labels)}
            for precision, values in logits.items():
                top1, top5 = topk_correct(values, labels)
                rate = len(labels) / float(np.median(seconds[precision]))
                result[precision] = {"top1": top1 / len(labels), "top5": top5 / len(labels), "images_per_s": rate}
            sets = {p: np.sort(np.argsort(-v, axis=1)[:, :5], axis=1) for p, v in logits.items()}
            result["top5_sets_changed"] = int((sets["float32"] != sets["bfloat16"]).any(axis=1).sum())
            result["speed_ratio_bf16_over_f32"] = result["bfloat16"]["images_per_s"] / result["float32"]["images_per_s"]
            report[name] = result
            print(json.dumps({name: result}), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
