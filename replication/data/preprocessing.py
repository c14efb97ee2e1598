"""Caffe's ImageNet preprocessing: decode, resize, centre crop, BGR, subtract the mean;
and convnets-keras's, which the paper's authors used for their AlexNet.

Resize to resize x resize ignoring the aspect ratio (convert_imageset), centre crop
crop x crop at offset (resize - crop) // 2 (the data layer in the TEST phase), BGR
channel order, subtract the mean image cropped at the same offset, or the mean pixel.
Where it differs from Caffe (which uses OpenCV):
  - JPEG decoding uses libjpeg's accurate integer DCT, as OpenCV does; TensorFlow's
    default fast DCT differs from it by up to ~20 grey levels. With that, decoded pixels
    equal OpenCV's and PIL's exactly.
  - The resize is TensorFlow's bilinear (half-pixel centres, no antialiasing, like
    cv2.INTER_LINEAR), rounded back to 0..255 as Caffe's uint8 image store does.
    OpenCV computes 8-bit resizes in fixed point, so pixels differ from Caffe's by at
    most 1 grey level (see docs/data.md). A same-size resize returns the pixels
    unchanged, so with resize == crop == image size they are used exactly as decoded.
  - The mean image (ilsvrc_2012_mean.npy, 3 x 256 x 256 BGR) is resized (bilinear, in
    float) when resize is not its size before it is cropped. Caffe has no such step:
    its mean file must match the stored image size.

convnets-keras's recipe (`preprocess_image_batch(img_size=(256, 256), crop_size=(227, 227),
color_mode="rgb")`, which the authors' net.py calls), chosen with mean="rgb_pixel" and
resize_filter="pil_bilinear": decode to RGB, resize to 256 x 256 with scipy.misc.imresize,
which is PIL's bilinear filter on the uint8 image (scaled by PIL's support rule when
shrinking), subtract the mean pixel RGB 123.68/116.779/103.939, keep the RGB order, and
crop the centre 227 x 227. The resize is PIL's own, called from the tf.data pipeline, so
the pixels are PIL's exactly; with the accurate-DCT decoding they equal what the recipe
computes with the same Pillow release (the authors' 2017 Pillow may have rounded some
pixels differently; that was not checked).

The Keras Applications recipe (the authors' net.py for VGG16, VGG19, ResNet50 and
InceptionV3: `keras.preprocessing.image.load_img(path, target_size=(224, 224))`, then
`img_to_array` and `imagenet_utils.preprocess_input`), chosen with resize == crop == the
target size, resize_filter="pil_nearest" and mean="keras_caffe": decode to RGB, resize the
whole image to the target size with PIL's nearest-neighbour filter (load_img's default
interpolation), no crop, float32, reverse to BGR and subtract the mean pixel BGR
103.939/116.779/123.68 (preprocess_input's mode "caffe", VGG's mean). mean="keras_tf" is
preprocess_input's mode "tf" instead, Keras's own recipe for InceptionV3: RGB, x / 127.5 - 1.
Both are computed in float32 as Keras computes them, so the arrays equal Keras's bit for bit.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from replication.errors import ReplicationError

MEAN_PIXEL_BGR = (104.0, 117.0, 123.0)
# convnets-keras's "empirical means on the training set", RGB; subtracted in float32.
MEAN_PIXEL_RGB = (123.68, 116.779, 103.939)
# keras.applications.imagenet_utils.preprocess_input, mode "caffe" (VGG's mean pixel), BGR.
MEAN_PIXEL_KERAS_CAFFE = (103.939, 116.779, 123.68)
MEANS = ("image", "pixel", "rgb_pixel", "keras_caffe", "keras_tf")
RESIZE_FILTERS = ("bilinear", "pil_bilinear", "pil_nearest")
# Pillow's resampling filter for each resize_filter that PIL computes.
_PIL_FILTERS = {"pil_bilinear": "BILINEAR", "pil_nearest": "NEAREST"}
MEAN_FILE_HELP = (
    "the ImageNet mean image ships with Caffe as python/caffe/imagenet/ilsvrc_2012_mean.npy; "
    "pass it with --mean-file, or use --mean pixel (BGR 104/117/123)"
)
# Part of every dataset id: bump it when the pixels this module produces change, so that
# results tables and decoded caches made by the old code are told apart.
PIPELINE_VERSION = 1


@dataclass(frozen=True)
class Preprocessing:
    resize: int = 256
    crop: int = 227
    # "image": mean_file cropped like the images; "pixel": BGR 104/117/123 (both Caffe's,
    # BGR images); "rgb_pixel": RGB 123.68/116.779/103.939 on RGB images (convnets-keras);
    # "keras_caffe": BGR 103.939/116.779/123.68 on BGR images, "keras_tf": RGB x / 127.5 - 1
    # (Keras Applications' preprocess_input modes "caffe" and "tf")
    mean: str = "image"
    mean_file: Path | None = None
    # "bilinear": TensorFlow's, like Caffe's OpenCV resize; "pil_bilinear": PIL's on uint8,
    # as scipy.misc.imresize (convnets-keras); "pil_nearest": PIL's nearest neighbour, as
    # keras.utils.load_img(target_size=...) (Keras Applications)
    resize_filter: str = "bilinear"

    def __post_init__(self):
        if self.mean not in MEANS:
            raise ReplicationError(None, f"mean must be one of {', '.join(MEANS)}, not {self.mean!r}")
        if self.resize_filter not in RESIZE_FILTERS:
            raise ReplicationError(
                None, f"resize_filter must be one of {', '.join(RESIZE_FILTERS)}, not {self.resize_filter!r}"
            )
        if not 0 < self.crop <= self.resize:
            raise ReplicationError(None, f"crop ({self.crop}) must be between 1 and resize ({self.resize})")
        if self.mean_file is not None:
            object.__setattr__(self, "mean_file", Path(self.mean_file))

    @property
    def offset(self) -> int:
        """Top-left corner of the centre crop, as Caffe's data layer computes it."""
        return (self.resize - self.crop) // 2

    @property
    def channel_order(self) -> str:
        """The order of the preprocessed channels: "BGR" (Caffe's) or "RGB" (convnets-keras's,
        and Keras's mode "tf")."""
        return "RGB" if self.mean in ("rgb_pixel", "keras_tf") else "BGR"

    @property
    def scale(self) -> float | None:
        """What the pixels are divided by before the mean is subtracted (127.5 for
        mean="keras_tf"), or None: no scaling."""
        return 127.5 if self.mean == "keras_tf" else None


