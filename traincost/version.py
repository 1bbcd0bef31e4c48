"""The package version, in a leaf module every layer may import (``traincost.__version__`` re-exports it)."""

__version__ = "0.1.0"
