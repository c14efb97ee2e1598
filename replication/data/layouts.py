"""Finding the validation images and their labels in any of three layouts (`find_dataset`):

  (a) a folder of ILSVRC2012_val_*.JPEG (directly or in images/) and Caffe's val.txt
      (`FILENAME LABEL` lines, labels 0..999): --labels, or val.txt in the folder;
  (b) one subfolder per class, named by its WordNet id (n01440764/...);
  (c) the devkit's ILSVRC2012_validation_ground_truth.txt (line i: the ILSVRC2012_ID,
      1..1000, of ILSVRC2012_val_0000000i) with meta.mat beside it, whose synsets map
      those ids to WordNet ids. The devkit numbers classes in its own order, not in
      sorted-wnid order, so the ids are mapped through meta.mat.
Labels always come out 0..999 in sorted-wnid order (`classes`). Images are ordered by
file name, which for the validation set is image-number order, so `limit` takes the
same images whatever the layout. A label file that does not match the images is an
error naming it, before anything is decoded.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from replication.data.classes import label_of_wnid
from replication.errors import ReplicationError

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
META = "meta.mat"

_WNID = re.compile(r"n\d{8}")
_VAL_NUMBER = re.compile(r"ILSVRC2012_val_(\d+)\.", re.IGNORECASE)


@dataclass
class Dataset:
    files: list[Path]
    labels: np.ndarray  # int32, 0..999 in sorted-wnid order
    root: Path
    layout: str = ""  # "val.txt", "class folders" or "devkit": how the labels were found
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (file, problem) left out

    def __len__(self) -> int:
        return len(self.files)

    def subset(self, keep) -> "Dataset":
        keep = np.asarray(keep, dtype=np.int64)
        return Dataset([self.files[i] for i in keep], self.labels[keep], self.root, self.layout, list(self.skipped))


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _image_folder(data_dir: Path) -> Path:
    images = data_dir / "images"
    return images if images.is_dir() else data_dir


def _is_number(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts '²' and other digits int() refuses."""
    return text.isascii() and text.isdigit()


