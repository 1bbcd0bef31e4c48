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

Inside a mixture-of-experts block (a :func:`routing` scope, opened by the block's forward hooks) the
routing is balanced instead: the "which experts got tokens" selection finds every expert, each expert's
token selection finds the tokens a balanced router sends it (``tokens x k / experts``, capped by the
expert capacity), and integer reads there enumerate the experts 0, 1, ..., so a loop over the hit experts
runs each expert once with its own weights.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from torch.overrides import TorchFunctionMode

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


def _routed(scope: Routing, name: str, args: tuple) -> Any:
    x = args[0]
    if name in ("aten.nonzero", "aten.argwhere"):
        if x.dim() == 1 and x.shape[0] in (scope.experts, scope.experts + 1):  # which experts got tokens
            scope.next_expert = 0
            return torch.empty((scope.experts, 1), dtype=torch.long, device="meta")
        return torch.empty((min(scope.tokens_per_expert, x.numel()), x.dim()), dtype=torch.long, device="meta")
    if name == "aten.masked_select":
        return torch.empty((min(scope.tokens_per_expert, x.numel()),), dtype=x.dtype, device="meta")
    index = scope.next_expert % scope.experts  # an integer read: the expert the loop is at
    scope.next_expert += 1
    return index


def lookup(func: Any, args: tuple, kwargs: dict) -> tuple[str | None, Any]:
    """``(what was assumed, output)`` when ``func`` is a data-dependent op on meta tensors, else ``(None, None)``.

    What was assumed is the op's name, or an MoE scope's text for a selection made inside the block.
    """
    global _ANSWERS
    if _ANSWERS is None or (len(_ANSWERS) == 4 and "torchvision" in _loaded_namespaces()):
        _ANSWERS = _answers()
    f = _ANSWERS.get(func)
    if f is None or not args or not isinstance(args[0], torch.Tensor) or not args[0].is_meta:
        return None, None
    name = str(func.overloadpacket)
    x = args[0]
    if _SCOPES and (name in _SELECTIONS or (name == "aten._local_scalar_dense"
                                            and not x.is_floating_point() and x.dtype != torch.bool)):
        scope = _SCOPES[-1][0]
        return scope.text, _routed(scope, name, args)
    return name, f(args, kwargs)


_SELECTIONS = ("aten.nonzero", "aten.argwhere", "aten.masked_select")


def answer(func: Any, args: tuple, kwargs: dict) -> tuple[bool, Any]:
    """``(True, output)`` when ``func`` is a data-dependent op on meta tensors, else ``(False, None)``."""
    key, out = lookup(func, args, kwargs)
    return key is not None, out


def _loaded_namespaces() -> set[str]:
    import sys
    return {"torchvision"} if "torchvision" in sys.modules else set()


def describe(counts: Counter) -> tuple[str, ...]:
    """One line per assumption made, with how often: ``NMS: every box kept (x4)``; an MoE block's routing
    once per distinct routing (its selections and reads are one assumption)."""
    return tuple(op if op.startswith(ROUTING_PREFIX) else f"{_WHAT.get(op, op)} (x{n})"
                 for op, n in sorted(counts.items()))
