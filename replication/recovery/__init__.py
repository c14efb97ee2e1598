"""Beyond the paper: recovery after damage. A sweep trial's damage, then fine-tuning, then
the held-out accuracy at fixed steps (docs/recovery.md).

table  the recovery table: the study's identity, one durable row per evaluation, resumable
train  one run's fine-tuning: held or free lesion, chosen layers, SGD + momentum, checkpoints
study  every run of a study in turn, resumed from checkpoints with no row twice
"""
