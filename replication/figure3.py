"""Figure 3: top-5 accuracy as Gaussian noise of k times the layer's weight SD is added to one layer.

python -m replication.figure3 --help lists the options.
"""

import sys

from replication.cli import figure_main
from replication.errors import run_cli


def main(argv=None) -> int:
    return figure_main(3, argv)


if __name__ == "__main__":
    sys.exit(run_cli(main))
