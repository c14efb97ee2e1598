"""The input pipeline on the real validation images in ../shared: the three dataset
layouts, Caffe's preprocessing against PIL and OpenCV, bad input, and decode-once."""

import os

import numpy as np
import pytest
import scipy.io
from PIL import Image

from replication import data
from replication.arrays import ALIGNMENT
from replication.errors import ReplicationError

N_DECODED = 24  # images decoded by the preprocessing tests: enough to vary, quick to decode


# --- building the layouts from the shared images ------------------------------------------


def read_val_txt(path):
    return [(name, int(label)) for name, label in (line.split() for line in path.read_text().splitlines())]


def link_images(folder, sources):
    folder.mkdir(parents=True, exist_ok=True)
    for source in sources:
        (folder / source.name).symlink_to(source)


def write_val_folder(folder, val_subset, pairs, in_images=True):
    """Layout (a): the images (links) and a val.txt listing `pairs`."""
    link_images(folder / "images" if in_images else folder, [val_subset / "images" / name for name, _ in pairs])
    (folder / "val.txt").write_text("".join(f"{name} {label}\n" for name, label in pairs))
    return folder


def write_class_folders(folder, val_subset, pairs):
    """Layout (b): one folder per class, named by WordNet id."""
    wnids = data.class_wnids()
    for name, label in pairs:
        link_images(folder / wnids[label], [val_subset / "images" / name])
    return folder


def devkit_order(seed=7):
    """A class numbering other than sorted-wnid order, as the devkit's meta.mat has: the
    real order cannot be had offline, so a fixed shuffle stands in for it."""
    return list(np.random.default_rng(seed).permutation(1000))


def write_meta_mat(path, order):
    """A meta.mat in the devkit's format: a synsets struct array whose record i has
    ILSVRC2012_ID i+1 (MATLAB doubles) and the WNID of class order[i]; like the real file,
    it goes on with WordNet ancestors numbered above 1000."""
    wnids, names = data.class_wnids(), data.class_names()
    rows = [(i + 1, wnids[label], names[label], 0) for i, label in enumerate(order)]
    rows += [(1001, "n00001740", "entity", 3), (1002, "n00001930", "physical entity", 2)]
    synsets = np.empty((len(rows), 1), dtype=[(f, "O") for f in ("ILSVRC2012_ID", "WNID", "words", "num_children")])
    for i, (class_id, wnid, words, children) in enumerate(rows):
        synsets[i, 0] = (np.array([[float(class_id)]]), wnid, words, np.array([[float(children)]]))
    scipy.io.savemat(path, {"synsets": synsets})


def write_devkit(folder, all_val_labels, order):
    """Layout (c): the devkit's ground truth for all 50,000 images (line i: the devkit
    class id of ILSVRC2012_val_<i>) and its meta.mat."""
    id_of_label = {label: i + 1 for i, label in enumerate(order)}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / data.GROUND_TRUTH).write_text("".join(f"{id_of_label[label]}\n" for _, label in all_val_labels))
    write_meta_mat(folder / data.META, order)
    return folder / data.GROUND_TRUTH


@pytest.fixture(scope="module")
def subset_pairs(val_subset):
    return read_val_txt(val_subset / "val.txt")


@pytest.fixture(scope="module")
def all_val_labels(shared_data):
    return read_val_txt(shared_data / "labels" / "ilsvrc2012_val.txt")


@pytest.fixture(scope="module")
def layouts(tmp_path_factory, val_subset, subset_pairs, all_val_labels):
    """The 1,300 shared images in layouts (b) and (c), as links."""
    root = tmp_path_factory.mktemp("layouts")
    classes = write_class_folders(root / "classes", val_subset, subset_pairs)
    devkit = root / "devkit"
    link_images(devkit, [val_subset / "images" / name for name, _ in subset_pairs])
    write_devkit(devkit, all_val_labels, devkit_order())
    return {"classes": classes, "devkit": devkit}


