"""python -m replication.download [alexnet mean aux caffenet convnets_keras vgg16] [--to caffe_weights]

Fetches the public files the replication needs into `caffe_weights/`: the Model Zoo's
AlexNet (and CaffeNet) weights, Caffe's ImageNet mean image, and Caffe's ILSVRC12
auxiliary archive (whose `val.txt` and `synset_words.txt` are extracted beside it).

The work is `replication.fetch` (resume with a validator, hash, format and archive checks
before the final rename, the sha256 recorded for files without a published hash, one
process per folder); this command parses the options and prints what was done. The
ILSVRC2012 validation images need a (free) registration and are never fetched here; the
command says where to get them.
"""

import argparse
import sys
import urllib.parse

from replication.commands.common import new_parser, output_folder, positive_float, run_cli
from replication.errors import ReplicationError
from replication.fetch import (
    DEFAULT_ITEMS,
    DEFAULT_TIMEOUT,
    IMAGES_NOTE,
    ITEMS,
    Download,
    Item,
    check_mean_image,
    fetch_item,
    mirror_url,
    record_path,
)
from replication.paths import WEIGHTS_DIR


def _http_url(text: str) -> str:
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(f"expected an http:// or https:// URL, got {text!r}")
    return text


def listing() -> str:
    """What the command can fetch, one block per item, and where the images are.

    Returns:
        The text `--list` prints.
    """
    lines = []
    for item in ITEMS.values():
        default = "  (default)" if item.name in DEFAULT_ITEMS else ""
        lines.append(f"{item.name:9} {item.filename}  {item.size}{default}")
        lines.append(f"{'':9} {item.about}")
        lines.append(f"{'':9} {item.url}")
        checked = f"{item.algorithm} {item.digest}" if item.digest else "no published hash (its sha256 is printed)"
        lines.append(f"{'':9} {checked}")
    lines += ["", IMAGES_NOTE]
    return "\n".join(lines)


def _report(result: Download, item: Item) -> str:
    how = "downloaded" if result.fetched else "already present, not downloaded again"
    if item.digest is not None and result.digest is not None:
        hashes = f"{result.algorithm} {result.digest} as published"
    elif result.recorded:
        hashes = (f"sha256 {result.sha256} (no published hash; recorded in {record_path(result.path)}, "
                  "which later runs check against: keep that value to pin the file)")
    elif result.digest is not None:
        hashes = f"sha256 {result.sha256} (no published hash; as recorded in {record_path(result.path)})"
    else:
        hashes = f"sha256 {result.sha256} (no published hash)"
    extra = ""
    if item.check is check_mean_image:
        extra = "; a 3x256x256 mean image"
    if result.extracted:
        extra += "; extracted " + ", ".join(str(path) for path in result.extracted)
    return f"{result.path}: {how}, {hashes}{extra}"


def main(argv=None) -> int:
    parser = new_parser("python -m replication.download",
                        "Fetch the Model Zoo weights, Caffe's mean image and ILSVRC12 auxiliary files, with resume "
                        "and hash checks. The validation images need a registration and are not fetched.",
                        tensorflow=False)
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"what to fetch: {', '.join(ITEMS)} (default: {' '.join(DEFAULT_ITEMS)})")
    parser.add_argument("--to", type=output_folder, metavar="FOLDER", default=str(WEIGHTS_DIR),
                        help=f"the folder to fetch into (default {WEIGHTS_DIR})")
    parser.add_argument("--mirror", type=_http_url, metavar="URL",
                        help="fetch every file from URL/FILENAME instead of its publisher (a lab mirror)")
    parser.add_argument("--timeout", type=positive_float, metavar="SECONDS", default=DEFAULT_TIMEOUT,
                        help=f"seconds any one network operation may wait (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--list", action="store_true", help="list what can be fetched, and fetch nothing")
    args = parser.parse_args(argv)
    if args.list:
        print(listing())
        return 0

    unknown = [name for name in args.names if name not in ITEMS]
    if unknown:
        parser.error(f"unknown {', '.join(map(repr, unknown))}; choose from {', '.join(ITEMS)} (see --list)")
    names = list(dict.fromkeys(args.names or DEFAULT_ITEMS))
    for name in names:
        item = ITEMS[name]
        url = mirror_url(args.mirror, item.filename) if args.mirror else None
        try:
            result = fetch_item(item, args.to, url=url, progress=not args.no_progress, timeout=args.timeout,
                                log=lambda line: print(line, file=sys.stderr))
        except ReplicationError as err:
            if args.verbose and getattr(err, "detail", None):
                print(err.detail, file=sys.stderr)
            raise
        print(_report(result, item), flush=True)
        if name == "alexnet" and result.fetched:
            h5 = result.path.with_suffix(".h5")
            print(f"  next: python -m replication.convert {result.path} -o {h5}")
    print(IMAGES_NOTE)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
