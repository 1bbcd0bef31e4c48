"""Architecture descriptions: what the user names, validated once, and how it becomes a module.

An :class:`ArchSpec` is one of

- a generated family (``fc``, ``vgg``, ``resnet``, ``inception``) with its parameters,
- a torchvision model name (``resnet50``, ``vit_b_16``, ``fasterrcnn_resnet50_fpn``, ``r3d_18``, ...), when
  torchvision is installed (:mod:`traincost.flopmodel.vision`),
- a timm model name with its prefix (``timm:convnext_tiny``), when timm is installed,
- a Hugging Face transformer from its config (``hf:path/to/config.json``, ``hf:GPT2Config``), when
  transformers is installed (:mod:`traincost.flopmodel.hf_models`),
- a user factory: ``path/to/file.py:factory`` or ``package.module:factory`` (+ an input shape),

and can be read from a JSON or YAML spec file holding one description::

    schema_version: 1
    model: vgg                       # family, torchvision name or factory
    params: {blocks: 5, filters: 64} # family parameters or factory keyword arguments
    input_shape: [3, 224, 224]       # per-sample; optional for families and torchvision
    input_dtype: float32             # optional; int64 for token models (nn.Embedding inputs)
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import json
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from traincost.errors import ModelBuildError, SpecError
from traincost.flopmodel import families, hf_models, inputs, timm_models, vision

SPEC_SCHEMA_VERSION = 1
KINDS = ("family", "torchvision", "timm", "hf", "factory")
INPUT_DTYPES = ("float32", "float16", "bfloat16", "int64", "int32")
_FACTORY_RE = re.compile(r"^(?P<target>[^:]+):(?P<attr>[A-Za-z_][A-Za-z0-9_]*)$")


@dataclass(frozen=True)
class ArchSpec:
    """A validated architecture description.

    ``kind`` is ``family``, ``torchvision``, ``timm``, ``hf`` or ``factory``; ``name`` the family, torchvision
    model, ``timm:<model>``, ``hf:<config>`` or ``target:factory``; ``params`` the family's parameter dataclass
    (as a dict), the builder's keyword arguments or the config overrides; ``input_shape`` the per-sample input
    shape (``None``: the model's default; ``(seq_len,)`` for a transformer).
    """

    kind: str
    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    input_shape: tuple[int, ...] | None = None
    input_dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.input_dtype not in INPUT_DTYPES:
            raise SpecError(f"input_dtype must be one of {', '.join(INPUT_DTYPES)}, got {self.input_dtype!r}")
        if self.kind not in KINDS:
            raise SpecError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.input_shape is not None:
            object.__setattr__(self, "input_shape", _check_shape(self.input_shape))
        if self.kind == "family":
            raw = _family_size_from_shape(self.name, self.params, self.input_shape)
            parsed = families.parse_params(self.name, raw)
            object.__setattr__(self, "params", _asdict(parsed))
        elif self.kind == "torchvision":
            vision.check_name(self.name)
        elif self.kind == "timm":
            if not self.name.startswith(timm_models.PREFIX):
                object.__setattr__(self, "name", timm_models.PREFIX + self.name)
            timm_models.check_name(self.name.removeprefix(timm_models.PREFIX))
        elif self.kind == "hf":
            if not self.name.startswith(hf_models.PREFIX):
                object.__setattr__(self, "name", hf_models.PREFIX + self.name)
            if self.input_dtype not in ("int64", "int32"):
                raise SpecError(f"{self.name}: a transformer takes token ids: input_dtype int64 or int32, "
                                f"got {self.input_dtype!r}")
            if self.input_shape is not None and len(self.input_shape) != 1:
                raise SpecError(f"{self.name}: a transformer's input shape is (seq_len,), got {self.input_shape!r}")
            hf_models.check_name(self.name, dict(self.params))
        elif not _FACTORY_RE.match(self.name):
            raise SpecError(f"factory must look like 'file.py:function' or 'package.module:function', "
                            f"got {self.name!r}")
        if self.kind == "factory" and self.input_shape is None:
            raise SpecError(f"input_shape is required for a user model ({self.name}); "
                            "pass --input-shape C,H,W (or F for vectors)")

    @property
    def label(self) -> str:
        """A short human-readable name."""
        if self.kind != "family":
            return self.name
        return self.name + "(" + ", ".join(f"{k}={_fmt(v)}" for k, v in self.params.items()) + ")"

    def with_input(self, input_shape: Any = None, input_dtype: str | None = None) -> "ArchSpec":
        """This description with the per-sample input shape and/or dtype given (``None``: its own), validated
        again: the form a ``--spec`` file takes with ``--input-shape`` or ``--input-dtype`` beside it."""
        return ArchSpec(self.kind, self.name, self.params,
                        input_shape if input_shape is not None else self.input_shape,
                        input_dtype or self.input_dtype)

    def family_params(self) -> families.Params:
        return families.parse_params(self.name, self.params)

    def sample_shape(self, model: nn.Module | None = None) -> tuple[int, ...]:
        """Per-sample input shape, e.g. ``(3, 224, 224)``; ``model``, when built, settles what its
        builder chose (a ViT built without weights is 224 px whatever its default weights say)."""
        if self.input_shape is not None:
            return self.input_shape
        if self.kind == "family":
            return families.input_shape(self.family_params())
        if self.kind == "timm":
            size = self.params.get("img_size")
            if isinstance(size, int) and not isinstance(size, bool):
                return (int(self.params.get("in_chans", 3)), size, size)
            return timm_models.input_shape(self.name.removeprefix(timm_models.PREFIX), model)
        if self.kind == "hf":
            return (hf_models.default_seq_len(hf_models.load_config(self.name, dict(self.params)))[0],)
        return vision.input_shape(self.name, model)

    def training_inputs(self) -> inputs.TrainingInputs:
        """What the training step feeds the model and its loss (images and targets for a detector)."""
        if self.kind == "torchvision":
            return vision.training_inputs(self.name)
        if self.kind == "hf":
            seq = self.input_shape[0] if self.input_shape is not None else None
            return hf_models.training_inputs(self.name, dict(self.params), seq)
        return inputs.TENSOR

    def build(self) -> nn.Module:
        """The model, on the meta device where its constructor allows (no memory), else on CPU."""
        if self.kind == "family":
            with torch.device("meta"):
                return families.build(self.family_params())
        if self.kind == "torchvision":
            return _build_on_meta_or_cpu(lambda: vision.build(self.name, dict(self.params)), self.name)
        if self.kind == "timm":
            name = self.name.removeprefix(timm_models.PREFIX)
            return _build_on_meta_or_cpu(lambda: timm_models.build(name, dict(self.params)), self.name)
        if self.kind == "hf":
            return _build_on_meta_or_cpu(lambda: hf_models.build(self.name, dict(self.params)), self.name)
        factory = _load_factory(self.name)
        return _build_on_meta_or_cpu(lambda: factory(**self.params), self.name)

    def to_dict(self) -> dict[str, Any]:
        """The spec-file form (JSON/YAML-serialisable); ``from_dict`` reads it back."""
        out: dict[str, Any] = {"schema_version": SPEC_SCHEMA_VERSION, "model": self.name,
                               "params": {k: list(v) if isinstance(v, tuple) else v
                                          for k, v in self.params.items()}}
        if self.input_shape is not None:
            out["input_shape"] = list(self.input_shape)
        if self.input_dtype != "float32":
            out["input_dtype"] = self.input_dtype
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "spec") -> "ArchSpec":
        if not isinstance(data, Mapping):
            raise SpecError(f"{source}: expected a mapping with a 'model' key, got {type(data).__name__}")
        version = data.get("schema_version", SPEC_SCHEMA_VERSION)
        if version != SPEC_SCHEMA_VERSION:
            raise SpecError(f"{source}: schema_version {version!r} is not supported "
                            f"(this traincost reads {SPEC_SCHEMA_VERSION})")
        unknown = set(data) - {"schema_version", "model", "params", "input_shape", "input_dtype"}
        if unknown:
            raise SpecError(f"{source}: unknown keys {sorted(unknown)}; "
                            "expected schema_version, model, params, input_shape, input_dtype")
        if "model" not in data or not isinstance(data["model"], str):
            raise SpecError(f"{source}: 'model' (a family, torchvision name or file.py:factory) is required")
        params = data.get("params") or {}
        if not isinstance(params, Mapping):
            raise SpecError(f"{source}: 'params' must be a mapping, got {params!r}")
        shape = data.get("input_shape")
        try:
            return resolve(data["model"], params=params,
                           input_shape=tuple(shape) if isinstance(shape, list) else shape,
                           input_dtype=data.get("input_dtype") or None)
        except SpecError as exc:  # say which file holds the bad value
            raise SpecError(f"{source}: {exc}") from exc

    @classmethod
    def from_file(cls, path: str | Path) -> "ArchSpec":
        """Read one description from a ``.json``, ``.yaml`` or ``.yml`` file."""
        path = Path(path)
        if not path.is_file():
            raise SpecError(f"spec file not found: {path}")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise SpecError(f"spec file {path} is not a text file (expected a JSON or YAML description)") from None
        except OSError as exc:
            raise SpecError(f"cannot read spec file {path}: {exc.strerror or exc}") from None
        try:
            if path.suffix.lower() == ".json":
                data = json.loads(text)
            elif path.suffix.lower() in (".yaml", ".yml"):
                import yaml
                data = yaml.safe_load(text)
            else:
                raise SpecError(f"{path}: spec files must end in .json, .yaml or .yml")
        except (json.JSONDecodeError, ValueError) as exc:
            if isinstance(exc, SpecError):
                raise
            raise SpecError(f"{path}: malformed spec file: {str(exc).splitlines()[0]}") from exc
        except Exception as exc:  # yaml.YAMLError and friends
            raise SpecError(f"{path}: malformed spec file: {str(exc).splitlines()[0]}") from exc
        return cls.from_dict(data, source=str(path))


def resolve(model: str, params: Mapping[str, Any] | None = None,
            input_shape: tuple[int, ...] | None = None, input_dtype: str | None = None) -> ArchSpec:
    """Turn what a user typed into an :class:`ArchSpec`: family, torchvision name or factory.

    ``input_dtype`` (default float32; int64 for ``hf:`` transformers) is ``int64`` for token models whose
    first layer is an embedding.
    """
    dtype = input_dtype or "float32"
    if not isinstance(model, str) or not model.strip():
        raise SpecError(f"model must be a non-empty name, got {model!r}")
    model = model.strip()
    params = dict(params or {})
    if model in families.FAMILIES:
        return ArchSpec("family", model, params, input_shape, dtype)
    if model.startswith(timm_models.PREFIX):
        return ArchSpec("timm", model, params, input_shape, dtype)
    if model.startswith(hf_models.PREFIX):
        return ArchSpec("hf", model, params, input_shape, input_dtype or "int64")
    if _FACTORY_RE.match(model) and (model.split(":")[0].endswith(".py") or "." in model.split(":")[0]):
        return ArchSpec("factory", model, params, input_shape, dtype)
    if Path(model).suffix.lower() in (".json", ".yaml", ".yml"):
        if params or input_shape or input_dtype:
            raise SpecError(f"{model}: a spec file carries its own parameters; do not pass them too")
        return ArchSpec.from_file(model)
    return ArchSpec("torchvision", model, params, input_shape, dtype)


def token_input(seq_len: int | None, input_shape: tuple[int, ...] | str | None,
                input_dtype: str | None) -> tuple[tuple[int, ...] | str | None, str | None]:
    """``(input_shape, input_dtype)`` with ``seq_len`` applied: ``(seq_len,)`` token ids, int64 unless an
    integer dtype is given; an ``input_shape`` or float dtype that disagrees is a SpecError."""
    if seq_len is None:
        return input_shape, input_dtype
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise SpecError(f"seq_len must be a positive integer, got {seq_len!r}")
    if input_shape is not None and _check_shape(input_shape) != (seq_len,):
        raise SpecError(f"seq_len {seq_len} disagrees with input_shape {input_shape!r}; give one of them")
    if input_dtype is not None and input_dtype not in ("int64", "int32"):
        raise SpecError(f"seq_len is for token ids (int64 or int32), not input_dtype {input_dtype!r}")
    return (seq_len,), input_dtype or "int64"


def _family_size_from_shape(family: str, params: Mapping[str, Any],
                            shape: tuple[int, ...] | None) -> Mapping[str, Any]:
    """A family is built for its input: an ``input_shape`` sets ``input_size`` (``(3, s, s)``) or
    ``input_features`` (``(f,)``, fc), and must agree with a value given for that parameter."""
    if shape is None or family not in families.FAMILIES:
        return params
    name, size = ("input_features", shape[0]) if family == "fc" else ("input_size", shape[-1])
    form = "(F,)" if family == "fc" else "(3, S, S)"
    if (family == "fc" and len(shape) != 1) or (family != "fc" and (
            len(shape) != 3 or shape[0] != 3 or shape[1] != shape[2])):
        raise SpecError(f"{family}: input_shape must be {form} for this family, got {shape!r}")
    given = {k.replace("-", "_"): v for k, v in params.items()}.get(name)
    if given is not None and str(given).strip() != str(size):
        raise SpecError(f"{family}: input_shape {shape!r} disagrees with {name}={given!r}; give one of them")
    return {**{k: v for k, v in params.items() if k.replace("-", "_") != name}, name: size}


def _check_shape(shape: object) -> tuple[int, ...]:
    if isinstance(shape, str):
        try:  # "3,224,224" or "3x224x224"; every part an integer ("3,,224" is a typo, not (3, 224))
            shape = tuple(int(s) for s in re.split(r"[,x]", shape.strip()))
        except ValueError:
            raise SpecError(f"input_shape must be integers like 3,224,224, got {shape!r}") from None
    if (not isinstance(shape, (tuple, list)) or not shape
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)):
        raise SpecError(f"input_shape must be positive integers like 3,224,224, got {shape!r}")
    return tuple(shape)


def _asdict(params: families.Params) -> dict[str, Any]:
    # dataclasses.fields, not __dataclass_fields__: the latter also lists the ClassVar ``family``
    return {f.name: getattr(params, f.name) for f in fields(params)}


def _fmt(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ",".join(str(v) for v in value) + "]"
    return str(value)


def _build_on_meta_or_cpu(make: Any, label: str) -> nn.Module:
    """Build on meta; a constructor that computes on tensors (regnet's) is built on CPU instead."""
    try:
        with torch.device("meta"):
            model = make()
    except (NotImplementedError, RuntimeError):
        try:
            model = make()
        except Exception as exc:
            raise ModelBuildError(f"building {label} failed: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
    except SpecError:
        raise
    except Exception as exc:
        raise ModelBuildError(f"building {label} failed: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
    if not isinstance(model, nn.Module):
        raise ModelBuildError(f"{label} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _load_factory(spec: str) -> Any:
    match = _FACTORY_RE.match(spec)
    assert match is not None  # checked in ArchSpec
    target, attr = match["target"], match["attr"]
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise SpecError(f"model file not found: {path}")
        module_name = f"_traincost_user_{abs(hash(str(path.resolve())))}"
        try:
            loader_spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(loader_spec)
            loader_spec.loader.exec_module(module)
        except Exception as exc:
            raise ModelBuildError(f"importing {path} failed: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
    else:
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as exc:
            raise SpecError(f"module not found: {target} ({exc})") from exc
        except Exception as exc:
            raise ModelBuildError(f"importing {target} failed: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        names = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        close = difflib.get_close_matches(attr, names, n=5)
        hint = f"; did you mean: {', '.join(close)}" if close else ""
        raise SpecError(f"{target} has no callable {attr!r}{hint}")
    return factory
