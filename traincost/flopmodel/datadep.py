"""Data-dependent ops on the meta device: answered by a stated assumption, never by values.

A meta tensor has a shape but no values, so an op whose output shape depends on values (``nonzero``,
``masked_select``, non-maximum suppression) or that reads a value into Python (``.item()``, ``if
mask.any():``) has no meta kernel, and detection heads or mixture-of-experts routing stop the walk.
The walk answers each such op with the value a training step most plausibly sees and records the
assumption so the estimate can say what it assumed:

- ``nonzero`` / ``masked_select`` / ``x[mask]`` / ``x[mask] = v``: every element is selected, the largest
  shape the values allow, unless the mask's count is known: a mask built by writing ``k`` indices into
  zeros (a sampler's ``mask[chosen] = 1``) selects ``k``; ``|``, ``&``, ``cat`` and casts carry the
  count, so a detector's sampled 512 boxes stay 512, not the 2,000 proposals they were drawn from;
- an integer clamped to ``[lo, hi]`` takes each value equally often: ``levels == k`` selects
  ``1 / (hi - lo + 1)`` of the elements (a feature pyramid's RoI levels share the boxes, rather than
  each level pooling all of them);
- NMS keeps every box (detectors cap the survivors with ``[:post_nms_top_n]``);
- a boolean read (``.any()``, ``.all()``, a comparison) is ``False``: "no degenerate box", "no inf";
  an integer or float read is 1, the smallest size that keeps the following shapes non-empty.

Inside a mixture-of-experts block (a :func:`routing` scope, opened by the block's forward hooks) the
routing is balanced instead: the "which experts got tokens" selection finds every expert, each expert's
token selection finds the tokens a balanced router sends it (``tokens x k / experts``, capped by the
expert capacity), and integer reads there enumerate the experts 0, 1, ..., so a loop over the hit experts
runs each expert once with its own weights.
"""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from torch.overrides import TorchFunctionMode

_aten = torch.ops.aten


#: Attributes a meta tensor carries through the walk: how many of its elements are known to be set, the MoE
#: routing that set that count (the assumption to state when the mask is selected again), the range of its values.
_COUNT = "_traincost_selected"
_ROUTED = "_traincost_routed"
_RANGE = "_traincost_range"


def _count(t: Any) -> int | None:
    return getattr(t, _COUNT, None) if isinstance(t, torch.Tensor) else None


def selected(mask: torch.Tensor) -> int:
    """Elements of ``mask`` taken as set: its known count, else all of them."""
    known = _count(mask)
    return min(known, mask.numel()) if known is not None else mask.numel()


def set_selected(t: Any, n: int) -> None:
    """Say that ``n`` elements of the meta tensor ``t`` are non-zero (a no-op on real tensors)."""
    if isinstance(t, torch.Tensor) and t.is_meta:
        setattr(t, _COUNT, int(n))


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
    "aten.index": "boolean-mask indexing x[mask]: every element selected unless the mask's count is known",
    "aten.index_put": "boolean-mask assignment x[mask] = v: every element selected unless the mask's count is known",
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
    global _NMS_MISSING
    try:
        out[torch.ops.torchvision.nms.default] = _nms
        _NMS_MISSING = False
    except (AttributeError, RuntimeError):  # torchvision (its C++ ops) not loaded yet
        pass
    return out


_ANSWERS: dict[Any, Callable[[tuple, dict], Any]] | None = None
_NMS_MISSING = True


ROUTING_PREFIX = "MoE routing: "


@dataclass
class Routing:
    """A mixture-of-experts block's balanced routing: ``tokens_per_expert`` rows reach each expert."""

    experts: int
    top_k: int
    tokens_per_expert: int
    text: str                          # the assumption as the estimate states it, from ROUTING_PREFIX
    next_expert: int = field(default=0, compare=False)


class _FormatReads(TorchFunctionMode):
    """``f"expert_{index}"`` of a 0-dim integer meta tensor formats its value read (an expert number), as
    on a GPU, instead of the tensor's repr: Switch Transformers names the expert module that way."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        x = args[0] if args else None
        if (func is torch.Tensor.__format__ and isinstance(x, torch.Tensor) and x.is_meta and x.dim() == 0
                and not x.is_floating_point() and x.dtype != torch.bool):
            return format(int(x.item()), *args[1:])
        return func(*args, **(kwargs or {}))


_SCOPES: list[tuple[Routing, _FormatReads]] = []


@contextlib.contextmanager
def routing(scope: Routing) -> Iterator[Routing]:
    """Answer the selections made inside an MoE block by ``scope``'s balanced routing."""
    enter(scope)
    try:
        yield scope
    finally:
        leave(scope)


