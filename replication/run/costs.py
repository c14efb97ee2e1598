"""Multiply-adds: what a whole model and each layer's trials cost per image.

Only the convolution and dense products are counted; the rest (pooling, LRN, ReLU, the
adds of biases) is small beside them in these networks. A trial of a layer recomputes
the products of that layer and of every layer downstream of it (`graph.influenced_nodes`),
which is what shards are balanced by and what the sweep benchmark's floor is made of.
"""

import keras
import numpy as np

from replication.run.graph import influenced_nodes
from replication.run.scoring import scores_model


def layer_macs(layer) -> int:
    """Multiply-adds per image of one Conv2D or Dense layer's product; 0 for other layers."""
    if not isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
        return 0
    positions = int(np.prod(layer.output.shape[1:-1])) if len(layer.output.shape) > 2 else 1
    return int(np.prod(layer.kernel.shape)) * positions


def model_macs(model: keras.Model) -> int:
    """Multiply-adds per image of the whole model up to its logits."""
    return sum(layer_macs(layer) for layer in scores_model(model).layers)


def suffix_macs(model: keras.Model, groups) -> dict[str, int]:
    """Multiply-adds per image that one trial of each weight group recomputes.

    Args:
        model: the Keras model.
        groups: its WeightGroups (a dict or a list).

    Returns:
        Group name -> the multiply-adds of its own product and of every layer downstream.
    """
    scoring = scores_model(model)
    groups = groups.values() if isinstance(groups, dict) else groups
    return {g.name: sum(layer_macs(n.operation) for n in influenced_nodes(scoring, g.members)) for g in groups}