def _resize_bilinear(image: tf.Tensor, size: int) -> tf.Tensor:
    return tf.image.resize(image, [size, size], method="bilinear", antialias=False)


def mean_bgr(prep: Preprocessing) -> np.ndarray:
    """What is subtracted from each crop: (crop, crop, 3) for the mean image, (3,) for the
    mean pixel; float32, in the images' channel order (`prep.channel_order`: BGR, but RGB
    for mean="rgb_pixel" and "keras_tf"). For "keras_tf" it is 1 in every channel,
    subtracted after the division by `prep.scale`."""
    if prep.mean == "pixel":
        return np.array(MEAN_PIXEL_BGR, np.float32)
    if prep.mean == "rgb_pixel":
        return np.array(MEAN_PIXEL_RGB, np.float32)
    if prep.mean == "keras_caffe":
        return np.array(MEAN_PIXEL_KERAS_CAFFE, np.float32)
    if prep.mean == "keras_tf":
        return np.ones(3, np.float32)
    if prep.mean_file is None:
        raise ReplicationError(None, f"--mean image needs a mean file: {MEAN_FILE_HELP}")
    if not prep.mean_file.is_file():
        raise ReplicationError(prep.mean_file, f"mean file not found ({MEAN_FILE_HELP})")
    try:
        mean = np.load(prep.mean_file, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise ReplicationError(prep.mean_file, f"cannot read as a .npy array ({err}); {MEAN_FILE_HELP}") from None
    if mean.ndim != 3 or mean.shape[0] != 3:
        raise ReplicationError(prep.mean_file, f"expected a 3 x H x W BGR mean image, got shape {mean.shape}")
    mean = np.transpose(mean, (1, 2, 0)).astype(np.float32)
    if mean.shape[:2] != (prep.resize, prep.resize):
        mean = _resize_bilinear(mean, prep.resize).numpy()
    o = prep.offset
    return np.ascontiguousarray(mean[o : o + prep.crop, o : o + prep.crop])


# RGB -> BGR as a product with a permutation matrix: exact (each output is one input
# times 1 plus zeros), and in tf.data much faster than reversing the 3-long channel
# axis, which cost more than the decoding (docs/performance.md).
_RGB_TO_BGR = np.eye(3, dtype=np.float32)[::-1]


def pil_resize(image: np.ndarray, size: int, resize_filter: str = "pil_bilinear") -> np.ndarray:
    """PIL's resize of a uint8 RGB image to size x size: scipy.misc.imresize(image, (size,
    size)) for "pil_bilinear", keras.utils.load_img(target_size=(size, size)) for "pil_nearest".

    Args:
        image: (H, W, 3) uint8 RGB.
        size: the side of the square result.
        resize_filter: "pil_bilinear" or "pil_nearest".

    Returns:
        (size, size, 3) uint8; the image itself, unchanged, when it already has that size
        (load_img does not resize it either).
    """
    from PIL import Image  # only these recipes need PIL

    if image.shape[:2] == (size, size):
        return image
    pil_image = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    return np.asarray(pil_image.resize((size, size), getattr(Image.Resampling, _PIL_FILTERS[resize_filter])))


def _resize_pil(image: tf.Tensor, size: int, resize_filter: str) -> tf.Tensor:
    # PIL's resampling has no TensorFlow equivalent to the grey level (fixed-point weights,
    # a uint8 rounding between its horizontal and vertical passes; for nearest neighbour,
    # which source pixel a rounding picks), so PIL itself runs.
    resized = tf.numpy_function(lambda pixels: pil_resize(pixels, size, resize_filter), [image], tf.uint8,
                                stateful=False)
    resized.set_shape([size, size, 3])
    return tf.cast(resized, tf.float32)


def preprocess_fn(prep: Preprocessing):
    mean = tf.constant(mean_bgr(prep))
    o, c, size = prep.offset, prep.crop, prep.resize
    to_bgr = prep.channel_order == "BGR"
    scale = prep.scale

    def preprocess(path, label, index):
        # Accurate DCT: what OpenCV (so Caffe) and PIL decode. The op also reads PNG.
        image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3, dct_method="INTEGER_ACCURATE")
        if prep.resize_filter in _PIL_FILTERS:
            image = _resize_pil(image, size, prep.resize_filter)
        else:
            # Caffe stores resized images as uint8, hence the rounding. A same-size bilinear
            # resize returns the pixels unchanged.
            image = tf.clip_by_value(tf.round(_resize_bilinear(image, size)), 0.0, 255.0)
        image = image[o : o + c, o : o + c]
        if to_bgr:
            image = tf.tensordot(image, _RGB_TO_BGR, axes=1)
        if scale is not None:
            # A float32 division then a subtraction, as Keras's x /= 127.5; x -= 1.
            image = image / tf.constant(scale, tf.float32)
        return image - mean, label, index

    return preprocess