def enter(scope: Routing) -> None:
    """:func:`routing` for forward hooks, which open a scope in one call and close it in another."""
    mode = _FormatReads()
    mode.__enter__()
    _SCOPES.append((scope, mode))


def leave(scope: Routing) -> None:
    """Close ``scope`` and the scopes opened after it (a hook that never ran leaves none behind)."""
    while any(s is scope for s, _ in _SCOPES):
        _, mode = _SCOPES.pop()
        mode.__exit__(None, None, None)


def _remembered(mask: torch.Tensor) -> tuple[int, str] | None:
    """``(elements, routing text)`` of a mask answered in an MoE block: it selects as many elements again
    later, in the backward of ``x[mask]`` too, which runs after the block."""
    text = getattr(mask, _ROUTED, None)
    return (selected(mask), text) if text is not None else None


def _selected(scope: Routing | None, mask: torch.Tensor) -> int:
    """Elements a selection over ``mask`` finds: all of them outside an MoE block; inside, every expert
    (a mask over the experts, plus a sentinel slot in some versions) or one expert's tokens."""
    known = _remembered(mask)
    if known is not None:
        return known[0]
    if scope is None:
        return selected(mask)
    if mask.dim() == 1 and mask.shape[0] in (scope.experts, scope.experts + 1):  # which experts got tokens
        scope.next_expert = 0
        rows = scope.experts
    else:
        rows = min(scope.tokens_per_expert, mask.numel())
    set_selected(mask, rows)
    setattr(mask, _ROUTED, scope.text)
    return rows


def _routed(scope: Routing, name: str, args: tuple) -> Any:
    x = args[0]
    if name in ("aten.nonzero", "aten.argwhere"):
        return torch.empty((_selected(scope, x), x.dim()), dtype=torch.long, device="meta")
    if name == "aten.masked_select":
        return torch.empty((_selected(scope, x),), dtype=x.dtype, device="meta")
    index = scope.next_expert % scope.experts  # an integer read: the expert the loop is at
    scope.next_expert += 1
    return index


_MASK_INDEXED = {_aten.index.Tensor: "aten.index", _aten.index_put.default: "aten.index_put",
                 _aten.index_put_.default: "aten.index_put", _aten._index_put_impl_.default: "aten.index_put"}


def _is_mask(i: Any) -> bool:
    return isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) and i.is_meta


def _mask_indexed(func: Any, args: tuple, kwargs: dict, scope: Routing | None) -> Any:
    """``x[mask]`` / ``x[mask] = v`` on meta (their meta kernels call ``nonzero``): the mask becomes the
    long indices of the elements :func:`_selected` finds, and the op runs on those."""
    indices: list[Any] = []
    for i in args[1]:
        if _is_mask(i):
            rows = _selected(scope, i)
            indices += [torch.zeros((rows,), dtype=torch.long, device="meta") for _ in range(i.dim())]
        else:
            indices.append(i)
    return func(args[0], indices, *args[2:], **kwargs)


def lookup(func: Any, args: tuple, kwargs: dict) -> tuple[str | None, Any]:
    """``(what was assumed, output)`` when ``func`` is a data-dependent op on meta tensors, else ``(None, None)``.

    What was assumed is the op's name, or an MoE scope's text for a selection made inside the block.
    """
    global _ANSWERS
    if _ANSWERS is None or (_NMS_MISSING and "torchvision" in sys.modules):
        _ANSWERS = _answers()
    if func in _MASK_INDEXED and len(args) > 1 and any(_is_mask(i) for i in args[1]):
        scope = _SCOPES[-1][0] if _SCOPES else None
        known = [k for k in (_remembered(i) for i in args[1] if _is_mask(i)) if k is not None]
        text = scope.text if scope is not None else known[0][1] if known else _MASK_INDEXED[func]
        return text, _mask_indexed(func, args, kwargs, scope)
    f = _ANSWERS.get(func)
    if f is None or not args or not isinstance(args[0], torch.Tensor) or not args[0].is_meta:
        return None, None
    name = str(func.overloadpacket)
    x = args[0]
    known = _remembered(x) if name in _SELECTIONS and not _SCOPES else None
    if known is not None:  # a mask routed in an MoE block, selected again after it (backward)
        rows = known[0]
        shape = (rows,) if name == "aten.masked_select" else (rows, x.dim())
        return known[1], torch.empty(shape, dtype=x.dtype if name == "aten.masked_select" else torch.long,
                                     device="meta")
    if _SCOPES and (name in _SELECTIONS or (name == "aten._local_scalar_dense"
                                            and not x.is_floating_point() and x.dtype != torch.bool)):
        scope = _SCOPES[-1][0]
        return scope.text, _routed(scope, name, args)
    return name, f(args, kwargs)


