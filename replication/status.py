"""python -m replication.status: see replication/commands/status.py."""

from replication.commands.common import entry_point
from replication.commands.status import main

main = entry_point(__name__, main)
