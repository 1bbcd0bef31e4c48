"""Data-dependent ops on the meta device: answered by a stated assumption, never by values.

A meta tensor has a shape but no values, so an op whose output shape depends on values (``nonzero``,
``masked_select``, non-maximum suppression) or that reads a value into Python (``.item()``, ``if
mask.any():``) has no meta kernel, and detection heads or mixture-of-experts routing stop the walk.
The walk answers each such op with the value a training step most plausibly sees and records the
assumption so the estimate can say what it assumed:

- ``nonzero`` / ``masked_select``: every element is selected, the largest shape the values allow; a
  selection that is capped downstream (a sampler's 512 boxes, an expert's capacity) costs what the cap
  lets through, not more;
- NMS keeps every box (detectors cap the survivors with ``[:post_nms_top_n]``);
- a boolean read (``.any()``, ``.all()``, a comparison) is ``False``: "no degenerate box", "no inf";
  an integer or float read is 1, the smallest size that keeps the following shapes non-empty.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable

import torch

_aten = torch.ops.aten


def _nonzero(args: tuple, kwargs: dict) -> torch.Tensor:
    x = args[0]
    return torch.empty((x.numel(), x.dim()), dtype=torch.long, device="meta")


def _argwhere(args: tuple, kwargs: dict) -> torch.Tensor:
    return _nonzero(args, kwargs)


def _masked_select(args: tuple, kwargs: dict) -> torch.Tensor:
    x, mask = args[0], args[1]
    n = torch.broadcast_shapes(x.shape, mask.shape).numel()
    return torch.empty((n,), dtype=x.dtype, device="meta")


def _nms(args: tuple, kwargs: dict) -> torch.Tensor:
    return torch.empty((args[0].shape[0],), dtype=torch.long, device="meta")


def _scalar(args: tuple, kwargs: dict) -> Any:
    x = args[0]
    if x.dtype == torch.bool:
        return False
    return 1.0 if x.is_floating_point() else 1


_WHAT: dict[str, str] = {
    "aten.nonzero": "nonzero: every element selected",
    "aten.argwhere": "argwhere: every element selected",
    "aten.masked_select": "masked_select: every element selected",
    "torchvision.nms": "NMS: every box kept",
    "aten._local_scalar_dense": "a value read on the host (.item(), if tensor:): False for a boolean, 1 otherwise",
}


def _answers() -> dict[Any, Callable[[tuple, dict], Any]]:
    out: dict[Any, Callable[[tuple, dict], Any]] = {
        _aten.nonzero.default: _nonzero,
        _aten.argwhere.default: _argwhere,
        _aten.masked_select.default: _masked_select,
        _aten._local_scalar_dense.default: _scalar,
    }
    nms = getattr(getattr(torch.ops, "torchvision", None), "nms", None)
    if nms is not None:
        try:
            out[nms.default] = _nms
        except (AttributeError, RuntimeError):  # torchvision's C++ ops not loaded
            pass
    return out


_ANSWERS: dict[Any, Callable[[tuple, dict], Any]] | None = None


def answer(func: Any, args: tuple, kwargs: dict) -> tuple[bool, Any]:
    """``(True, output)`` when ``func`` is a data-dependent op on meta tensors, else ``(False, None)``."""
    global _ANSWERS
    if _ANSWERS is None or (len(_ANSWERS) == 4 and "torchvision" in _loaded_namespaces()):
        _ANSWERS = _answers()
    f = _ANSWERS.get(func)
    if f is None or not args or not isinstance(args[0], torch.Tensor) or not args[0].is_meta:
        return False, None
    return True, f(args, kwargs)


def _loaded_namespaces() -> set[str]:
    import sys
    return {"torchvision"} if "torchvision" in sys.modules else set()


def describe(counts: Counter) -> tuple[str, ...]:
    """One line per assumption made, with how often: ``NMS: every box kept (x4)``."""
    return tuple(f"{_WHAT.get(op, op)} (x{n})" for op, n in sorted(counts.items()))
