"""Replication of Cheney, Schrimpf & Kreiman (2017), arXiv 1703.08245."""

import os

# TensorFlow's start-up chatter (oneDNN, CUDA probing) buries the figures our
# commands print; users can still raise it by setting the variable themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
