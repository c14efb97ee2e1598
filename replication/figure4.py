"""Figure 4: top-1 accuracy of the Gaussian-noise runs of Figure 3 (same results table, nothing recomputed).

python -m replication.figure4 --help lists the options.
"""

import sys

from replication.cli import figure_main
from replication.errors import run_cli


def main(argv=None) -> int:
    return figure_main(4, argv)


if __name__ == "__main__":
    sys.exit(run_cli(main))
