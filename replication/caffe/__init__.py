"""Caffe networks and weights, read and written without Caffe installed.

binary   .caffemodel files, both generations: read_caffemodel / write_caffemodel; read_net
text     .prototxt network descriptions: read_prototxt
params   typed layer parameters with Caffe's defaults
schema   the part of caffe.proto a weight file needs
net      the in-memory form of a Caffe network
convert  .caffemodel -> the project's HDF5 weight file, checked against a prototxt
hdf5     that HDF5 file, read without Caffe
"""

from replication.caffe.binary import read_caffemodel, read_net, write_caffemodel
from replication.caffe.net import CaffeFormatError, Layer, Net
from replication.caffe.text import read_prototxt

__all__ = ["CaffeFormatError", "Layer", "Net", "read_caffemodel", "read_net", "read_prototxt", "write_caffemodel"]
