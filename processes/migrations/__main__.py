"""python -m processes.migrations "what changed": autogenerate a revision of the domain's schema."""

import sys

from engine.db import database_url
from engine.runtime import Engine
from processes.migrations import autogenerate

if len(sys.argv) != 2:
    sys.exit('usage: python -m processes.migrations "what changed"')
engine = Engine(database_url())
engine.init_db()  # the revision holds only what the models add to the current head
autogenerate(engine.db, sys.argv[1])
engine.dispose()
