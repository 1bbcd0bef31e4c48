"""timm models by name (``timm:convnext_tiny``): built without weights, at their pretrained input size.

The input size is the one the model's pretrained configuration states (``input_size``: training runs at
it, not at the larger ``test_input_size``); ``img_size`` among the parameters overrides it. A deprecated
alias (``jx_nest_base``) resolves through timm's own table. Nothing is downloaded: ``pretrained=False``.
"""

from __future__ import annotations

import difflib
import warnings
from typing import Any

from traincost.errors import SpecError

PREFIX = "timm:"
DEFAULT_INPUT = (3, 224, 224)


def timm() -> Any:
    try:
        import timm as timm_module
    except ImportError as exc:
        raise SpecError("timm model names need timm: pip install timm (or pip install 'traincost[timm]')") from exc
    return timm_module


def names() -> list[str]:
    """Every architecture the installed timm can build (no pretrained-tag variants)."""
    return sorted(timm().list_models())


def check_name(name: str) -> None:
    tm = timm()
    if tm.is_model(name):
        return
    close = difflib.get_close_matches(name, tm.list_models(), n=5, cutoff=0.6)
    if not close:
        close = tm.list_models(f"*{name}*")[:5]
    hint = f"; did you mean: {', '.join(PREFIX + c for c in close)}" if close else ""
    raise SpecError(f"unknown timm model {name!r} (timm {tm.__version__}){hint}")


def build(name: str, params: dict[str, Any]) -> Any:
    with warnings.catch_warnings():  # "Mapping deprecated model name ...": the alias resolves, as it should
        warnings.simplefilter("ignore", UserWarning)
        return timm().create_model(name, pretrained=False, **params)


def input_shape(name: str, model: Any = None) -> tuple[int, ...]:
    """The model's pretrained ``input_size`` (from the built model, else timm's table), else 3x224x224."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    size = cfg.get("input_size")
    if size is None:
        found = timm().get_pretrained_cfg(name)
        size = getattr(found, "input_size", None)
    return tuple(int(s) for s in size) if size else DEFAULT_INPUT
