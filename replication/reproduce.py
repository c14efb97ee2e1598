"""python -m replication.reproduce: see replication/commands/reproduce.py."""

from replication.commands.common import entry_point
from replication.commands.reproduce import main

main = entry_point(__name__, main)
