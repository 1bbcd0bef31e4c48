"""Pricing: a walked step x a device profile -> seconds.

:mod:`~traincost.pricing.geometry` reads GEMM and convolution dimensions off op shapes,
:mod:`~traincost.pricing.optable` prices every op's device time (the one pricer),
:mod:`~traincost.pricing.timeline` adds host time and runs the host/device timelines,
:mod:`~traincost.pricing.parallel` adds data-parallel communication and :mod:`~traincost.pricing.cost` dollars.
"""

#: Version of the analytic model: the walk's counts and how a profile prices them. Bump it with every change
#: that moves a priced number (``tests/golden/analytic.json`` fails until ``scripts/golden.py --write`` stores
#: the new values); a residual model fitted under another version is reported stale. Refactors leave it alone.
MODEL_VERSION = 1
