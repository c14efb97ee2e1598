"""python -m replication.merge: see replication/commands/merge.py."""

from replication.commands.common import entry_point
from replication.commands.merge import main

main = entry_point(__name__, main)
