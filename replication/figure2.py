"""python -m replication.figure2: the paper's Figure 2 (row 2 of analysis/experiments.py)."""

from replication.commands.figure import figure_command

main = figure_command(2, __name__)