_SELECTIONS = ("aten.nonzero", "aten.argwhere", "aten.masked_select")


_ZEROS = frozenset({"aten.zeros", "aten.zeros_like", "aten.new_zeros", "aten.zero_"})
_KEEP = frozenset({"aten._to_copy", "aten.clone", "aten.view", "aten._unsafe_view", "aten.reshape",
                   "aten.squeeze", "aten.unsqueeze", "aten.flatten", "aten.alias", "aten.detach",
                   "aten.contiguous", "aten.to", "aten.lift_fresh"})


def carry(name: str, args: tuple, out: Any) -> None:
    """Keep a mask's known count through the ops a sampler builds it with (see the module docstring)."""
    first = args[0] if args else None
    if name in _ZEROS:
        set_selected(out, 0)
    elif name == "aten.index_put_" or name == "aten.index_put":
        indices = args[1]
        if len(indices) == 1 and isinstance(indices[0], torch.Tensor) and not _is_mask(indices[0]) \
                and _count(first) is not None:
            set_selected(out, min(_count(first) + indices[0].numel(), first.numel()))
    elif name in ("aten.bitwise_or", "aten.logical_or", "aten.__or__"):
        known = [_count(a) for a in args[:2]]
        if None not in known:
            set_selected(out, sum(known))
    elif name in ("aten.bitwise_and", "aten.logical_and", "aten.__and__"):
        known = [c for c in (_count(a) for a in args[:2]) if c is not None]
        if known:
            set_selected(out, min(known))
    elif name in ("aten.gt", "aten.ne") and len(args) > 1 and isinstance(args[1], (int, float)) \
            and args[1] == 0 and _count(first) is not None:
        set_selected(out, _count(first))    # labels > 0: the positives of a labelled sample
    elif name == "aten.clamp" and len(args) >= 3 and all(isinstance(v, int) for v in args[1:3]):
        _set_range(out, args[1], args[2])
    elif name in ("aten.sub", "aten.add") and len(args) >= 2 and isinstance(args[1], int) \
            and getattr(first, _RANGE, None) is not None:
        lo, hi = getattr(first, _RANGE)
        shift = -args[1] if name == "aten.sub" else args[1]
        _set_range(out, lo + shift, hi + shift)
    elif name == "aten.eq" and len(args) >= 2 and isinstance(args[1], int) \
            and getattr(first, _RANGE, None) is not None:
        lo, hi = getattr(first, _RANGE)
        set_selected(out, first.numel() // (hi - lo + 1) if lo <= args[1] <= hi else 0)
    elif name == "aten.cat":
        known = [_count(t) for t in first]
        if known and None not in known:
            set_selected(out, sum(known))
    elif name in _KEEP and isinstance(first, torch.Tensor) and isinstance(out, torch.Tensor) \
            and out.numel() == first.numel():
        if _count(first) is not None:
            set_selected(out, _count(first))
        if getattr(first, _RANGE, None) is not None and not out.is_floating_point():
            _set_range(out, *getattr(first, _RANGE))


def meta_kernels_assume_all() -> Any:
    """torch's own meta kernels that select by a mask internally (``x[mask] = v``) take every element too."""
    try:
        from torch.fx.experimental import _config
        return _config.patch(meta_nonzero_assume_all_nonzero=True)
    except (ImportError, AttributeError):  # an older torch without the switch: such ops stay unwalkable
        return contextlib.nullcontext()


def describe(counts: Counter) -> tuple[str, ...]:
    """One line per assumption made, with how often: ``NMS: every box kept (x4)``; an MoE block's routing
    once per distinct routing (its selections and reads are one assumption)."""
    return tuple(op if op.startswith(ROUTING_PREFIX) else f"{_WHAT.get(op, op)} (x{n})"
                 for op, n in sorted(counts.items()))
