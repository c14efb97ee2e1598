"""python -m replication.compare: see replication/commands/compare.py."""

from replication.commands.common import entry_point
from replication.commands.compare import main

main = entry_point(__name__, main)