def pairs_of(ds):
    return [(f.name, int(label)) for f, label in zip(ds.files, ds.labels)]


PIXEL = data.Preprocessing(resize=227, crop=227, mean="pixel")


@pytest.fixture(scope="module")
def mean_file(caffe_dir):
    return caffe_dir / "ilsvrc_2012_mean.npy"


# --- layouts ------------------------------------------------------------------------------


def test_the_three_layouts_give_the_same_files_and_labels(val_subset, subset_pairs, layouts):
    by_val_txt = data.find_dataset(val_subset)
    by_class = data.find_dataset(layouts["classes"])
    by_devkit = data.find_dataset(layouts["devkit"])
    assert (by_val_txt.layout, by_class.layout, by_devkit.layout) == ("val.txt", "class folders", "devkit")
    assert pairs_of(by_val_txt) == sorted(subset_pairs)
    assert pairs_of(by_class) == pairs_of(by_val_txt)
    assert pairs_of(by_devkit) == pairs_of(by_val_txt)
    assert by_val_txt.labels.dtype == np.int32
    # The same images in any layout are the same dataset.
    assert len({data.dataset_id(ds, PIXEL) for ds in (by_val_txt, by_class, by_devkit)}) == 1


def test_devkit_class_ids_are_mapped_through_meta_mat(layouts, subset_pairs):
    ids = [int(line) for line in (layouts["devkit"] / data.GROUND_TRUTH).read_text().split()]
    ds = data.find_dataset(layouts["devkit"])
    numbers = [int(f.stem.split("_")[-1]) for f in ds.files]
    raw = np.array([ids[n - 1] - 1 for n in numbers])
    assert (raw != ds.labels).mean() > 0.9  # the ids are not the labels: the test can tell
    assert data.class_wnids()[ds.labels[0]] == data.class_wnids()[dict(subset_pairs)[ds.files[0].name]]


def test_label_files_can_be_given_explicitly(tmp_path, val_subset, subset_pairs, layouts):
    flat = write_val_folder(tmp_path / "flat", val_subset, subset_pairs[:30], in_images=False)
    moved = tmp_path / "labels.txt"
    (flat / "val.txt").rename(moved)
    assert pairs_of(data.find_dataset(flat, labels=moved)) == sorted(subset_pairs[:30])
    # the devkit's ground truth elsewhere, with meta.mat beside it
    by_devkit = data.find_dataset(val_subset, labels=layouts["devkit"] / data.GROUND_TRUTH)
    assert pairs_of(by_devkit) == sorted(subset_pairs)


def test_limit_takes_the_first_images_by_name(val_subset, layouts):
    first = data.find_dataset(val_subset, limit=10)
    assert pairs_of(first) == pairs_of(data.find_dataset(layouts["classes"], limit=10))
    assert [f.name for f in first.files] == sorted(f.name for f in data.find_dataset(val_subset).files)[:10]


def test_class_list_is_the_sorted_imagenet_wnids(shared_data):
    wnids = data.class_wnids()
    assert len(wnids) == 1000 and list(wnids) == sorted(wnids)
    assert list(wnids) == (shared_data / "labels" / "synsets.txt").read_text().split()


# --- label files that do not match ----------------------------------------------------------


def test_val_txt_with_too_few_lines_is_an_error_naming_it(tmp_path, val_subset, subset_pairs):
    folder = write_val_folder(tmp_path / "a", val_subset, subset_pairs[:20])
    (folder / "val.txt").write_text("".join(f"{n} {label}\n" for n, label in subset_pairs[:19]))
    with pytest.raises(ReplicationError, match="lists 19 images but .* holds 20") as err:
        data.find_dataset(folder)
    assert err.value.path == folder / "val.txt"


