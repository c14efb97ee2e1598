"""Ranking logits against ranking the float32 softmax, on real weights and real images.

We rank logits; the authors ranked Keras' float32 softmax output. The two orders differ only
where probabilities underflow to exactly 0, and for top-5 only when fewer than five classes
keep a nonzero probability. For every weighted layer of the network this perturbs the layer
(100% node knockout: all its weights and biases zero; Gaussian noise: every weight and bias
plus N(0, k × the array's std)), runs the images, and counts per image the classes whose
float32 softmax probability, exp(x − max) / Σ, is nonzero.

Forward passes use OpenCV's Caffe importer (independent of this package's Keras models, and
quick on a CPU); a fresh network is read for each perturbation, because OpenCV fixes the
weights at the first forward pass.

Usage:
    python benchmarks/softmax_ranking.py --model squeezenet --images 128 --ks 1,2,4
"""

import argparse
import time

import numpy as np

from replication.paths import shared_dir

MODELS = {  # folder, input size, the layer whose output the softmax takes
    "squeezenet": ("squeezenet_v1.1", 227, "pool10"),
    "googlenet": ("bvlc_googlenet", 224, "loss3/classifier"),
}
MEAN_BGR = (104.0, 117.0, 123.0)


def nonzero_classes(logits: np.ndarray) -> np.ndarray:
    """Per row, how many classes keep a nonzero float32 softmax probability."""
    x = logits.astype(np.float32)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True, dtype=np.float32)
    return (p > 0).sum(axis=1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=tuple(MODELS), default="squeezenet")
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--ks", default="1,2,4", help="Gaussian k values, comma-separated")
    args = parser.parse_args(argv)

    import cv2

    folder, size, output = MODELS[args.model]
    root = shared_dir() / "data" / "caffe" / folder
    subset = shared_dir() / "data" / "ilsvrc2012_val_subset"
    names = [line.split()[0] for line in (subset / "val.txt").read_text().splitlines()[: args.images]]
    images = [cv2.resize(cv2.imread(str(subset / "images" / n)), (size, size)).astype(np.float32) - np.float32(MEAN_BGR)
              for n in names]
    blob = cv2.dnn.blobFromImages(images, 1.0, (size, size), (0, 0, 0), swapRB=False, crop=False)

    def load():
        return cv2.dnn.readNetFromCaffe(str(root / "deploy.prototxt"), str(root / f"{folder}.caffemodel"))

    net = load()
    weighted = [n for n in net.getLayerNames()
                if net.getLayer(net.getLayerId(n)).type in ("Convolution", "InnerProduct")]
    kinds = ["node100"] + [f"gaussian{k}" for k in args.ks.split(",")]
    rng = np.random.default_rng(0)
    fewest = {kind: (10**9, "") for kind in kinds}
    under_five = dict.fromkeys(kinds, 0)
    started = time.time()
    for name in weighted:
        original = [b.copy() for b in net.getLayer(net.getLayerId(name)).blobs]
        for kind in kinds:
            if kind == "node100":
                arrays = [np.zeros_like(b) for b in original]
            else:
                k = float(kind[len("gaussian"):])
                arrays = [(b + rng.normal(0, k * b.std(), b.shape)).astype(np.float32) for b in original]
            fresh = load()
            for i, array in enumerate(arrays):
                fresh.setParam(fresh.getLayerId(name), i, array)
            fresh.setInput(blob)
            counts = nonzero_classes(fresh.forward(output).reshape(len(images), -1))
            under_five[kind] += int((counts < 5).sum())
            if counts.min() < fewest[kind][0]:
                fewest[kind] = (int(counts.min()), name)
    print(f"{args.model}: {len(weighted)} weighted layers, {len(images)} images, {time.time() - started:.0f} s")
    for kind in kinds:
        print(f"  {kind}: fewest classes with nonzero softmax {fewest[kind][0]} ({fewest[kind][1]}); "
              f"trials×images with fewer than 5: {under_five[kind]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
