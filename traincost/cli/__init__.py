"""The ``traincost`` command line. Renders results and maps errors to exit codes (1 failure, 2 usage).

:mod:`traincost.cli.app` holds the click group; importing the command modules registers their commands on it.
"""

from traincost.cli import learn, measure, model, serve  # noqa: F401  (register their commands on main)
from traincost.cli.app import main

__all__ = ["main"]
