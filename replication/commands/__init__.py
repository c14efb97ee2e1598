"""The command line: thin layers over the library, one module per command.

figure     figure1 … figure5 (and the options they share with reproduce)
convert    .caffemodel -> HDF5
evaluate   top-1 / top-5 of a model on the validation images
table1     the paper's Table 1 for a weight file
compare    the paper's claims beside ours
merge      the checked union of a sharded sweep's tables
status     how far a sweep has got, per shard, and its Slurm jobs' states
reproduce  everything the paper reports, in one command
synthetic  a synthetic model (real shapes, random weights) for offline use
download   the Model Zoo weights, the mean image, the aux files, hash-checked and resumable
common     what the commands share: error wrapper, option types, quiet TensorFlow
main       the `replication` console script: every command above as a subcommand

`python -m replication.figure1` and the other `replication/<command>.py` modules are
three-line entry points into these. The library never imports this package.
"""

import os

# TensorFlow's start-up chatter (oneDNN, CUDA probing) buries the figures the commands
# print; users can still raise it by setting the variable themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
