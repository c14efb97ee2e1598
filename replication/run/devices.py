"""Which devices run the trial streams: names as TensorFlow gives them, or `cpu:N`.

With several devices the engine deals the trials round-robin to one stream per device
(`engine.run_layers`). `cpu:N` splits the processor into N logical devices: the way to
run, and to prove, several streams on a machine without GPUs. Logical devices must be
made before TensorFlow first runs anything, so this is called at the start of a run.
"""

import tensorflow as tf

from replication.errors import ReplicationError


def configure_devices(names) -> list[str] | None:
    """The device names for the engine, made ready.

    Args:
        names: None (the default: every GPU when there are several), ["cpu:N"] for N logical
            CPU devices, or TensorFlow device names such as ["/GPU:0", "/GPU:1"].

    Returns:
        The full device names, or None for the default.
    """
    if not names:
        return None
    if len(names) == 1 and names[0].lower().startswith("cpu:"):
        count = names[0][4:]
        if not (count.isascii() and count.isdigit() and int(count) >= 1):
            raise ReplicationError(None, f"--devices {names[0]}: expected cpu:N with N at least 1")
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * int(count))
        except RuntimeError:
            raise ReplicationError(None, "--devices cpu:N must be set before TensorFlow has run anything") from None
        return [device.name for device in tf.config.list_logical_devices("CPU")]
    known = {device.name.lower(): device.name for device in tf.config.list_logical_devices()}
    wanted = []
    for name in names:
        full = name if name.lower().startswith("/device:") else "/device:" + name.lstrip("/")
        if full.lower() not in known:
            raise ReplicationError(None, f"no device {name!r} here; the devices are {', '.join(known.values())}")
        wanted.append(known[full.lower()])
    return wanted
