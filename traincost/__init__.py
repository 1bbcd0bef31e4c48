"""traincost: how long a CNN/DNN takes to train on a GPU, whether it fits, and what it costs.

Public API::

    traincost.count(model, *, batch_size, input_shape=None, precision="fp32",
                    channels_last=False, optimizer="sgd") -> CountResult
    traincost.max_batch_size(model, *, memory_bytes, ...) -> int
    traincost.predict(model, *, device, batch_size, input_shape=None, precision="fp32",
                      channels_last=False, optimizer="sgd", epochs=None, dataset_size=None,
                      gpus=1, nodes=1, network=None, correction="auto") -> Estimate
                      (gpus > 1: DDP data parallel; correction: the learned residual, traincost.correction)
    traincost.compare(model, *, devices, batch_size, ...) -> list[Estimate]  (one walk, many devices)
    traincost.DeviceProfile (traincost.hardware.profile): what a device achieves, as the pricer needs it
    traincost.ArchSpec, traincost.resolve(name, params, input_shape)
"""

from typing import TYPE_CHECKING, Any

from traincost.errors import (
    ModelBuildError,
    SpecError,
    TraincostError,
    TraincostUsageError,
)
from traincost.version import __version__  # noqa: F401 (traincost.__version__)

#: public name -> the module that defines it; loaded on first use (PEP 562), so that ``import traincost`` and
#: ``traincost --help`` do not import torch.
_LAZY = {
    "Estimate": "traincost.api", "compare": "traincost.api", "predict": "traincost.api",
    "ArchSpec": "traincost.flopmodel.arch", "resolve": "traincost.flopmodel.arch",
    "CountResult": "traincost.flopmodel.count", "count": "traincost.flopmodel.count",
    "max_batch_size": "traincost.flopmodel.count", "DeviceProfile": "traincost.hardware.profile",
}

if TYPE_CHECKING:
    from traincost.api import Estimate, compare, predict
    from traincost.flopmodel.arch import ArchSpec, resolve
    from traincost.flopmodel.count import CountResult, count, max_batch_size
    from traincost.hardware.profile import DeviceProfile


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'traincost' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "ArchSpec",
    "CountResult",
    "DeviceProfile",
    "Estimate",
    "ModelBuildError",
    "SpecError",
    "TraincostError",
    "TraincostUsageError",
    "compare",
    "count",
    "max_batch_size",
    "predict",
    "resolve",
]
