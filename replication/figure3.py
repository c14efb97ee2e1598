"""python -m replication.figure3: the paper's Figure 3 (row 3 of analysis/experiments.py)."""

from replication.commands.figure import figure_command

main = figure_command(3, __name__)
