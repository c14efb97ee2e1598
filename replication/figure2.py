"""Figure 2: top-5 accuracy as a growing proportion of one layer's nodes (filters, units) is knocked out.

python -m replication.figure2 --help lists the options.
"""

import sys

from replication.cli import figure_main
from replication.errors import run_cli


def main(argv=None) -> int:
    return figure_main(2, argv)


if __name__ == "__main__":
    sys.exit(run_cli(main))
