"""python -m replication.convert MODEL.caffemodel -o OUT.h5 [--prototxt DEPLOY.prototxt]

Converts Caffe weights (either file generation) into the project's HDF5 weight file,
prints the source's sha1 and sha256, whether it is a known Model Zoo file, and one line
per layer.
"""

import sys
from pathlib import Path

from replication.commands.common import new_parser, run_cli


def summary_table(net) -> str:
    """One line per Caffe layer with blobs: name, type, blob shapes, parameter count."""
    rows = [("layer", "type", "blob shapes", "parameters")]
    total = 0
    for layer in net.layers:
        if not layer.blobs:
            continue
        count = sum(b.size for b in layer.blobs)
        total += count
        shapes = ", ".join("x".join(map(str, b.shape)) or "scalar" for b in layer.blobs)
        rows.append((layer.name, layer.type, shapes, f"{count:,}"))
    rows.append(("total", "", "", f"{total:,}"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


def main(argv=None) -> int:
    parser = new_parser("python -m replication.convert", "Convert a Caffe .caffemodel into the project's HDF5 weight file.")
    parser.add_argument("caffemodel", type=Path, help="binary Caffe weights (.caffemodel), either generation")
    parser.add_argument("-o", "--output", type=Path, required=True, help="HDF5 file to write")
    parser.add_argument("--prototxt", type=Path, help="deploy .prototxt to check the weights against")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    args = parser.parse_args(argv)

    from replication.caffe.convert import convert_caffemodel, identify

    conversion = convert_caffemodel(args.caffemodel, args.output, args.prototxt, progress=not args.no_progress)
    known, warning = identify(args.caffemodel, conversion.sha1)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"source  {args.caffemodel}  ({conversion.net.generation} format)")
    print(f"sha1    {conversion.sha1}" + (f"  = {known}" if known else "  (not a known Model Zoo file)"))
    print(f"sha256  {conversion.sha256}")
    print(summary_table(conversion.net))
    print(f"wrote   {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
