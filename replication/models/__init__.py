"""Keras models of the paper's networks, and what the experiments need to know about them.

groups     WeightGroup: the Keras layers that make up one logical (paper) layer
registry   register_model / create_model / list_models / describe_model: a model and its names
alexnet    the paper-named AlexNet and CaffeNet (registered as "alexnet", "caffenet")
convnets_keras  the authors' AlexNet, heuritech/convnets-keras (registered as "convnets_keras")
keras1     Keras 1 HDF5 weight files, as the authors' alexnet_weights.h5 is
keras_apps  VGG-16/19, ResNet-50, InceptionV3 from Keras Applications, with their weight files
vgg16_caffe  names for Caffe's VGG-16 (reference/vgg16_deploy.prototxt) and its synthetic weights
prototxt   any Caffe deploy .prototxt as a Keras model
layers     Caffe's LRN, pooling and grouped convolution as Keras layers
weights    the converted HDF5 weight file into a Keras model (layouts, splits, flatten order)
synthetic  a random AlexNet in Caffe's own format, for tests and offline use
offline    write_synthetic_weights: a synthetic weight file for any of the networks above
"""
