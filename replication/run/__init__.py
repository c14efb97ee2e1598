"""From a model and images to a results table.

scoring  the top-k rule on the logits (ties by expected accuracy); `evaluate_model` over a dataset
graph    where a layer starts to matter in the Keras graph (the one user of Keras internals)
costs    multiply-adds per image of a model and of each layer's trials
engine   every trial of a sweep, fast and exact (prefix cache, memory bound, device streams)
resident a layer's originals kept on the device; trials drawn on the host, applied and undone there
host     host arrays into TensorFlow: shared where TensorFlow sees no GPU, copied otherwise
devices  which devices run the trial streams: GPUs, or cpu:N logical devices
precision  float32 exactly (TF32 off), or bfloat16 / float16 / tf32 on request
table    the resumable, fsynced results table (needs neither TensorFlow nor pandas)
grid     what a sweep computes: layers × levels × repeats of one perturbation
shards   a sweep cut for a job array, and the checked merge of its tables
sweep    run a grid into a results table
"""
