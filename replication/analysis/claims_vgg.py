"""The claims of the paper's Figure 5 caption: VGG-16 under Gaussian weight noise.

Registered with the same `@claim` decorator as the AlexNet claims (`claims.py`), so
`compare`, the figure reports and the notebook list them once this module is imported.
They name VGG-16's layers, as Keras Applications' VGG16 (the network the authors' code
ran) names them; the same layers of the Caffe VGG-16 (replication/reference/
vgg16_deploy.prototxt: conv1_1 … conv5_3, fc6 … fc8) are recognised too. For any other
network they read "n.a.", whatever `--layer-map` says: they are not AlexNet's claims.

Readings, as in claims.py: "loses x%" is a relative loss, 1 − accuracy / baseline, of the
mean over repeats; "every layer after block3_conv1" is by default every layer strictly
after it in network order (block3_conv2 … predictions: the caption does not say whether
fc1, fc2 and predictions were plotted), or only the convolutional ones (block3_conv2 …
block5_conv3) with `after_block3_conv1="conv"`; it is checked on those the results contain
(the detail names the reading and the layers missing). 5.03% and 23.9% are bounds the
paper observed: a layer breaks one only when our whole interval of its loss lies beyond it.
3.56% and 15.3% are measurements: they hold when inside our interval (claims.py's policy).
Figure 5 plots top-5, so with another metric they read "n.a.".
"""

import numpy as np
import pandas as pd
from scipy import stats as sps

from replication.analysis import stats
from replication.analysis.claims import (
    ALPHA,
    MEASUREMENT,
    OBSERVED_BOUND,
    Evidence,
    Missing,
    Outcome,
    bootstrap_interval,
    claim,
    inside,
    interval_text,
    recognise,
)

VGG16_LAYERS = (
    "block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2",
    "block3_conv1", "block3_conv2", "block3_conv3",
    "block4_conv1", "block4_conv2", "block4_conv3",
    "block5_conv1", "block5_conv2", "block5_conv3",
    "fc1", "fc2", "predictions",
)  # fmt: skip
# The same layers in the Caffe VGG-16 (the VGG authors' names).
CAFFE_NAMES = dict(zip(VGG16_LAYERS, (
    "conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
    "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3", "fc6", "fc7", "fc8",
)))  # fmt: skip
KERAS_MODEL = "vgg16"  # the registered model's name in results tables
CAFFE_NET = "VGG_ILSVRC_16_layers"  # the net name of vgg16_deploy.prototxt (tables add "-<hash>")
AFTER_BLOCK3_CONV1 = VGG16_LAYERS[VGG16_LAYERS.index("block3_conv1") + 1 :]
PERTURBATION = "gaussian"


def vgg16_names(ev: Evidence) -> dict[str, str]:
    """VGG-16 layer (Keras name) -> the layer name in these results.

    Args:
        ev: the results.

    Returns:
        The identity for Keras Applications' VGG16 (model "vgg16"), the Caffe names for
        the Caffe VGG-16 prototxt; Missing for any other network or metric.
    """
    if ev.metric != "top5":
        raise Missing("Figure 5 plots top-5 accuracy only")
    names = _names(ev.df)
    if names is None:
        models = ev.df["model"].dropna().unique() if "model" in ev.df.columns else ()
        raise Missing(f"a claim about VGG-16's layers; these results are of {models[0] if len(models) else 'no model'}")
    return names


def _names(df: pd.DataFrame) -> dict[str, str] | None:
    # A table that does not name its model (built by hand) is not known to be VGG-16's.
    models = df["model"].dropna().unique() if "model" in df.columns else ()
    model = str(models[0]) if len(models) else ""
    if model == KERAS_MODEL:
        return {layer: layer for layer in VGG16_LAYERS}
    if model.startswith(CAFFE_NET + "-"):
        return dict(CAFFE_NAMES)
    return None


@recognise("VGG-16")
def is_vgg16(df: pd.DataFrame) -> bool:
    """Whether a results table is of VGG-16 (Keras Applications' or the Caffe prototxt's)."""
    return _names(df) is not None


def _values(ev: Evidence, names: dict[str, str], layer: str, level: float) -> np.ndarray:
    values = stats.trial_values(ev.df, names[layer], PERTURBATION, level, ev.metric)
    if values.size == 0:
        raise Missing(f"no Gaussian results for {layer} at k = {level:g}")
    return values


def _loss_interval(ev: Evidence, values: np.ndarray) -> tuple[float, float]:
    low, high = bootstrap_interval(values)
    base = ev.require_baseline()
    return stats.relative_loss(high, base), stats.relative_loss(low, base)


def after_block3_conv1(reading: str) -> tuple[str, ...]:
    """The layers "after block3_conv1" means: "every" (block3_conv2 … predictions) or "conv"
    (block3_conv2 … block5_conv3)."""
    return AFTER_BLOCK3_CONV1 if reading == "every" else tuple(n for n in AFTER_BLOCK3_CONV1 if "conv" in n)


