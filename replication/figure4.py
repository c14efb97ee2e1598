"""python -m replication.figure4: the paper's Figure 4 (row 4 of analysis/experiments.py)."""

from replication.commands.figure import figure_command

main = figure_command(4, __name__)