def test_missing_image_is_an_error_naming_it(tmp_path, val_subset, subset_pairs):
    folder = write_val_folder(tmp_path / "a", val_subset, subset_pairs[:20])
    gone = folder / "images" / subset_pairs[5][0]
    gone.unlink()
    with pytest.raises(ReplicationError, match="listed in .*val.txt.*but missing") as err:
        data.find_dataset(folder)
    assert err.value.path == gone


@pytest.mark.parametrize("line, problem", [
    ("ILSVRC2012_val_00000347.JPEG", "expected 'FILENAME LABEL'"),
    ("ILSVRC2012_val_00000347.JPEG 1000", "not in 0..999"),
    ("ILSVRC2012_val_00000347.JPEG x", "expected 'FILENAME LABEL'"),
])
def test_malformed_val_txt_lines_are_errors(tmp_path, val_subset, line, problem):
    folder = write_val_folder(tmp_path / "a", val_subset, [("ILSVRC2012_val_00000347.JPEG", 1)])
    (folder / "val.txt").write_text(line + "\n")
    with pytest.raises(ReplicationError, match=problem) as err:
        data.find_dataset(folder)
    assert err.value.path == folder / "val.txt"


@pytest.mark.parametrize("folder_name, problem", [
    ("n99999999", "not one of the 1000 ILSVRC2012 classes"),
    ("misc", "not a WordNet id"),
])
def test_class_folder_that_is_not_a_class_is_an_error_naming_it(
    tmp_path, val_subset, subset_pairs, folder_name, problem
):
    root = write_class_folders(tmp_path / "b", val_subset, subset_pairs[:10])
    link_images(root / folder_name, [val_subset / "images" / subset_pairs[10][0]])
    with pytest.raises(ReplicationError, match=problem) as err:
        data.find_dataset(root)
    assert err.value.path == root / folder_name


def test_devkit_ground_truth_that_is_too_short_is_an_error_naming_it(
    tmp_path, val_subset, subset_pairs, all_val_labels
):
    folder = tmp_path / "c"
    link_images(folder, [val_subset / "images" / name for name, _ in subset_pairs[:10]])
    highest = max(int(name[15:23]) for name, _ in subset_pairs[:10])
    truth = write_devkit(folder, all_val_labels[: highest - 1], devkit_order())
    with pytest.raises(ReplicationError, match=f"has {highest - 1} labels but .* is image number {highest}") as err:
        data.find_dataset(folder)
    assert err.value.path == truth


def test_devkit_without_meta_mat_is_an_error_naming_it(tmp_path, val_subset, subset_pairs, all_val_labels):
    folder = tmp_path / "c"
    link_images(folder, [val_subset / "images" / name for name, _ in subset_pairs[:3]])
    write_devkit(folder, all_val_labels, devkit_order())
    (folder / data.META).write_bytes(b"not a MATLAB file")
    with pytest.raises(ReplicationError, match="synsets") as err:
        data.find_dataset(folder)
    assert err.value.path == folder / data.META
    (folder / data.META).unlink()
    with pytest.raises(ReplicationError, match="not found") as err:
        data.find_dataset(folder)
    assert err.value.path == folder / data.META


def test_folder_without_labels_is_an_error(tmp_path, val_subset, subset_pairs):
    link_images(tmp_path, [val_subset / "images" / subset_pairs[0][0]])
    with pytest.raises(ReplicationError, match="cannot tell the labels"):
        data.find_dataset(tmp_path)


# --- preprocessing ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def few(val_subset):
    return data.find_dataset(val_subset, limit=N_DECODED)


def decoded(ds, prep, batch_size=10):
    images, labels = zip(*((x.numpy(), y.numpy()) for x, y in data.tf_dataset(ds, prep, batch_size)))
    return np.concatenate(images), np.concatenate(labels)


def test_images_already_at_crop_size_are_used_exactly_as_decoded(few):
    images, labels = decoded(few, PIXEL)
    assert images.shape == (N_DECODED, 227, 227, 3) and images.dtype == np.float32
    assert np.array_equal(labels, few.labels)
    for image, path in zip(images, few.files):
        rgb = np.asarray(Image.open(path).convert("RGB"), np.float32)
        expected = rgb[:, :, ::-1] - np.array([104, 117, 123], np.float32)
        assert np.array_equal(image, expected), path.name


