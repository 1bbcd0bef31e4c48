"""``/api/models``: the model names the web app accepts, for the page's search and its family fields.

Families with their parameters (name, default, kind and the one-line description their dataclass documents),
torchvision's names, and timm's as ``timm:<name>`` when timm is installed.
"""

from __future__ import annotations

import ast
import functools
import inspect
from dataclasses import MISSING, fields
from typing import Any


@functools.lru_cache(maxsize=1)
def model_names() -> dict[str, Any]:
    """``{"families": [{name, doc, params: [{name, default, kind, help}]}], "torchvision": [...], "timm": [...]}``."""
    from traincost.flopmodel import families

    out: dict[str, Any] = {"families": [], "torchvision": [], "timm": []}
    for name, family in families.FAMILIES.items():
        cls = family.params_cls
        docs = _attribute_docs(cls)
        params = []
        for f in fields(cls):
            default = f.default if f.default is not MISSING else (
                f.default_factory() if f.default_factory is not MISSING else None)
            if isinstance(default, tuple):
                default = list(default)
            params.append({"name": f.name, "default": default, "kind": _kind(default), "help": docs.get(f.name, "")})
        out["families"].append({"name": name, "doc": family.description, "params": params})
    try:
        import torchvision

        out["torchvision"] = sorted(torchvision.models.list_models())
    except ImportError:
        pass
    try:
        import timm
    except ImportError:
        pass
    else:
        out["timm"] = ["timm:" + n for n in sorted(timm.list_models())]
    return out


def _kind(default: Any) -> str:
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, list):
        return "ints"
    return "text"


def _attribute_docs(cls: type) -> dict[str, str]:
    """The string literal under each field of a dataclass (its description), first sentence."""
    try:
        tree = ast.parse(inspect.getsource(cls))
    except (OSError, TypeError, SyntaxError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs = {}
    for node, following in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) \
                and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant) \
                and isinstance(following.value.value, str):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs
