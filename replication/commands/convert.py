"""python -m replication.convert MODEL.caffemodel -o OUT.h5 [--prototxt DEPLOY.prototxt]

Converts Caffe weights (either file generation) into the project's HDF5 weight file,
prints the source's sha1 and sha256, whether it is a known Model Zoo file, and one line
per layer.

Given a Keras 1 weight file instead (recognised by its content: HDF5 with a root
layer_names attribute), such as heuritech's alexnet_weights.h5 that the paper's authors
loaded, it converts nothing: --model convnets_keras loads that file as it is. It checks
that the file loads into that model and prints its hashes and one line per layer.
"""

import sys
from pathlib import Path

from replication.commands.common import load_tensorflow, new_parser, output_file, run_cli


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


def describe_keras_file(path: Path, output: Path | None) -> int:
    """Check that a Keras 1 weight file loads into the model that takes it; print its hashes
    and layers. A file that does not load is a ReplicationError naming it."""
    from replication.files import file_digest
    from replication.models.keras1 import load_keras1_weights, read_keras1_weights, summary_table
    from replication.models.registry import get_model_spec, list_models

    layers = read_keras1_weights(path)
    takers = [name for name in list_models() if get_model_spec(name).weights_format == "keras1"]
    for name in takers:
        load_keras1_weights(get_model_spec(name).build(), path, layers)
    print(f"source  {path}  (Keras 1 weight file)")
    print(f"sha1    {file_digest(path, 'sha1')}")
    print(f"sha256  {file_digest(path, 'sha256')}")
    print(summary_table(layers))
    models = " or ".join(f"--model {name}" for name in takers)
    print(f"no conversion needed: it loads into {models} as it is; pass --weights {path}")
    if output is not None:
        print(f"nothing written to {output}")
    return 0


def main(argv=None) -> int:
    parser = new_parser("python -m replication.convert", "Convert a Caffe .caffemodel into the project's HDF5 weight file.")
    parser.add_argument("caffemodel", type=Path,
                        help="binary Caffe weights (.caffemodel), either generation; or a Keras 1 weight file "
                        "(heuritech's alexnet_weights.h5), which is checked and described: it needs no conversion")
    parser.add_argument("-o", "--output", type=output_file, help="HDF5 file to write (needed for a .caffemodel)")
    parser.add_argument("--prototxt", type=Path, help="deploy .prototxt to check the weights against")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    args = parser.parse_args(argv)

    from replication.models.keras1 import keras_layout

    if keras_layout(args.caffemodel) is not None:
        load_tensorflow(args.verbose)  # the file is checked by loading it into the Keras model
        return describe_keras_file(args.caffemodel, args.output)
    if args.output is None:
        from replication.caffe.convert import check_weight_source

        check_weight_source(args.caffemodel)  # what is wrong with the file comes before what is missing
        parser.error("the following arguments are required: -o/--output (for a .caffemodel)")
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
