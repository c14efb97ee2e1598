"""The `replication` console script: every command as a subcommand.

    replication figure1 --data DIR …     (= python -m replication.figure1 --data DIR …)
    replication convert MODEL.caffemodel -o OUT.h5
    replication --help

Each subcommand takes exactly the options of its `python -m replication.<command>` form.
"""

import importlib
import sys

from replication import __version__
from replication.commands.common import run_cli

COMMANDS = {
    "reproduce": ("replication.commands.reproduce", "Table 1, Figures 1-5 and the claims table in one run"),
    "figure1": ("replication.figure1", "Figure 1: synapse knockout, top-5"),
    "figure2": ("replication.figure2", "Figure 2: node knockout, top-5"),
    "figure3": ("replication.figure3", "Figure 3: Gaussian weight noise, top-5"),
    "figure4": ("replication.figure4", "Figure 4: Gaussian weight noise, top-1 (Figure 3's trials)"),
    "figure5": ("replication.figure5", "Figure 5: VGG-16 under Gaussian weight noise, top-5"),
    "recover": ("replication.recover", "beyond the paper: fine-tune a damaged network, measure its recovery"),
    "convert": ("replication.commands.convert", ".caffemodel -> HDF5 weight file"),
    "evaluate": ("replication.commands.evaluate", "top-1 / top-5 of a model on the validation images"),
    "table1": ("replication.commands.table1", "the paper's Table 1 for a weight file"),
    "compare": ("replication.commands.compare", "the paper's claims beside ours"),
    "profile": ("replication.profile", "beyond the paper: where each layer's accuracy halves, across networks"),
    "merge": ("replication.commands.merge", "the checked union of a sharded sweep's tables"),
    "status": ("replication.commands.status", "how far a sweep has got, per shard, and its Slurm jobs"),
    "synthetic": ("replication.commands.synthetic", "a synthetic model (real shapes, random weights) for offline use"),
    "download": ("replication.commands.download", "fetch the Model Zoo weights, mean image and ILSVRC12 aux files"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"usage: replication COMMAND [options]   (replication {__version__})", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {about}" for name, (_, about) in COMMANDS.items()]
    lines += ["", "replication COMMAND --help lists a command's options."]
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(__version__)
        return 0
    if argv[0] not in COMMANDS:
        print(f"error: unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    command = importlib.import_module(COMMANDS[argv[0]][0])
    return command.main(argv[1:])


def console() -> int:
    """The console script's entry point."""
    return run_cli(main)


if __name__ == "__main__":
    sys.exit(console())