@pytest.fixture(scope="module")
def full_size(tmp_path_factory, few):
    """A few images at the validation set's usual sizes (500x375, 375x500), so that the
    resize to 256 shrinks them as it does real validation images."""
    folder = tmp_path_factory.mktemp("full_size")
    (folder / "images").mkdir()
    lines = []
    for i, (path, label) in enumerate(zip(few.files[:6], few.labels)):
        size = (500, 375) if i % 2 else (375, 500)
        Image.open(path).resize(size, Image.BICUBIC).save(folder / "images" / path.name, quality=95)
        lines.append(f"{path.name} {label}\n")
    (folder / "val.txt").write_text("".join(lines))
    return data.find_dataset(folder)


@pytest.mark.parametrize("which", ["shared", "full size"])
def test_resize_crop_and_mean_image_match_caffe_within_a_grey_level(few, full_size, which, mean_file, cv2):
    """Caffe's recipe as its tools run it: OpenCV decode and INTER_LINEAR resize to
    256x256 (uint8), centre crop at offset 14, mean image cropped at the same place."""
    ds = few if which == "shared" else full_size
    prep = data.Preprocessing(resize=256, crop=227, mean="image", mean_file=mean_file)
    images, _ = decoded(ds, prep)
    mean = np.load(mean_file).transpose(1, 2, 0)[14:241, 14:241].astype(np.float32)
    diffs = []
    for image, path in zip(images, ds.files):
        caffe = cv2.resize(cv2.imread(str(path)), (256, 256), interpolation=cv2.INTER_LINEAR)
        diffs.append(np.abs(image - (caffe[14:241, 14:241].astype(np.float32) - mean)))
    diffs = np.stack(diffs)
    assert diffs.max() <= 1.0 + 1e-4  # OpenCV's fixed-point rounding
    assert diffs.mean() < 0.3


def test_mean_image_is_resized_when_the_images_are(few, mean_file, cv2):
    prep = data.Preprocessing(resize=227, crop=227, mean="image", mean_file=mean_file)
    four = data.find_dataset(few.root, limit=4)
    images, _ = decoded(four, prep)
    pixels, _ = decoded(four, PIXEL)
    mean = np.load(mean_file).transpose(1, 2, 0).astype(np.float32)
    mean = cv2.resize(mean, (227, 227), interpolation=cv2.INTER_LINEAR)
    # pixels - (mean image - mean pixel) == images
    assert np.allclose(pixels + np.array([104, 117, 123], np.float32) - mean, images, atol=1e-3)


def test_mean_image_without_a_mean_file_says_where_to_find_one(few, tmp_path):
    with pytest.raises(ReplicationError, match="ilsvrc_2012_mean.npy"):
        data.tf_dataset(few, data.Preprocessing(mean="image"))
    flat = tmp_path / "mean.npy"
    np.save(flat, np.zeros((256, 256)))
    with pytest.raises(ReplicationError, match="3 x H x W") as err:
        data.tf_dataset(few, data.Preprocessing(mean="image", mean_file=flat))
    assert err.value.path == flat


def test_crop_larger_than_resize_is_an_error():
    with pytest.raises(ReplicationError, match="crop"):
        data.Preprocessing(resize=227, crop=256)


# --- bad images -------------------------------------------------------------------------------


def bogus_huffman_table(jpeg: bytes) -> bytes:
    """A JPEG whose segment structure is intact but whose first Huffman table is not: only
    decoding can tell."""
    at = jpeg.find(b"\xff\xc4")
    return jpeg[: at + 5] + b"\xff" * 16 + jpeg[at + 21 :]


