"""How fast recovery training runs here: training images/s (one SGD step: forward in
training mode, backward, update) against inference images/s, for SqueezeNet v1.1 (real
weights from ../shared) and AlexNet (synthetic weights), with op determinism on as
`python -m replication.recover` runs it. Inputs are fixed random batches, so decoding is
not timed (tf.data decodes in other threads while a step runs).

It prints, per model, the multiply-adds of one inference per image, both rates, and the
multiply-add rate of training taken as three inference passes per image (forward, and a
backward pass of about twice the forward's work), the usual rule for convolutional networks.

Usage:
    python benchmarks/train_speed.py [--models squeezenet,alexnet] [--batch-size 32] [--steps 5]
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="squeezenet,alexnet")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args(argv)

    import tensorflow as tf
    from sweep_speed import prepare_weights  # the benchmarks' shared weights: beside this script

    from replication.models.groups import weight_groups
    from replication.models.registry import create_model
    from replication.recovery.train import Trainer, Training, deterministic
    from replication.run.costs import model_macs

    deterministic()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models.split(","):
            model = create_model(*prepare_weights(name, Path(folder)))
            size = model.input_shape[1]
            x = tf.constant(rng.normal(0, 50, (args.batch_size, size, size, 3)).astype(np.float32))
            y = tf.constant(rng.integers(0, 1000, args.batch_size).astype(np.int32))
            trainer = Trainer(model, list(weight_groups(model).values()), None, Training(args.steps, args.steps))
            trainer.seed_dropout(0)
            float(trainer.step(x, y))  # trace
            start = time.perf_counter()
            for _ in range(args.steps):
                float(trainer.step(x, y))
            train_rate = args.steps * args.batch_size / (time.perf_counter() - start)
            forward = tf.function(lambda v, model=model: model(v, training=False))
            forward(x)
            start = time.perf_counter()
            for _ in range(args.steps):
                forward(x).numpy()
            infer_rate = args.steps * args.batch_size / (time.perf_counter() - start)
            macs = model_macs(model)
            print(f"{name}: {macs / 1e9:.3f} GMAC per image; training {train_rate:.1f} images/s "
                  f"(≈ {3 * macs * train_rate / 1e9:.0f} GMAC/s), inference {infer_rate:.1f} images/s "
                  f"({macs * infer_rate / 1e9:.0f} GMAC/s); inference/training = {infer_rate / train_rate:.2f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
