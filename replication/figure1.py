"""Figure 1: top-5 accuracy of AlexNet (or any model) as a growing proportion of one layer's synapses is knocked out.

python -m replication.figure1 --help lists the options.
"""

import sys

from replication.cli import figure_main
from replication.errors import run_cli


def main(argv=None) -> int:
    return figure_main(1, argv)


if __name__ == "__main__":
    sys.exit(run_cli(main))