BREAKERS = {
    "truncated": lambda jpeg: jpeg[: len(jpeg) // 2],
    "garbage": lambda jpeg: os.urandom(len(jpeg)),
    "empty": lambda jpeg: b"",
    "bad huffman table": bogus_huffman_table,
}


@pytest.fixture
def damaged(tmp_path, val_subset, subset_pairs):
    """Six images with val.txt; image 2 is broken by the breaker the test picks."""
    pairs = subset_pairs[:6]
    folder = write_val_folder(tmp_path / "damaged", val_subset, pairs)

    def damage(kind, index=2):
        target = folder / "images" / pairs[index][0]
        jpeg = target.read_bytes()
        target.unlink()
        target.write_bytes(BREAKERS[kind](jpeg))
        return data.find_dataset(folder), target

    return damage


@pytest.mark.parametrize("kind", ["truncated", "garbage", "empty"])
def test_corrupt_image_is_an_error_naming_it_before_any_decoding(damaged, kind):
    ds, target = damaged(kind)
    with pytest.raises(ReplicationError) as err:
        data.tf_dataset(ds, PIXEL)  # building the pipeline checks; nothing is decoded yet
    assert err.value.path == target


def test_image_that_only_fails_to_decode_is_named_too(damaged):
    ds, target = damaged("bad huffman table")
    assert data.check_images(ds) is ds  # the structure check cannot see it
    with pytest.raises(ReplicationError, match="cannot be decoded") as err:
        list(data.batches(ds, PIXEL, batch_size=4))
    assert err.value.path == target


@pytest.mark.parametrize("kind", ["truncated", "bad huffman table"])
@pytest.mark.parametrize("index", [0, 2, 5])
def test_skip_bad_leaves_out_counts_and_reports(damaged, kind, index, capsys):
    ds, target = damaged(kind, index)
    skipped = []
    labels = np.concatenate([y for _, y in data.batches(ds, PIXEL, batch_size=4, skip_bad=True, skipped=skipped)])
    assert [path for path, _ in skipped] == [target]
    assert np.array_equal(labels, np.delete(ds.labels, index))
    images, labels = data.load_arrays(ds, PIXEL, skip_bad=True)
    assert len(images) == len(labels) == 5
    assert target.name in capsys.readouterr().err  # reported at the end


def test_missing_image_found_after_listing_is_named(damaged):
    ds, target = damaged("truncated")
    target.unlink()
    with pytest.raises(ReplicationError, match="missing") as err:
        data.check_images(ds)
    assert err.value.path == target


# --- decode once ---------------------------------------------------------------------------------


def test_load_arrays_in_memory_equals_the_pipeline(few):
    images, labels = data.load_arrays(few, PIXEL, memory_gb=1)
    assert type(images) is np.ndarray
    assert images.ctypes.data % ALIGNMENT == 0  # so that TensorFlow takes its batches without a copy
    expected_images, expected_labels = decoded(few, PIXEL)
    assert np.array_equal(images, expected_images) and np.array_equal(labels, expected_labels)


def test_load_arrays_memory_maps_a_cache_and_reuses_it(few, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    images, labels = data.load_arrays(few, PIXEL, cache_dir=cache, memory_gb=0)
    assert isinstance(images, np.memmap)
    expected_images, expected_labels = decoded(few, PIXEL)
    assert np.array_equal(images, expected_images) and np.array_equal(labels, expected_labels)
    key = data.dataset_id(few, PIXEL)
    npy = cache / f"decoded-{key}.npy"
    assert sorted(p.name for p in cache.iterdir()) == sorted([npy.name, npy.with_suffix(".json").name])

    built = npy.stat().st_mtime_ns

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(data, "batches", no_decoding)
    again, again_labels = data.load_arrays(few, PIXEL, cache_dir=cache, memory_gb=0)
    assert np.array_equal(again, expected_images) and np.array_equal(again_labels, expected_labels)
    assert npy.stat().st_mtime_ns == built

    # Without memory_gb=0 the same images fit in RAM: the cache is not needed.
    monkeypatch.undo()
    assert type(data.load_arrays(few, PIXEL, cache_dir=cache, memory_gb=1)[0]) is not np.memmap


@pytest.mark.parametrize("damage", ["no metadata", "short file", "other key"])
def test_damaged_or_foreign_cache_is_rebuilt(few, tmp_path, damage):
    cache = tmp_path / "cache"
    expected, _ = data.load_arrays(few, PIXEL, cache_dir=cache, memory_gb=0)
    expected = np.array(expected)
    npy = cache / f"decoded-{data.dataset_id(few, PIXEL)}.npy"
    meta = npy.with_suffix(".json")
    if damage == "no metadata":
        meta.unlink()
    elif damage == "short file":
        npy.write_bytes(npy.read_bytes()[: npy.stat().st_size // 2])
    else:
        meta.write_text(meta.read_text().replace(data.dataset_id(few, PIXEL), "0" * 16))
    images, _ = data.load_arrays(few, PIXEL, cache_dir=cache, memory_gb=0)
    assert np.array_equal(images, expected)
    assert meta.exists() and not list(cache.glob(".*"))  # no temporary files left


def test_cache_is_keyed_by_preprocessing_bounded_and_removable(few, tmp_path, mean_file):
    cache = tmp_path / "cache"
    four = data.find_dataset(few.root, limit=4)
    data.load_arrays(four, PIXEL, cache_dir=cache, memory_gb=0)
    other = data.Preprocessing(resize=256, crop=227, mean="image", mean_file=mean_file)
    assert data.dataset_id(four, other) != data.dataset_id(four, PIXEL)
    one_entry = 4 * 227 * 227 * 3 * 4 / 2**30
    data.load_arrays(four, other, cache_dir=cache, memory_gb=0, cache_gb=1.5 * one_entry)
    # room for one: the older entry went
    assert [p.name for p in cache.glob("decoded-*.npy")] == [f"decoded-{data.dataset_id(four, other)}.npy"]
    with pytest.raises(ReplicationError, match="cache bound"):
        data.load_arrays(few, PIXEL, cache_dir=cache, memory_gb=0, cache_gb=one_entry)
    assert data.clear_cache(cache) > 4 * 227 * 227 * 3 * 4
    assert not list(cache.iterdir())


def test_images_that_do_not_fit_need_a_cache_dir(few):
    with pytest.raises(ReplicationError, match="--cache-dir"):
        data.load_arrays(few, PIXEL, memory_gb=0)


def test_dataset_id_changes_with_what_decoding_depends_on(val_subset, few, tmp_path, mean_file):
    assert data.dataset_id(few, PIXEL) == data.dataset_id(data.find_dataset(val_subset, limit=N_DECODED), PIXEL)
    relabelled = data.Dataset(few.files, (few.labels + 1) % 1000, few.root)
    fewer = data.find_dataset(val_subset, limit=N_DECODED - 1)
    cropped = data.Preprocessing(resize=256, crop=224, mean="pixel")
    variants = [(few, PIXEL), (relabelled, PIXEL), (fewer, PIXEL), (few, cropped)]
    ids = {data.dataset_id(ds, prep) for ds, prep in variants}
    assert len(ids) == 4
    # the mean file counts by content, not by path
    copy = tmp_path / "mean.npy"
    copy.write_bytes(mean_file.read_bytes())
    by_path = [data.Preprocessing(mean="image", mean_file=f) for f in (mean_file, copy)]
    assert data.dataset_id(few, by_path[0]) == data.dataset_id(few, by_path[1])


def test_training_image_that_only_fails_to_decode_is_named(damaged):
    from replication.data.training import training_stream

    ds, target = damaged("bad huffman table")
    with pytest.raises(ReplicationError, match="training image cannot be decoded") as err:
        list(training_stream(ds, PIXEL, batch_size=2, seed=0, start_step=0, stop_step=6))
    assert err.value.path == target
