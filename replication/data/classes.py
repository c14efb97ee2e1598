"""The 1000 ILSVRC2012 classes: label i is the i-th WordNet id in sorted order, the order
of Caffe's val.txt and of every Caffe Zoo and Keras Applications classifier's output."""

import functools
from pathlib import Path

CLASS_LIST = Path(__file__).resolve().parents[1] / "reference" / "synset_words.txt"


@functools.cache
def _class_list() -> tuple[tuple[str, str], ...]:
    lines = CLASS_LIST.read_text().splitlines()
    return tuple((wnid, words) for wnid, _, words in (line.partition(" ") for line in lines))


def class_wnids() -> tuple[str, ...]:
    """The 1000 ILSVRC2012 WordNet ids, sorted: label i is class_wnids()[i]."""
    return tuple(wnid for wnid, _ in _class_list())


def class_names() -> tuple[str, ...]:
    """Human-readable names, in label order ("tench, Tinca tinca", ...)."""
    return tuple(words for _, words in _class_list())


@functools.cache
def label_of_wnid() -> dict[str, int]:
    return {wnid: i for i, wnid in enumerate(class_wnids())}
