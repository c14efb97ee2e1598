"""Where a weight group starts to matter: the cut in the Keras graph before which nothing a
trial changes is computed.

This is the one module that reads Keras' private graph state (a tensor's
`_keras_history`, a layer's `_inbound_nodes`, a model's `_nodes_by_depth`); `check_keras`
says clearly when a Keras release has changed it. The supported Keras range is in
setup.cfg.

Where to cut. Perturbing a weight group changes exactly the layer calls downstream of
its member layers; the suffix must contain them. Its inputs are the frontier: every
tensor computed outside the suffix but read inside it. Parameter-free layers just before
the cut can make the cached tensors bigger than they need to be (an explicit
ZeroPadding2D, say), so the cut is moved up, one layer of the graph at a time, through
parameter-free layers whose outputs only the suffix reads, and the smallest frontier met
is kept (the first among equals, to recompute least). See docs/method.md.
"""

import keras
import numpy as np
import tensorflow as tf

from replication.errors import ReplicationError
from replication.models.groups import WeightGroup

KERAS_RANGE = ">=3.3,<4"  # as in setup.cfg's install_requires


def _producer(tensor):
    operation, node_index, _ = tensor._keras_history
    return operation._inbound_nodes[node_index]


def check_keras() -> None:
    """Raise a ReplicationError that names the Keras version when the private graph state
    this module reads is not there (a Keras release outside the supported range)."""
    try:
        inputs = keras.Input((2,))
        model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
        node = _producer(model.outputs[0])
        nodes = _nodes_in_order(model)
        assert node in nodes and node.operation is model.layers[-1] and node.input_tensors
    except Exception as err:  # any failure here means the internals moved
        raise ReplicationError(
            None,
            f"Keras {keras.__version__} changed the private graph state replication.run.graph reads "
            f"({type(err).__name__}: {err}); install a Keras in the supported range {KERAS_RANGE}",
        ) from None


def _nodes_in_order(model: keras.Model) -> list:
    """The model's own call nodes, inputs first.

    Read from the model's depth map rather than from each layer's `_inbound_nodes`:
    building sub-models on the same layers adds nodes to those lists.
    """
    by_depth = model._nodes_by_depth
    return [node for depth in sorted(by_depth, reverse=True) for node in by_depth[depth]]


def influenced_nodes(model: keras.Model, layer_names) -> set:
    """The call nodes whose outputs change when the named layers' weights change."""
    names = set(layer_names)
    influenced = set()
    for node in _nodes_in_order(model):
        if node.operation.name in names or any(_producer(t) in influenced for t in node.input_tensors):
            influenced.add(node)
    missing = names - {node.operation.name for node in influenced}
    if missing:
        raise ReplicationError(None, f"model {model.name!r} has no layer {', '.join(sorted(missing))}")
    return influenced


def frontier(model: keras.Model, nodes: set) -> list:
    """Tensors computed outside `nodes` and read inside them, in network order."""
    cut = []
    for node in _nodes_in_order(model):
        if node in nodes:
            for tensor in node.input_tensors:
                if _producer(tensor) not in nodes and not any(tensor is c for c in cut):
                    cut.append(tensor)
    return cut


def bytes_per_image(tensors) -> int | None:
    """None when a size is only known at run time."""
    shapes = [t.shape[1:] for t in tensors]
    if any(d is None for shape in shapes for d in shape):
        return None
    # tf.as_dtype knows bfloat16, which NumPy's own dtypes do not
    return sum(int(np.prod(shape)) * tf.as_dtype(t.dtype).size for shape, t in zip(shapes, tensors))


def _smallest_frontier(model: keras.Model, suffix_nodes: set) -> list:
    """Move the cut up through parameter-free layers read only by the suffix while that
    makes the cached tensors smaller (see the module notes)."""
    readers = {}
    for node in _nodes_in_order(model):
        for tensor in node.input_tensors:
            readers.setdefault(id(tensor), []).append(node)
    outputs = {id(t) for t in model.outputs}

    def movable(node):
        return (
            not node.is_input
            and not getattr(node.operation, "weights", None)
            and all(id(t) not in outputs and all(r in suffix_nodes for r in readers.get(id(t), [])) for t in node.outputs)
        )

    cut = best = frontier(model, suffix_nodes)
    best_bytes = bytes_per_image(best)
    while best_bytes is not None:
        step = {node for node in map(_producer, cut) if movable(node)}
        if not step:
            break
        suffix_nodes = suffix_nodes | step
        cut = frontier(model, suffix_nodes)
        size = bytes_per_image(cut)
        if size is None:
            break
        if size < best_bytes:
            best, best_bytes = cut, size
    return best


def cut_before(model: keras.Model, group: WeightGroup) -> list:
    """The frontier tensors to cache for perturbing `group` (see the module notes)."""
    return _smallest_frontier(model, influenced_nodes(model, group.members))


def cut_after_output_layer(model: keras.Model, group: WeightGroup) -> list | None:
    """[the group's output tensor] when the group is one Dense or Conv2D layer followed
    only by parameter-free layers up to the model output, which read nothing else from
    before it; None otherwise."""
    if len(group.members) != 1:
        return None
    layer = model.get_layer(group.members[0])
    if not isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D)):
        return None  # units must be the kernel's last axis, each computed from its own slice
    if getattr(layer.activation, "__name__", None) not in ("linear", "relu"):
        return None  # a zeroed unit must output exactly 0, and alone (no softmax inside)
    influenced = influenced_nodes(model, group.members)
    own = [node for node in influenced if node.operation is layer]
    tail = influenced - set(own)
    if len(own) != 1 or any(getattr(node.operation, "weights", None) for node in tail):
        return None
    (output,) = own[0].outputs
    if tail and not all(t is output for t in frontier(model, tail)):
        return None
    return [output]


def computable_from(targets, sources) -> bool:
    """Whether `targets` can be computed from `sources` without the model's inputs."""
    known = {id(t) for t in sources}
    stack, seen = list(targets), set()
    while stack:
        tensor = stack.pop()
        if id(tensor) in known or id(tensor) in seen:
            continue
        seen.add(id(tensor))
        node = _producer(tensor)
        if node.is_input:
            return False
        stack.extend(node.input_tensors)
    return True

