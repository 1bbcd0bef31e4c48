"""``python -m traincost.cli``: the command line."""

from traincost.cli import main

main()
