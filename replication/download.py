"""python -m replication.download: see replication/commands/download.py."""

from replication.commands.common import entry_point
from replication.commands.download import main

main = entry_point(__name__, main)
