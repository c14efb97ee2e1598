"""python -m replication.recover: see replication/commands/recover.py."""

from replication.commands.common import entry_point
from replication.commands.recover import main

main = entry_point(__name__, main)
