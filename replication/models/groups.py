"""Weight groups: which Keras layers make up one logical (paper) layer, and which Caffe
layer feeds it. Every model builder records its groups with `set_weight_groups`.

A Caffe convolution with group=g is built as g Conv2D layers on channel slices
(faster on CPU than Conv2D(groups=g), and it keeps the paper's names conv_2_1 and
conv_2_2). The perturbations treat those g layers as one layer, so every builder
records its layers with `set_weight_groups`.
"""

import json
import re
from dataclasses import asdict, dataclass

from replication.errors import ReplicationError

_ATTR = "_replication_weight_groups"


@dataclass(frozen=True)
class WeightGroup:
    """One logical layer: the unit a perturbation acts on."""

    name: str  # the name users pass to --layers: paper names for AlexNet, Caffe names otherwise
    members: tuple[str, ...]  # Keras layer names in order; g > 1 for a grouped convolution
    caffe_name: str  # the Caffe layer whose blobs it holds
    # For an InnerProduct fed by a spatial tensor: that tensor's (H, W, C). Caffe flattens
    # channel-major and Keras channel-last, so the loader permutes the weight rows.
    flatten_hwc: tuple[int, int, int] | None = None


def keras_name(caffe_name: str) -> str:
    """A Keras-legal layer name for a Caffe layer name (Keras forbids '/')."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", caffe_name)


def set_weight_groups(model, groups: list[WeightGroup]) -> None:
    # Stored as a JSON string so Keras' attribute tracking leaves it alone.
    object.__setattr__(model, _ATTR, json.dumps([asdict(g) for g in groups]))


def weight_groups(model) -> dict[str, WeightGroup]:
    """The model's logical layers.

    Args:
        model: a Keras model built by this project (or any Keras model: then each layer
            with weights is a group of its own).

    Returns:
        Layer name -> WeightGroup, in network order.
    """
    stored = getattr(model, _ATTR, None)
    if stored is None:
        return {
            layer.name: WeightGroup(layer.name, (layer.name,), layer.name)
            for layer in model.layers
            if layer.weights
        }
    groups = []
    for record in json.loads(stored):
        record["members"] = tuple(record["members"])
        if record["flatten_hwc"] is not None:
            record["flatten_hwc"] = tuple(record["flatten_hwc"])
        groups.append(WeightGroup(**record))
    return {g.name: g for g in groups}


def group_layers(model, group: WeightGroup) -> list:
    """The Keras layers of `group` in `model`; a ReplicationError naming the layer if absent."""
    try:
        return [model.get_layer(name) for name in group.members]
    except ValueError as err:
        raise ReplicationError(None, f"layer {group.name!r}: {err}") from None
