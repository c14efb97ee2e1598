"""python -m replication.synthetic: see replication/commands/synthetic.py."""

from replication.commands.common import entry_point
from replication.commands.synthetic import main

main = entry_point(__name__, main)
