"""python -m replication.table1: see replication/commands/table1.py."""

from replication.commands.common import entry_point
from replication.commands.table1 import main

main = entry_point(__name__, main)
