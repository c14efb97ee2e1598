"""python -m replication.profile: see replication/commands/profile.py."""

from replication.commands.common import entry_point
from replication.commands.profile import main

main = entry_point(__name__, main)
