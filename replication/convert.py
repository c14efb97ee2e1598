"""python -m replication.convert: see replication/commands/convert.py."""

from replication.commands.common import entry_point
from replication.commands.convert import main

main = entry_point(__name__, main)
