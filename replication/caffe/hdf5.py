"""The project's converted weight file: Caffe's blobs in HDF5, read without Caffe.

At the root: the attributes format="replication-caffe-hdf5", format_version=1, net_name,
generation ("current" or "V1"), source_file, source_sha256, source_sha1 and
converter_version; then one group per Caffe layer that has blobs, in network order,
named after the layer (see `group_name`), with attributes caffe_name, type and index
(0, 1, ... in network order) and the float32 datasets "weights" (blob 0), "bias"
(blob 1), "blob_2", ... in Caffe's layout: convolution (O, I/group, kh, kw), inner
product (out, in), bias (O,).
"""

from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np

from replication.errors import ReplicationError
from replication.files import open_weight_file

FORMAT = "replication-caffe-hdf5"
FORMAT_VERSION = 1


def group_name(caffe_name: str) -> str:
    """The HDF5 group name of a Caffe layer: '/' would make nested groups, so it is
    percent-encoded, and '%' too so the encoding can be undone."""
    return caffe_name.replace("%", "%25").replace("/", "%2F")


def blob_names(count: int) -> list[str]:
    return ["weights", "bias", *(f"blob_{i}" for i in range(2, count))][:count]


def write_blobs(f: h5py.File, index: int, layer) -> None:
    """One Caffe layer's blobs as group number `index` of an open file."""
    group = f.create_group(group_name(layer.name))
    group.attrs.update({"caffe_name": layer.name, "type": layer.type, "index": index})
    for name, blob in zip(blob_names(len(layer.blobs)), layer.blobs):
        group.create_dataset(name, data=np.asarray(blob, dtype=np.float32))


class CaffeBlobs(NamedTuple):
    type: str  # Caffe layer type, e.g. "Convolution"
    blobs: list[np.ndarray]  # weights, bias, further blobs; Caffe layout, float32


def read_weights(h5_path) -> dict[str, CaffeBlobs]:
    """Caffe layer name -> (type, blobs) from a converter HDF5 file, in network order."""
    path = Path(h5_path)
    with open_weight_file(path, "the output of python -m replication.convert") as f:
        found = f.attrs.get("format")
        if found != FORMAT:
            raise ReplicationError(
                path, f"HDF5 file is not a converted Caffe model (format attribute {found!r}, expected {FORMAT!r})"
            )
        version = int(f.attrs.get("format_version", -1))
        if version != FORMAT_VERSION:
            raise ReplicationError(path, f"format_version {version}, but this reader knows {FORMAT_VERSION}")
        groups = sorted(f.values(), key=lambda group: int(group.attrs["index"]))
        return {g.attrs["caffe_name"]: CaffeBlobs(str(g.attrs["type"]), _blobs(g)) for g in groups}


def _blobs(group: h5py.Group) -> list[np.ndarray]:
    names = ["weights", "bias"]
    names += sorted((n for n in group if n.startswith("blob_")), key=lambda n: int(n.split("_")[1]))
    return [np.asarray(group[n], dtype=np.float32) for n in names if n in group]
