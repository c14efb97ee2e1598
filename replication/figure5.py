"""python -m replication.figure5: the paper's Figure 5, VGG-16 under Gaussian weight noise (row 5
of analysis/experiments.py)."""

from replication.commands.figure import figure_command

main = figure_command(5, __name__)
