"""Data-dependent ops on the meta device: answered by a stated assumption, never by values.

A meta tensor has a shape but no values, so an op whose output shape depends on values (``nonzero``,
``masked_select``, non-maximum suppression) or that reads a value into Python (``.item()``, ``if
mask.any():``) has no meta kernel, and detection heads or mixture-of-experts routing stop the walk.
The walk answers each such op with the value a training step most plausibly sees and records the
assumption so the estimate can say what it assumed:

- ``nonzero`` / ``masked_select`` / a boolean-mask index: every element is selected, the largest
  shape the values allow, unless the mask's count is known: a mask built by writing ``k`` indices into
  zeros (a sampler's ``mask[chosen] = 1``) selects ``k``; ``|``, ``&``, ``cat`` and casts carry the
  count, so a detector's sampled 512 boxes stay 512, not the 2,000 proposals they were drawn from;
- an integer clamped to ``[lo, hi]`` takes each value equally often: ``levels == k`` selects
  ``1 / (hi - lo + 1)`` of the elements (a feature pyramid's RoI levels share the boxes, rather than
  each level pooling all of them);
- NMS keeps every box (detectors cap the survivors with ``[:post_nms_top_n]``);
- a boolean read (``.any()``, ``.all()``, a comparison) is ``False``: "no degenerate box", "no inf";
  an integer or float read is 1, the smallest size that keeps the following shapes non-empty.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import Any, Callable

import torch

_aten = torch.ops.aten


_COUNT = "_traincost_selected"  # attribute of a meta mask: how many of its elements are known to be set


def selected(mask: torch.Tensor) -> int:
    """Elements of ``mask`` taken as set: its known count, else all of them."""
    known = getattr(mask, _COUNT, None)
    return min(known, mask.numel()) if known is not None else mask.numel()


def set_selected(t: Any, n: int) -> None:
    """Say that ``n`` elements of the meta tensor ``t`` are non-zero (a no-op on real tensors)."""
    if isinstance(t, torch.Tensor) and t.is_meta:
        setattr(t, _COUNT, int(n))


_set_count = set_selected
_RANGE = "_traincost_range"  # attribute of a meta integer tensor: its values lie in [lo, hi]


def _set_range(t: Any, lo: int, hi: int) -> None:
    if isinstance(t, torch.Tensor) and t.is_meta and hi >= lo:
        setattr(t, _RANGE, (int(lo), int(hi)))


def _nonzero(args: tuple, kwargs: dict) -> torch.Tensor:
    x = args[0]
    return torch.empty((selected(x), x.dim()), dtype=torch.long, device="meta")


def _argwhere(args: tuple, kwargs: dict) -> torch.Tensor:
    return _nonzero(args, kwargs)


def _masked_select(args: tuple, kwargs: dict) -> torch.Tensor:
    x, mask = args[0], args[1]
    n = torch.broadcast_shapes(x.shape, mask.shape).numel()
    n = n * selected(mask) // max(mask.numel(), 1)
    return torch.empty((n,), dtype=x.dtype, device="meta")


def _is_mask(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and t.dtype in (torch.bool, torch.uint8)


def _index(args: tuple, kwargs: dict) -> Any:
    """``x[mask]`` (and ``x[mask, :]``): the mask's selected rows, then the dimensions it does not index."""
    x, indices = args[0], args[1]
    masks = [i for i in indices if _is_mask(i)]
    if len(masks) != 1 or any(isinstance(i, torch.Tensor) and not _is_mask(i) for i in indices):
        return NotImplemented
    pos = next(k for k, i in enumerate(indices) if _is_mask(i))
    if any(i is not None for i in indices[:pos]):
        return NotImplemented
    mask = masks[0]
    shape = (*x.shape[:pos], selected(mask), *x.shape[pos + mask.dim():])
    return torch.empty(shape, dtype=x.dtype, device="meta")


def _nms(args: tuple, kwargs: dict) -> torch.Tensor:
    return torch.empty((args[0].shape[0],), dtype=torch.long, device="meta")


def _scalar(args: tuple, kwargs: dict) -> Any:
    x = args[0]
    if x.dtype == torch.bool:
        return False
    return 1.0 if x.is_floating_point() else 1


_WHAT: dict[str, str] = {
    "aten.nonzero": "nonzero: every element selected unless the mask's count is known",
    "aten.argwhere": "argwhere: every element selected unless the mask's count is known",
    "aten.masked_select": "masked_select: every element selected unless the mask's count is known",
    "aten.index": "a boolean-mask index: every element selected unless the mask's count is known",
    "torchvision.nms": "NMS: every box kept",
    "aten._local_scalar_dense": "a value read on the host (.item(), if tensor:): False for a boolean, 1 otherwise",
}


def _answers() -> dict[Any, Callable[[tuple, dict], Any]]:
    out: dict[Any, Callable[[tuple, dict], Any]] = {
        _aten.nonzero.default: _nonzero,
        _aten.argwhere.default: _argwhere,
        _aten.masked_select.default: _masked_select,
        _aten._local_scalar_dense.default: _scalar,
        _aten.index.Tensor: _index,
    }
    global _NMS_MISSING
    try:
        out[torch.ops.torchvision.nms.default] = _nms
        _NMS_MISSING = False
    except (AttributeError, RuntimeError):  # torchvision (its C++ ops) not loaded yet
        pass
    return out


