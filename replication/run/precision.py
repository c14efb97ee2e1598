"""The arithmetic a run computes in: float32 by default, exactly float32 on every device.

On NVIDIA GPUs since Ampere TensorFlow runs float32 matrix products in TF32 (10-bit
mantissa) unless told otherwise, which moves results at about 1e-3 relative; "float32"
turns that off. The faster precisions are opt-in, for exploratory sweeps: "tf32" (GPUs
only), "bfloat16" and "float16" (Keras mixed precision: weights stay float32, products are
computed in the narrow type; the logits are scored as float32). The precision is part of
a results table's identity, so tables of different precisions never mix.
"""

import keras
import tensorflow as tf

from replication.errors import ReplicationError
from replication.run.table import PRECISIONS


def set_precision(precision: str = "float32") -> None:
    """Make models built from now on compute in `precision`.

    Args:
        precision: one of PRECISIONS. Call it before the model is built.
    """
    if precision not in PRECISIONS:
        raise ReplicationError(None, f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "tf32" and not tf.config.list_physical_devices("GPU"):
        raise ReplicationError(None, "--precision tf32 needs an NVIDIA GPU (Ampere or newer); this machine has none")
    tf.config.experimental.enable_tensor_float_32_execution(precision == "tf32")
    mixed = precision in ("bfloat16", "float16")
    keras.mixed_precision.set_global_policy(f"mixed_{precision}" if mixed else "float32")