def _read_lines(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ReplicationError(path, "is not a text label file") from None
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _is_ground_truth(path: Path) -> bool:
    """The devkit's file has one number per line; Caffe's val.txt has a name and a label."""
    lines = _read_lines(path)
    return bool(lines) and _is_number(lines[0][1])


def _val_txt_layout(folder: Path, val_txt: Path) -> list[tuple[Path, int]]:
    listed: dict[str, tuple[int, int]] = {}
    for n, line in _read_lines(val_txt):
        parts = line.rsplit(maxsplit=1)  # Caffe's ImageData layer also splits at the last space
        if len(parts) != 2 or not _is_number(parts[1]):
            raise ReplicationError(val_txt, f"line {n}: expected 'FILENAME LABEL', got {line!r}")
        name, label = parts[0], int(parts[1])
        if label >= 1000:
            raise ReplicationError(val_txt, f"line {n}: label {label} is not in 0..999")
        if name in listed:
            raise ReplicationError(val_txt, f"line {n}: {name} is listed twice (first on line {listed[name][0]})")
        listed[name] = (n, label)
    if not listed:
        raise ReplicationError(val_txt, "lists no images")

    present = {p.name for p in _image_files(folder)}
    missing = [name for name in listed if name not in present and not (folder / name).is_file()]
    if missing:
        raise ReplicationError(
            folder / missing[0],
            f"listed in {val_txt} (line {listed[missing[0]][0]}) but missing; "
            f"{len(missing)} of the {len(listed)} listed images are not in {folder}",
        )
    unlabelled = sorted(present - set(listed))
    if unlabelled:
        raise ReplicationError(
            val_txt,
            f"lists {len(listed)} images but {folder} holds {len(present)}: "
            f"{len(unlabelled)} have no label, e.g. {unlabelled[0]}",
        )
    return [(folder / name, label) for name, (_, label) in listed.items()]


def _class_folder_layout(data_dir: Path) -> list[tuple[Path, int]]:
    label_of = label_of_wnid()
    pairs = []
    for sub in sorted(p for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if sub.name not in label_of:
            what = "not one of the 1000 ILSVRC2012 classes" if _WNID.fullmatch(sub.name) else "not a WordNet id"
            raise ReplicationError(
                sub, f"is {what}: in a class-folder layout every subfolder is a class (e.g. n01440764)"
            )
        pairs += [(f, label_of[sub.name]) for f in _image_files(sub)]
    loose = _image_files(data_dir)
    if loose:
        raise ReplicationError(loose[0], "is outside the class folders, so its class is unknown")
    return pairs


def _read_meta(meta: Path) -> dict[int, int]:
    """meta.mat: devkit class id (ILSVRC2012_ID 1..1000) -> label in sorted-wnid order."""
    import scipy.io  # only the devkit layout needs it

    if not meta.is_file():
        raise ReplicationError(meta, f"not found: the devkit's meta.mat must sit beside {GROUND_TRUTH}")
    try:
        synsets = scipy.io.loadmat(meta, squeeze_me=True)["synsets"]
        ids, wnids = synsets["ILSVRC2012_ID"], synsets["WNID"]
    except Exception as err:  # scipy raises several types for files that are not .mat
        problem = f"has no synsets with ILSVRC2012_ID and WNID ({type(err).__name__}: {err})"
        raise ReplicationError(meta, problem) from None
    label_of = label_of_wnid()
    mapping = {}
    # meta.mat also lists the WordNet ancestors of the classes, with ids above 1000.
    for class_id, wnid in zip(np.atleast_1d(ids), np.atleast_1d(wnids)):
        if 1 <= int(class_id) <= 1000:
            if str(wnid) not in label_of:
                raise ReplicationError(meta, f"class {int(class_id)} is {wnid}, not one of the 1000 ILSVRC2012 classes")
            mapping[int(class_id)] = label_of[str(wnid)]
    if sorted(mapping) != list(range(1, 1001)) or len(set(mapping.values())) != 1000:
        raise ReplicationError(meta, "does not map the class ids 1..1000 to 1000 distinct classes")
    return mapping


def _devkit_layout(folder: Path, ground_truth: Path) -> list[tuple[Path, int]]:
    label_of_id = _read_meta(ground_truth.with_name(META))
    ids = []
    for n, line in _read_lines(ground_truth):
        if not _is_number(line) or int(line) not in label_of_id:
            raise ReplicationError(ground_truth, f"line {n}: expected a class id 1..1000, got {line!r}")
        ids.append(int(line))
    pairs = []
    # Line i is image number i, so a folder may hold any subset of the 50,000 images.
    for f in _image_files(folder):
        number = _VAL_NUMBER.match(f.name)
        if number is None:
            raise ReplicationError(f, f"is not named ILSVRC2012_val_<number>, so its line in {GROUND_TRUTH} is unknown")
        i = int(number.group(1))
        if not 1 <= i <= len(ids):
            raise ReplicationError(ground_truth, f"has {len(ids)} labels but {f.name} is image number {i}")
        pairs.append((f, label_of_id[ids[i - 1]]))
    return pairs


def find_dataset(data_dir, labels=None, limit=None) -> Dataset:
    """Find the images and labels in data_dir (see the module docstring for the layouts).

    labels: a Caffe val.txt or the devkit's ground-truth file (meta.mat beside it);
    otherwise looked for in data_dir. limit: keep the first `limit` images by file name.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ReplicationError(data_dir, "no such folder of validation images")
    folder = _image_folder(data_dir)
    if labels is not None:
        labels = Path(labels)
        if not labels.is_file():
            raise ReplicationError(labels, "label file not found")
    else:
        labels = next((p for p in (data_dir / "val.txt", data_dir / GROUND_TRUTH) if p.is_file()), None)

    if labels is not None and _is_ground_truth(labels):
        layout, pairs = "devkit", _devkit_layout(folder, labels)
    elif labels is not None:
        layout, pairs = "val.txt", _val_txt_layout(folder, labels)
    elif any(_WNID.fullmatch(p.name) and p.is_dir() for p in data_dir.iterdir()):
        layout, pairs = "class folders", _class_folder_layout(data_dir)
    else:
        raise ReplicationError(
            data_dir,
            "cannot tell the labels: expected val.txt (or --labels val.txt), one subfolder per "
            f"class named by WordNet id, or the devkit's {GROUND_TRUTH} with {META}",
        )
    if not pairs:
        raise ReplicationError(data_dir, "holds no images (.JPEG, .jpg or .png)")
    pairs.sort(key=lambda pair: (pair[0].name, str(pair[0])))
    if limit is not None:
        if limit < 1:
            raise ReplicationError(None, f"limit must be at least 1, not {limit}")
        pairs = pairs[:limit]
    files = [f for f, _ in pairs]
    return Dataset(files, np.array([label for _, label in pairs], np.int32), data_dir, layout)
