"""The claims of the paper's Figure 5 caption: VGG-16 under Gaussian weight noise.

Registered with the same `@claim` decorator as the AlexNet claims (`claims.py`), so
`compare`, the figure reports and the notebook list them once this module is imported.
They name VGG-16's layers, as Keras Applications' VGG16 (the network the authors' code
ran) names them; the same layers of the Caffe VGG-16 (replication/reference/
vgg16_deploy.prototxt: conv1_1 … conv5_3, fc6 … fc8) are recognised too. For any other
network they read "n.a.", whatever `--layer-map` says: they are not AlexNet's claims.

Readings, as in claims.py: "loses x%" is a relative loss, 1 − accuracy / baseline, of the
mean over repeats; "every layer after block3_conv1" is the layers strictly after it in
network order (block3_conv2 … predictions), checked on those the results contain (the
detail names the ones missing); a point value ("block1_conv2 loses 3.56%") holds within
±`claims.TOLERANCE["accuracy"]` of relative loss. Figure 5 plots top-5, so with another
metric they read "n.a.".
"""

from replication.analysis import stats
from replication.analysis.claims import TOLERANCE, Evidence, Missing, Outcome, claim

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
    # A table that does not name its model (built by hand) is not known to be VGG-16's.
    models = ev.df["model"].dropna().unique() if "model" in ev.df.columns else ()
    model = str(models[0]) if len(models) else ""
    if model == KERAS_MODEL:
        return {layer: layer for layer in VGG16_LAYERS}
    if model.startswith(CAFFE_NET + "-"):
        return dict(CAFFE_NAMES)
    raise Missing(f"a claim about VGG-16's layers; these results are of {model or 'no model'}")


def _loss(ev: Evidence, names: dict[str, str], layer: str, level: float) -> float:
    values = stats.trial_values(ev.df, names[layer], PERTURBATION, level, ev.metric)
    if values.size == 0:
        raise Missing(f"no Gaussian results for {layer} at k = {level:g}")
    return stats.relative_loss(float(values.mean()), ev.require_baseline())


def _every_layer_after(ev: Evidence, level: float, bound: float) -> Outcome:
    names = vgg16_names(ev)
    ev.require_baseline()  # a missing baseline is not a missing layer
    losses, missing = {}, []
    for layer in AFTER_BLOCK3_CONV1:
        try:
            losses[layer] = _loss(ev, names, layer, level)
        except Missing:
            missing.append(layer)
    if not losses:
        raise Missing(f"no Gaussian results after block3_conv1 at k = {level:g}")
    worst = max(losses, key=losses.get)
    detail = f"worst: {worst}; {len(losses)} of {len(AFTER_BLOCK3_CONV1)} layers"
    if missing:
        detail += f"; not run: {', '.join(missing)}"
    return Outcome(f"loss < {bound:.2%}", f"max loss {losses[worst]:.2%}", losses[worst] < bound, detail=detail)


def _block1_conv2(ev: Evidence, level: float, paper: float) -> Outcome:
    loss = _loss(ev, vgg16_names(ev), "block1_conv2", level)
    tolerance = TOLERANCE["accuracy"]
    return Outcome(f"loss {paper:.2%}", f"loss {loss:.2%}", abs(loss - paper) <= tolerance,
                   detail=f"within ±{tolerance} of relative loss")


@claim("vgg16_gaussian1_after_block3_conv1",
       "VGG-16, Gaussian noise k = 1: every layer after block3_conv1 loses < 5.03%", (PERTURBATION,))
def _vgg_k1_after(ev):
    return _every_layer_after(ev, 1.0, 0.0503)


@claim("vgg16_gaussian2_after_block3_conv1",
       "VGG-16, Gaussian noise k = 2: every layer after block3_conv1 loses < 23.9%", (PERTURBATION,))
def _vgg_k2_after(ev):
    return _every_layer_after(ev, 2.0, 0.239)


@claim("vgg16_gaussian1_block1_conv2", "VGG-16, Gaussian noise k = 1: block1_conv2 loses 3.56%", (PERTURBATION,))
def _vgg_k1_block1_conv2(ev):
    return _block1_conv2(ev, 1.0, 0.0356)


@claim("vgg16_gaussian2_block1_conv2", "VGG-16, Gaussian noise k = 2: block1_conv2 loses 15.3%", (PERTURBATION,))
def _vgg_k2_block1_conv2(ev):
    return _block1_conv2(ev, 2.0, 0.153)
