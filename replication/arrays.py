"""Host arrays laid out so that TensorFlow can take them without a copy.

TensorFlow's CPU kernels (Eigen) assume that a tensor's data start on an `ALIGNMENT`-byte
boundary, and NumPy's allocator gives 16. An array allocated here can be handed to
TensorFlow through DLPack, which shares its memory (`run.host.to_tensor`): the decoded
images (`data.load_arrays`), and the layer-sized masks and noisy weights a trial draws
(`perturb`: synapse knockout, node knockout's dense mask under "authors_code", Gaussian
noise). NumPy only; nothing here imports TensorFlow.
"""

import numpy as np

ALIGNMENT = 64  # bytes: the most Eigen, and so TensorFlow's CPU kernels, assume of a tensor's data


def aligned_empty(shape, dtype=np.float32) -> np.ndarray:
    """An uninitialised, writeable, C-contiguous array whose data start on an
    `ALIGNMENT`-byte boundary.

    Args:
        shape: an int or a tuple of ints.
        dtype: anything `np.dtype` takes.

    Returns:
        The array: a view of a slightly larger uint8 buffer, which it keeps alive.
    """
    dtype = np.dtype(dtype)
    size = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(size + ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start : start + size].view(dtype).reshape(shape)
