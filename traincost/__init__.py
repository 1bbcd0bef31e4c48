"""traincost: how long a CNN/DNN takes to train on a GPU, whether it fits, and what it costs.

Public API::

    traincost.count(model, *, batch_size, input_shape=None, precision="fp32",
                    channels_last=False, optimizer="sgd") -> CountResult
    traincost.max_batch_size(model, *, memory_bytes, ...) -> int
    traincost.ArchSpec, traincost.resolve(name, params, input_shape)
"""

from traincost.errors import ModelBuildError, SpecError, TraincostError, TraincostUsageError
from traincost.flopmodel.arch import ArchSpec, resolve
from traincost.flopmodel.count import CountResult, count, max_batch_size

__version__ = "0.1.0"

__all__ = [
    "ArchSpec",
    "CountResult",
    "ModelBuildError",
    "SpecError",
    "TraincostError",
    "TraincostUsageError",
    "count",
    "max_batch_size",
    "resolve",
]
