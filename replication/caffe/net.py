"""The in-memory form of a Caffe network, shared by the binary and text readers."""

from dataclasses import dataclass, field

import numpy as np

from replication.errors import ReplicationError


class CaffeFormatError(ReplicationError):
    """A Caffe file that cannot be read: truncated, not Caffe, or unsupported."""


@dataclass
class Layer:
    name: str
    type: str  # current-format type string ("Convolution"); V1 enums are mapped to these
    bottoms: list[str] = field(default_factory=list)
    tops: list[str] = field(default_factory=list)
    # Text prototxt only: every field of the layer message as name -> list of values
    # (text format may repeat any field); sub-messages are dicts of the same form,
    # enums are their names as str. E.g. params["convolution_param"][0]["kernel_size"] == [11].
    params: dict = field(default_factory=dict)
    # Binary caffemodel only: float32 arrays in Caffe layout, shapes normalised to the
    # current generation (V1 legacy 4-D num/channels/height/width squeezed by layer type,
    # e.g. InnerProduct weights (1,1,out,in) -> (out,in), biases -> (out,)).
    blobs: list[np.ndarray] = field(default_factory=list)


@dataclass
class Net:
    name: str
    layers: list[Layer]
    # Network inputs: name -> shape (N, C, H, W) from `input:`/`input_dim:`/`input_shape`
    # headers or Input layers (Input layers also stay in `layers`).
    inputs: dict[str, tuple[int, ...]] = field(default_factory=dict)
    generation: str = "current"  # "current" (`layer` field) or "V1" (`layers` field)

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)
