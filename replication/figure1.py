"""python -m replication.figure1: the paper's Figure 1 (row 1 of analysis/experiments.py)."""

from replication.commands.figure import figure_command

main = figure_command(1, __name__)
