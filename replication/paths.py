"""Where the project looks for data when the user names none."""

import os
from pathlib import Path

# The reference data lives beside the checkout (../shared) in development and CI;
# users point REPLICATION_SHARED elsewhere or pass explicit paths.
SHARED_ENV = "REPLICATION_SHARED"


def shared_dir() -> Path:
    return Path(os.environ.get(SHARED_ENV, Path(__file__).resolve().parents[1].parent / "shared"))


# Relative to where the commands run (the project root in the README's examples).
WEIGHTS_DIR = Path("caffe_weights")
DEFAULT_MEAN_FILE = WEIGHTS_DIR / "ilsvrc_2012_mean.npy"