def _every_layer_after(ev: Evidence, level: float, bound: float) -> Outcome:
    names = vgg16_names(ev)
    base = ev.require_baseline()  # a missing baseline is not a missing layer
    reading = ev.options.get("after_block3_conv1", "every")
    layers = after_block3_conv1(reading)
    intervals, means, missing = {}, {}, []
    for layer in layers:
        try:
            values = _values(ev, names, layer, level)
        except Missing:
            missing.append(layer)
            continue
        intervals[layer], means[layer] = _loss_interval(ev, values), stats.relative_loss(float(values.mean()), base)
    if not intervals:
        raise Missing(f"no Gaussian results after block3_conv1 at k = {level:g}")
    worst = max(means, key=means.get)
    beyond = [layer for layer, (low, _) in intervals.items() if low >= bound]
    described = ("every layer after it, fc1, fc2 and predictions included" if reading == "every"
                 else "its convolutional layers only (block3_conv2 … block5_conv3)")
    detail = (f"reading: {described} (the other: after_block3_conv1=\"{'conv' if reading == 'every' else 'every'}\"); "
              f"worst: {worst}, loss interval {interval_text(intervals[worst], '.2%')}; {len(intervals)} of {len(layers)} layers; "
              f"{OBSERVED_BOUND}")
    if beyond:
        detail += f"; beyond it: {', '.join(beyond)}"
    if missing:
        detail += f"; not run: {', '.join(missing)}"
    return Outcome(f"loss < {bound:.2%}", f"max loss {means[worst]:.2%}", not beyond, detail=detail,
                   numbers=(bound, means[worst], *intervals[worst]))


def _block1_conv2(ev: Evidence, level: float, paper: float) -> Outcome:
    values = _values(ev, vgg16_names(ev), "block1_conv2", level)
    interval = _loss_interval(ev, values)
    loss = stats.relative_loss(float(values.mean()), ev.require_baseline())
    return Outcome(f"loss {paper:.2%}", f"loss {loss:.2%} {interval_text(interval, '.2%')}", inside(paper, interval),
                   detail=MEASUREMENT, numbers=(paper, loss, *interval))


@claim("vgg16_gaussian1_after_block3_conv1",
       "VGG-16, Gaussian noise k = 1: every layer after block3_conv1 loses < 5.03%", (PERTURBATION,), network="VGG-16")
def _vgg_k1_after(ev):
    return _every_layer_after(ev, 1.0, 0.0503)


@claim("vgg16_gaussian2_after_block3_conv1",
       "VGG-16, Gaussian noise k = 2: every layer after block3_conv1 loses < 23.9%", (PERTURBATION,), network="VGG-16")
def _vgg_k2_after(ev):
    return _every_layer_after(ev, 2.0, 0.239)


@claim("vgg16_gaussian1_block1_conv2", "VGG-16, Gaussian noise k = 1: block1_conv2 loses 3.56%", (PERTURBATION,),
       network="VGG-16")
def _vgg_k1_block1_conv2(ev):
    return _block1_conv2(ev, 1.0, 0.0356)


@claim("vgg16_gaussian2_block1_conv2", "VGG-16, Gaussian noise k = 2: block1_conv2 loses 15.3%", (PERTURBATION,),
       network="VGG-16")
def _vgg_k2_block1_conv2(ev):
    return _block1_conv2(ev, 2.0, 0.153)


@claim("vgg16_later_more_resilient",
       "VGG-16, Gaussian noise: later layers are more resilient than earlier ones, except block1_conv2",
       (PERTURBATION,), network="VGG-16", kind="qualitative")
def _vgg_later_resilient(ev):
    names = vgg16_names(ev)
    ev.require_baseline()
    levels = sorted({lv for lv in ev.df.loc[ev.df["perturbation"] == PERTURBATION, "level"] if lv > 0})
    if not levels:
        raise Missing("no Gaussian results")
    layers = [layer for layer in VGG16_LAYERS if layer != "block1_conv2"]
    results, failures = [], []
    for level in levels:
        depth, means = [], []
        for i, layer in enumerate(layers):
            values = stats.trial_values(ev.df, names[layer], PERTURBATION, level, ev.metric)
            if values.size:
                depth.append(i)
                means.append(float(values.mean()))
        if len(depth) < 3:
            continue
        rho, p = sps.spearmanr(depth, means)
        results.append((level, float(rho), float(p)))
        if not (rho > 0 and p < ALPHA):
            failures.append(f"k = {level:g}")
    if not results:
        raise Missing("fewer than three VGG-16 layers (block1_conv2 aside) with Gaussian results at one k")
    worst = min(results, key=lambda r: r[1])
    detail = ("statistic: Spearman ρ of layer depth against mean accuracy at each k run, block1_conv2 left out; "
              f"holds when ρ > 0 with p < {ALPHA} at every k; "
              + "; ".join(f"k = {lv:g}: ρ {rho:.2f}, p {p:.3g}" for lv, rho, p in results))
    if failures:
        detail += f"; fails at {', '.join(failures)}"
    return Outcome("ρ > 0, p < 0.05", f"min ρ {worst[1]:.2f} (k = {worst[0]:g})", not failures, max(r[2] for r in results),
                   detail=detail, numbers=(0.0, worst[1], worst[1], max(r[1] for r in results)))
