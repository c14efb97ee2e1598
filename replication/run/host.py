"""Host arrays into TensorFlow: shared where TensorFlow sees no GPU, copied otherwise.

`tf.convert_to_tensor` copies even an aligned NumPy array. On a host without GPUs the
network reads host memory anyway, so an array that TensorFlow can take as it is (aligned,
`arrays.aligned_empty`) is shared through DLPack instead: a batch of images, a synapse
knockout's mask, Gaussian noise's new weights. Each copy avoided is a pass over the
array's memory that the network would wait for (docs/performance.md).
"""

import functools

import numpy as np
import tensorflow as tf

from replication.arrays import ALIGNMENT

SHARED_DTYPES = (np.dtype(np.float32), np.dtype(np.bool_))  # what the engine hands over: images, weights, masks


def to_tensor(values):
    """`values` as a tensor; a tensor is returned as it is.

    On a host without GPUs, a writeable, C-contiguous array of a `SHARED_DTYPES` dtype whose
    data start on an `ALIGNMENT`-byte boundary is shared with TensorFlow, not copied.
    TensorFlow does not write into it: a tensor imported through DLPack does not own its
    memory, and TensorFlow updates a buffer in place (an op reusing its input, a
    variable's `assign_add`, an optimizer's step) only where the tensor owns it, so it
    copies first. A variable assigned the tensor holds the array itself, though, so the
    caller must not change the array while the tensor or such a variable uses it. Anything
    else is copied, as `tf.convert_to_tensor` does (onto the current device).
    """
    if isinstance(values, tf.Tensor):
        return values
    if (share_host_arrays() and isinstance(values, np.ndarray) and values.dtype in SHARED_DTYPES and values.size
            and values.flags.c_contiguous and values.flags.writeable and values.ctypes.data % ALIGNMENT == 0):
        # NumPy exports no read-only array (a memory-mapped image cache) through DLPack.
        return tf.experimental.dlpack.from_dlpack(values.__dlpack__())
    return tf.convert_to_tensor(values)


@functools.cache
def share_host_arrays() -> bool:
    """Whether `to_tensor` shares arrays: only where TensorFlow sees no GPU (a GPU host that
    runs its streams on `cpu:N` devices copies too). With a GPU, an array made a tensor by
    copying is placed on the GPU, and a cached one stays there; a shared one would stay on
    the host and cross for every trial."""
    return not tf.config.list_logical_devices("GPU")
