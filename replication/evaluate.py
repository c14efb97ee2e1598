"""python -m replication.evaluate: see replication/commands/evaluate.py."""

from replication.commands.common import entry_point
from replication.commands.evaluate import main

main = entry_point(__name__, main)