_ANSWERS: dict[Any, Callable[[tuple, dict], Any]] | None = None
_NMS_MISSING = True


def answer(func: Any, args: tuple, kwargs: dict) -> tuple[bool, Any]:
    """``(True, output)`` when ``func`` is a data-dependent op on meta tensors, else ``(False, None)``."""
    global _ANSWERS
    if _ANSWERS is None or (_NMS_MISSING and "torchvision" in _loaded_namespaces()):
        _ANSWERS = _answers()
    f = _ANSWERS.get(func)
    if f is None or not args or not isinstance(args[0], torch.Tensor) or not args[0].is_meta:
        return False, None
    out = f(args, kwargs)
    return (False, None) if out is NotImplemented else (True, out)


_ZEROS = frozenset({"aten.zeros", "aten.zeros_like", "aten.new_zeros", "aten.zero_"})
_KEEP = frozenset({"aten._to_copy", "aten.clone", "aten.view", "aten._unsafe_view", "aten.reshape",
                   "aten.squeeze", "aten.unsqueeze", "aten.flatten", "aten.alias", "aten.detach",
                   "aten.contiguous", "aten.to", "aten.lift_fresh"})


def carry(name: str, args: tuple, out: Any) -> None:
    """Keep a mask's known count through the ops a sampler builds it with (see the module docstring)."""
    if name in _ZEROS:
        _set_count(out, 0)
    elif name == "aten.index_put_" or name == "aten.index_put":
        base, indices = args[0], args[1]
        if len(indices) == 1 and isinstance(indices[0], torch.Tensor) and not _is_mask(indices[0]) \
                and getattr(base, _COUNT, None) is not None:
            _set_count(out, min(getattr(base, _COUNT) + indices[0].numel(), base.numel()))
    elif name in ("aten.bitwise_or", "aten.logical_or", "aten.__or__"):
        if all(isinstance(a, torch.Tensor) and getattr(a, _COUNT, None) is not None for a in args[:2]):
            _set_count(out, sum(getattr(a, _COUNT) for a in args[:2]))
    elif name in ("aten.bitwise_and", "aten.logical_and", "aten.__and__"):
        known = [getattr(a, _COUNT) for a in args[:2] if isinstance(a, torch.Tensor)
                 and getattr(a, _COUNT, None) is not None]
        if known:
            _set_count(out, min(known))
    elif name in ("aten.gt", "aten.ne") and len(args) > 1 and isinstance(args[1], (int, float)) \
            and args[1] == 0 and getattr(args[0], _COUNT, None) is not None:
        _set_count(out, getattr(args[0], _COUNT))    # labels > 0: the positives of a labelled sample
    elif name == "aten.clamp" and len(args) >= 3 and all(isinstance(v, int) for v in args[1:3]):
        _set_range(out, args[1], args[2])
    elif name in ("aten.sub", "aten.add") and len(args) >= 2 and isinstance(args[1], int) \
            and getattr(args[0], _RANGE, None) is not None:
        lo, hi = getattr(args[0], _RANGE)
        shift = -args[1] if name == "aten.sub" else args[1]
        _set_range(out, lo + shift, hi + shift)
    elif name == "aten.eq" and len(args) >= 2 and isinstance(args[1], int) \
            and getattr(args[0], _RANGE, None) is not None:
        lo, hi = getattr(args[0], _RANGE)
        _set_count(out, args[0].numel() // (hi - lo + 1) if lo <= args[1] <= hi else 0)
    elif name == "aten.cat":
        parts = args[0]
        if parts and all(getattr(t, _COUNT, None) is not None for t in parts):
            _set_count(out, sum(getattr(t, _COUNT) for t in parts))
    elif name in _KEEP and args and isinstance(args[0], torch.Tensor) and isinstance(out, torch.Tensor) \
            and out.numel() == args[0].numel():
        if getattr(args[0], _COUNT, None) is not None:
            _set_count(out, getattr(args[0], _COUNT))
        if getattr(args[0], _RANGE, None) is not None and not out.is_floating_point():
            _set_range(out, *getattr(args[0], _RANGE))


def _loaded_namespaces() -> set[str]:
    import sys
    return {"torchvision"} if "torchvision" in sys.modules else set()


def meta_kernels_assume_all() -> Any:
    """torch's own meta kernels that select by a mask internally (``x[mask] = v``) take every element too."""
    try:
        from torch.fx.experimental import _config
        return _config.patch(meta_nonzero_assume_all_nonzero=True)
    except (ImportError, AttributeError):  # an older torch without the switch: such ops stay unwalkable
        return contextlib.nullcontext()


def describe(counts: Counter) -> tuple[str, ...]:
    """One line per assumption made, with how often: ``NMS: every box kept (x4)``."""
    return tuple(f"{_WHAT.get(op, op)} (x{n})" for op, n in sorted(counts.items()))
