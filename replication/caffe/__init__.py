"""Caffe networks and weights, read and written without Caffe installed.

read_caffemodel / write_caffemodel: the binary weight files (binary.py);
read_prototxt: the text network descriptions (text.py);
read_net: either, told apart by content.
"""

from replication.caffe.binary import read_caffemodel, read_net, write_caffemodel
from replication.caffe.net import CaffeFormatError, Layer, Net
from replication.caffe.text import read_prototxt

__all__ = ["CaffeFormatError", "Layer", "Net", "read_caffemodel", "read_net", "read_prototxt", "write_caffemodel"]
