"""Benchmark plans: which training-step configurations a sweep measures, in which order.

A plan is a list of :class:`BenchConfig` (an architecture, a step configuration and the name of the
sweep that produced it). Three kinds, all deterministic so that shards of one sweep agree:

- :func:`seed_plan`: the seed project's one-factor-at-a-time grids for its four families (ranges
  in ``shared/seed/notes.md``), around the seed's base configuration, scaled to the device kind
  (:data:`SEED_SCALES`: on ``cpu`` image sides and convolution widths are divided by 4);
- :func:`random_plan`: a scrambled Sobol sample of each family's joint space (log-scaled parameters,
  batch, precision, channels_last, optimizer), families interleaved, configurations the memory
  model says will not fit the target (or that exceed its FLOPs budget) rejected and replaced;
- :func:`load_plan_file`: explicit configurations from a YAML (or JSON) file.

:func:`config_key` identifies a measured configuration (spec JSON, batch, precision, layout,
optimizer, device) for ``--resume`` and ``merge``. :func:`models_plan` and
:func:`precursor_random_plan` are the lists of ``scripts/measure_steps.py`` (the precursor that
measured ``data/datasets/h200-families-2026-11-28.csv``), kept so that file stays reproducible.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traincost.errors import TraincostUsageError
from traincost.flopmodel.arch import ArchSpec, resolve
from traincost.flopmodel.families import min_input_size, parse_params
from traincost.flopmodel.walker import StepConfig

FAMILY_ORDER = ("fc", "vgg", "resnet", "inception")
DEVICE_KINDS = ("cpu", "cuda")


class PlanError(TraincostUsageError):
    """A plan that cannot be used: unknown name, missing or malformed file, a bad configuration."""


@dataclass(frozen=True)
class BenchConfig:
    """One configuration to measure. ``features``: the walk's numbers when the plan already walked it."""

    spec: ArchSpec
    step: StepConfig
    sweep: str = ""
    features: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def spec_json(self) -> str:
        return json.dumps(self.spec.to_dict())

    def key(self, device: str) -> str:
        return config_key(self.spec.to_dict(), self.step.batch_size, self.step.precision,
                          self.step.channels_last, self.step.optimizer, device)


def config_key(spec: Mapping[str, Any] | str, batch_size: int | str, precision: str,
               channels_last: bool | str, optimizer: str, device: str) -> str:
    """Stable identity of a measured configuration: 16 hex digits of a SHA-256 over the canonical
    spec JSON, batch size, precision, channels_last, optimizer and the device name.

    Accepts the CSV's string forms too (``spec`` as JSON text, ``"8"``, ``"True"``), so a key computed
    from a row equals the key computed from the configuration that produced it.
    """
    if isinstance(spec, str):
        spec = json.loads(spec)
    if isinstance(channels_last, str):
        channels_last = channels_last.strip().lower() in ("true", "1", "yes")
    payload = json.dumps({"spec": spec, "batch_size": int(batch_size), "precision": str(precision),
                          "channels_last": bool(channels_last), "optimizer": str(optimizer),
                          "device": str(device)}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def shard(configs: Sequence[BenchConfig], index: int, count: int) -> list[BenchConfig]:
    """Every ``count``-th configuration starting at ``index`` (0-based): shards 0..count-1 partition the plan."""
    if count < 1 or not 0 <= index < count:
        raise TraincostUsageError(f"shard must be i/n with 0 <= i < n, got {index}/{count}")
    return list(configs[index::count])


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/8"`` -> ``(2, 8)``; a usage error otherwise."""
    parts = str(text).strip().split("/")
    try:
        index, count = (int(p) for p in parts)
    except ValueError:
        raise TraincostUsageError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise TraincostUsageError(f"--shard i/n needs n >= 1 and 0 <= i < n, got {text!r}")
    return index, count


# ------------------------------------------------------------------------------------------ seed (OFAT)


@dataclass(frozen=True)
class SeedScale:
    """How the seed's grids shrink for a device kind: image sides and conv widths are divided."""

    image_div: int = 1
    width_div: int = 1


SEED_SCALES = {"cuda": SeedScale(1, 1), "cpu": SeedScale(4, 4)}

_IMAGE_SIDES = list(range(128, 1024 + 1, 64))          # 15 values
_CLASSES = [2 ** k for k in range(1, 11)]               # 2..1024, 10 values
_BATCHES = [2 ** k for k in range(3, 11)]               # 8..1024, 8 values
_DENSE_LAYERS = list(range(1, 11))                      # 1..10
_DENSE_WIDTHS = [100, 316, 1000, 3162]                  # logspace(2, 3.5, 4)


def _seed_grids(kind: str) -> dict[str, tuple[dict[str, Any], list[tuple[str, list[Any]]]]]:
    """Family -> (base parameters incl. ``batch_size``, [(factor, values)]) for a device kind."""
    s = SEED_SCALES[kind]
    side = [v // s.image_div for v in _IMAGE_SIDES]
    w = s.width_div

    def widths(lo: int, hi: int, step: int) -> list[int]:
        return [v // w for v in range(lo, hi + 1, step)]

    head = [("dense_layers", _DENSE_LAYERS), ("dense_width", _DENSE_WIDTHS), ("classes", _CLASSES),
            ("batch_size", _BATCHES)]
    return {
        "fc": ({"input_features": 128, "hidden_layers": 1, "hidden_width": 1000, "dropout": 0.5,
                "batchnorm": True, "classes": 2, "batch_size": 8},
               [("input_features", list(range(128, 1024 + 1, 64))), ("hidden_layers", list(range(1, 11))),
                ("classes", _CLASSES), ("batch_size", _BATCHES)]),
        "vgg": ({"blocks": 1, "convs_per_block": 2, "filters": 16 // w, "batchnorm": True, "dense_layers": 1,
                 "dense_width": 100, "input_size": side[0], "classes": 2, "batch_size": 8},
                [("input_size", side), ("convs_per_block", list(range(2, 11))), ("blocks", list(range(1, 8))),
                 ("filters", [2 ** k // w for k in range(4, 11)]), *head]),
        "resnet": ({"blocks": [3, 3, 3, 3], "block": "bottleneck", "width": 64 // w, "dense_layers": 1,
                    "dense_width": 100, "input_size": side[0], "classes": 2, "batch_size": 8},
                   [("blocks", [[n] * 4 for n in range(3, 8)]), ("input_size", side), *head]),
        "inception": ({"stages": 3, "modules_per_stage": 1, "f1": 64 // w, "f2_in": 128 // w,
                       "f2_out": 192 // w, "f3_in": 32 // w, "f3_out": 32 // w, "f4_out": 32 // w,
                       "dense_layers": 1, "dense_width": 100, "input_size": side[0], "classes": 2,
                       "batch_size": 8},
                      [("modules_per_stage", list(range(1, 6))), ("f1", widths(64, 320, 64)),
                       ("f2_in", widths(128, 384, 64)), ("f2_out", widths(192, 448, 64)),
                       ("f3_in", widths(32, 160, 32)), ("f3_out", widths(32, 160, 32)),
                       ("f4_out", widths(32, 160, 32)), ("input_size", side), *head]),
    }


def seed_plan(kind: str = "cuda", families: Sequence[str] = FAMILY_ORDER) -> list[BenchConfig]:
    """The seed project's one-factor-at-a-time sweep: for each family, its base configuration and every
    value of every factor with the other factors at the base (fp32, SGD, contiguous, as the seed).

    The seed's ``input_size`` factor (samples per epoch) is left out: it does not change a step. Where a
    scaled-down image is too small for a deep network (VGG with 7 blocks on CPU), the image side is the
    smallest the network takes.
    Configurations are unique (the base appears once, labelled ``seed:<family>:base``); the sweep name
    of the others is ``seed:<family>:<factor>``.
    """
    if kind not in DEVICE_KINDS:
        raise TraincostUsageError(f"device kind must be one of {', '.join(DEVICE_KINDS)}, got {kind!r}")
    grids = _seed_grids(kind)
    out: list[BenchConfig] = []
    for family in families:
        base, factors = grids[family]
        seen: set[str] = set()
        for factor, values in [("base", [None]), *factors]:
            for value in values:
                params = dict(base)
                if value is not None:
                    params[factor] = value
                batch = params.pop("batch_size")
                if "input_size" in params:  # a deep net on a scaled-down input: the smallest input it takes
                    params = _family_params(family, params)
                cfg = BenchConfig(resolve(family, params), StepConfig(batch), f"seed:{family}:{factor}")
                ident = cfg.key("")
                if ident not in seen:
                    seen.add(ident)
                    out.append(cfg)
    return out


# ------------------------------------------------------------------------------------------ random (Sobol)


@dataclass(frozen=True)
class Dim:
    """One Sobol dimension: maps ``u`` in [0, 1) to a value.

    ``kind``: ``lin`` (integers lo..hi by ``step``), ``log`` (integers log-uniform in [lo, hi]),
    ``pow2`` (powers of two lo..hi, uniform in the exponent), ``choice`` (one of ``values``),
    ``bool`` (True with probability ``p``).
    """

    name: str
    kind: str
    lo: float = 0
    hi: float = 0
    step: int = 1
    values: tuple[Any, ...] = ()
    p: float = 0.5

    def __call__(self, u: float) -> Any:
        u = min(max(u, 0.0), 1.0 - 1e-12)
        if self.kind == "lin":
            n = int((self.hi - self.lo) // self.step) + 1
            return int(self.lo + self.step * int(u * n))
        if self.kind == "log":
            return int(round(math.exp(math.log(self.lo) + u * (math.log(self.hi) - math.log(self.lo)))))
        if self.kind == "pow2":
            a, b = int(math.log2(self.lo)), int(math.log2(self.hi))
            return 2 ** (a + int(u * (b - a + 1)))
        if self.kind == "choice":
            return self.values[int(u * len(self.values))]
        if self.kind == "bool":
            return u < self.p
        raise ValueError(self.kind)


def _lin(name: str, lo: int, hi: int, step: int = 1) -> Dim:
    return Dim(name, "lin", lo, hi, step)


def _log(name: str, lo: int, hi: int) -> Dim:
    return Dim(name, "log", lo, hi)


def _pow2(name: str, lo: int, hi: int) -> Dim:
    return Dim(name, "pow2", lo, hi)


@dataclass(frozen=True)
class RandomSpace:
    """A family's sampled space on one device kind: architecture dimensions, the batch range, the
    precisions, and the FLOPs budget of one step (``None``: no budget)."""

    dims: tuple[Dim, ...]
    batch: Dim
    precisions: tuple[str, ...]
    optimizers: tuple[str, ...] = ("sgd", "adam", "adamw")


_CPU_PRECISIONS = ("fp32", "bf16")
_CUDA_PRECISIONS = ("fp32", "tf32", "bf16", "fp16")

#: Parameter ranges per device kind. GPU ranges follow the seed's (image sides 32-256, VGG filters up to
#: 256, ResNet widths 16-64, Inception widths around GoogLeNet's); CPU ranges are those divided so a step
#: takes milliseconds to about a second on two cores.
RANDOM_SPACES: dict[str, dict[str, RandomSpace]] = {
    "cpu": {
        "fc": RandomSpace((_log("input_features", 32, 4096), _lin("hidden_layers", 1, 10),
                           _log("hidden_width", 32, 4096), Dim("dropout", "choice", values=(0.0, 0.5)),
                           Dim("batchnorm", "bool"), _log("classes", 2, 1024)),
                          _pow2("batch", 8, 1024), _CPU_PRECISIONS),
        "vgg": RandomSpace((_lin("blocks", 1, 5), _lin("convs_per_block", 1, 4), _pow2("filters", 4, 64),
                            Dim("batchnorm", "bool", p=0.7), _lin("input_size", 32, 128, 16),
                            _lin("dense_layers", 0, 2), _log("dense_width", 32, 2048), _log("classes", 2, 1000)),
                           _pow2("batch", 2, 64), _CPU_PRECISIONS),
        "resnet": RandomSpace((_lin("stages", 2, 4), _lin("depth", 1, 4),
                               Dim("block", "choice", values=("basic", "bottleneck")), _pow2("width", 8, 32),
                               _lin("input_size", 32, 128, 16), _lin("dense_layers", 0, 1),
                               _log("dense_width", 32, 1024), _log("classes", 2, 1000)),
                              _pow2("batch", 2, 64), _CPU_PRECISIONS),
        "inception": RandomSpace((_lin("stages", 1, 3), _lin("modules_per_stage", 1, 3), _lin("f1", 8, 64, 8),
                                  _lin("f2_in", 8, 64, 8), _lin("f2_out", 16, 96, 16), _lin("f3_in", 4, 24, 4),
                                  _lin("f3_out", 8, 48, 8), _lin("f4_out", 8, 48, 8),
                                  _lin("input_size", 48, 128, 16), _lin("dense_layers", 0, 1),
                                  _log("dense_width", 32, 1024), _log("classes", 2, 1000)),
                                 _pow2("batch", 2, 32), _CPU_PRECISIONS),
    },
    "cuda": {
        "fc": RandomSpace((_log("input_features", 64, 8192), _lin("hidden_layers", 1, 10),
                           _log("hidden_width", 64, 8192), Dim("dropout", "choice", values=(0.0, 0.5)),
                           Dim("batchnorm", "bool"), _log("classes", 2, 1024)),
                          _pow2("batch", 8, 4096), _CUDA_PRECISIONS),
        "vgg": RandomSpace((_lin("blocks", 1, 6), _lin("convs_per_block", 1, 5), _pow2("filters", 8, 256),
                            Dim("batchnorm", "bool", p=0.7), _lin("input_size", 32, 256, 32),
                            _lin("dense_layers", 0, 3), _log("dense_width", 64, 4096), _log("classes", 2, 1000)),
                           _pow2("batch", 4, 256), _CUDA_PRECISIONS),
        "resnet": RandomSpace((_lin("stages", 2, 4), _lin("depth", 1, 7),
                               Dim("block", "choice", values=("basic", "bottleneck")), _pow2("width", 16, 64),
                               _lin("input_size", 32, 256, 32), _lin("dense_layers", 0, 2),
                               _log("dense_width", 64, 4096), _log("classes", 2, 1000)),
                              _pow2("batch", 4, 256), _CUDA_PRECISIONS),
        "inception": RandomSpace((_lin("stages", 1, 3), _lin("modules_per_stage", 1, 5), _lin("f1", 32, 320, 32),
                                  _lin("f2_in", 32, 384, 32), _lin("f2_out", 64, 448, 32), _lin("f3_in", 16, 160, 16),
                                  _lin("f3_out", 16, 160, 16), _lin("f4_out", 16, 160, 16),
                                  _lin("input_size", 64, 256, 32), _lin("dense_layers", 0, 2),
                                  _log("dense_width", 64, 4096), _log("classes", 2, 1000)),
                                 _pow2("batch", 4, 256), _CUDA_PRECISIONS),
    },
}

#: FLOPs budget of one training step in the random plan (2 x multiply-adds, forward + backward +
#: optimizer): CPU steps stay under about a second on two cores; GPUs have no budget but memory.
MAX_STEP_FLOPS = {"cpu": 6e10, "cuda": None}


def _family_params(family: str, values: dict[str, Any]) -> dict[str, Any]:
    params = dict(values)
    if family == "resnet" and "depth" in params:
        params["blocks"] = [params.pop("depth")] * params.pop("stages")
    if family in ("vgg", "resnet", "inception"):
        minimum = min_input_size(parse_params(family, {k: v for k, v in params.items() if k != "input_size"}))
        params["input_size"] = max(params["input_size"], minimum)
    return params


def _sobol_points(dims: int, seed: int) -> Iterator[list[float]]:
    """An endless scrambled Sobol sequence in [0, 1)^dims, drawn in blocks of powers of two."""
    from scipy.stats import qmc

    sampler = qmc.Sobol(d=dims, scramble=True, seed=seed)
    block = 64
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pts = sampler.random(block)
        yield from pts.tolist()


def random_plan(n: int, seed: int = 0, kind: str = "cuda", *,
                accept: Callable[[BenchConfig], bool] | None = None,
                families: Sequence[str] = FAMILY_ORDER, max_draws_per_config: int = 50) -> list[BenchConfig]:
    """``n`` configurations sampled space-fillingly, families interleaved (fc, vgg, resnet, inception, ...).

    Each family has its own scrambled Sobol sequence (seeded from ``seed`` and the family) over its
    architecture dimensions plus batch (log2), precision, optimizer and, for the convolutional
    families, channels_last, so interactions between all of them are covered. ``accept`` (e.g. "the
    walk's peak memory fits the device and the step is within the FLOPs budget") rejects a point; the
    family's next point replaces it, so the plan still has ``n`` configurations.
    """
    if kind not in RANDOM_SPACES:
        raise TraincostUsageError(f"device kind must be one of {', '.join(RANDOM_SPACES)}, got {kind!r}")
    if n < 0:
        raise TraincostUsageError(f"the random plan needs a non-negative count, got {n}")
    spaces = RANDOM_SPACES[kind]
    streams = {}
    for i, family in enumerate(families):
        space = spaces[family]
        extra = 3 if family == "fc" else 4  # batch, precision, optimizer (+ channels_last)
        streams[family] = _sobol_points(len(space.dims) + extra, seed * 1009 + 17 * i + 1)
    out: list[BenchConfig] = []
    draws = 0
    label = f"random:sobol:seed={seed}"
    while len(out) < n:
        family = families[len(out) % len(families)]
        space = spaces[family]
        while True:
            draws += 1
            if draws > max_draws_per_config * max(n, 1):
                raise TraincostUsageError(
                    f"the random plan rejected too many configurations ({draws} draws for {len(out)} "
                    "accepted): the device cannot run this space")
            u = next(streams[family])
            k = len(space.dims)
            values = {d.name: d(x) for d, x in zip(space.dims, u[:k])}
            batch = space.batch(u[k])
            precision = Dim("p", "choice", values=space.precisions)(u[k + 1])
            optimizer = Dim("o", "choice", values=space.optimizers)(u[k + 2])
            channels_last = family != "fc" and u[k + 3] < 0.5
            cfg = BenchConfig(resolve(family, _family_params(family, values)),
                              StepConfig(batch, precision, channels_last, optimizer), label)
            if accept is None or accept(cfg):
                out.append(cfg)
                break
    return out


# ------------------------------------------------------------------------------------------ plan files

_STEP_KEYS = ("batch_size", "precision", "channels_last", "optimizer")
_SPEC_KEYS = ("model", "params", "input_shape", "input_dtype", "schema_version")
_PLAN_KEYS = ("schema_version", "name", "defaults", "configs")


def load_plan_file(path: str | Path) -> list[BenchConfig]:
    """Explicit configurations from a YAML or JSON file::

        schema_version: 1                # optional
        name: my-sweep                   # optional: the rows' sweep column (default: the file name)
        defaults: {batch_size: 32, precision: fp32, channels_last: false, optimizer: sgd}  # optional
        configs:                         # or the file is just this list
          - {model: resnet, params: {blocks: [2, 2], width: 16}, input_shape: [3, 64, 64],
             batch_size: 8, precision: bf16, channels_last: true, optimizer: adamw}

    Every problem is one :class:`PlanError` naming the file, the entry and the bad value.
    """
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise PlanError(f"plan file not found: {where} (expected seed, random or a .yaml/.json plan file)")
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # json.JSONDecodeError, yaml.YAMLError
        first = (str(exc).splitlines() or [""])[0]
        raise PlanError(f"{where}: malformed plan file: {first}") from None
    name = path.stem
    defaults: Mapping[str, Any] = {}
    if isinstance(data, Mapping):
        unknown = sorted(set(data) - set(_PLAN_KEYS))
        if unknown:
            raise PlanError(f"{where}: unknown keys {unknown}; expected {', '.join(_PLAN_KEYS)}")
        if data.get("schema_version", 1) != 1:
            raise PlanError(f"{where}: schema_version {data.get('schema_version')!r} is not supported (expected 1)")
        name = str(data.get("name") or name)
        defaults = data.get("defaults") or {}
        if not isinstance(defaults, Mapping) or set(defaults) - set(_STEP_KEYS):
            raise PlanError(f"{where}: 'defaults' must be a mapping of {', '.join(_STEP_KEYS)}, got {defaults!r}")
        data = data.get("configs")
    if not isinstance(data, list) or not data:
        raise PlanError(f"{where}: a plan needs a non-empty list of configurations under 'configs'")
    out = []
    for i, entry in enumerate(data):
        at = f"{where}: configs[{i}]"
        if not isinstance(entry, Mapping):
            raise PlanError(f"{at}: expected a mapping with model and batch_size, got {entry!r}")
        unknown = sorted(set(entry) - set(_SPEC_KEYS) - set(_STEP_KEYS))
        if unknown:
            raise PlanError(f"{at}: unknown keys {unknown}; expected {', '.join(_SPEC_KEYS[:4] + _STEP_KEYS)}")
        merged = {**defaults, **entry}
        if "batch_size" not in merged:
            raise PlanError(f"{at}: batch_size is required (in the entry or in defaults)")
        try:
            spec = ArchSpec.from_dict({k: v for k, v in entry.items() if k in _SPEC_KEYS}, source=at)
            step = StepConfig(merged["batch_size"], merged.get("precision", "fp32"),
                              merged.get("channels_last", False), merged.get("optimizer", "sgd"))
        except TraincostUsageError as exc:
            message = str(exc)
            raise PlanError(message if message.startswith(where) else f"{at}: {message}") from None
        except Exception as exc:  # a bug in a factory's constructor and the like
            raise PlanError(f"{at}: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}") from None
        out.append(BenchConfig(spec, step, f"plan:{name}"))
    return out


def build_plan(plan: str, *, kind: str, limit: int | None = None, seed: int = 0,
               accept: Callable[[BenchConfig], bool] | None = None) -> list[BenchConfig]:
    """``seed``, ``random`` or a plan file -> configurations. ``limit`` truncates seed and file plans and is
    the number of configurations of the random plan (default 256)."""
    if limit is not None and limit < 1:
        raise TraincostUsageError(f"--limit must be a positive integer, got {limit}")
    if plan == "seed":
        configs = seed_plan(kind)
    elif plan == "random":
        return random_plan(limit if limit is not None else 256, seed, kind, accept=accept)
    elif Path(plan).suffix.lower() in (".yaml", ".yml", ".json") or Path(plan).is_file():
        configs = load_plan_file(plan)
    else:
        raise PlanError(f"unknown plan {plan!r}: expected seed, random or a .yaml/.json plan file")
    return configs[:limit] if limit is not None else configs


# ------------------------------------------------------------------------------------------ precursor lists

TV_MODELS = ["resnet50", "resnet18", "vgg16", "vit_b_16", "mobilenet_v3_large", "efficientnet_b0",
             "densenet121", "convnext_tiny", "inception_v3", "regnet_y_1_6gf"]
FAMILY_SPECS = [
    ("vgg", {"blocks": 4, "convs_per_block": 2, "filters": 32, "input_size": 128, "dense_layers": 1,
             "dense_width": 512, "classes": 100}),
    ("resnet", {"blocks": [2, 2, 2, 2], "block": "basic", "width": 64, "input_size": 128}),
    ("inception", {"stages": 3, "modules_per_stage": 2, "input_size": 128}),
    ("fc", {"input_features": 1024, "hidden_layers": 4, "hidden_width": 2048, "classes": 100}),
]


def models_plan(tiny: bool = False) -> list[BenchConfig]:
    """The precursor's validation list: torchvision models and four fixed family members x batches x
    (fp32 | bf16 + channels_last | bf16) x (sgd | adamw), most informative first; ``tiny``: a CPU check."""
    if tiny:
        specs = [resolve("resnet", {"blocks": [1, 1], "block": "basic", "width": 8, "input_size": 32,
                                    "classes": 10}),
                 resolve("fc", {"input_features": 64, "hidden_layers": 2, "hidden_width": 64})]
        return [BenchConfig(s, StepConfig(b, p, cl, o), "models:tiny") for s in specs for b in (4, 16)
                for p, cl in (("fp32", False), ("bf16", True)) for o in ("sgd", "adamw")]
    out: list[BenchConfig] = []
    specs = [resolve(name) for name in TV_MODELS] + [resolve(f, p) for f, p in FAMILY_SPECS]
    for batch in (64, 256, 16):
        for spec in specs:
            for precision, cl, opt in (("fp32", False, "sgd"), ("bf16", True, "adamw"), ("bf16", False, "sgd")):
                if spec.kind == "family" and spec.name == "fc":
                    cl = False
                out.append(BenchConfig(spec, StepConfig(batch, precision, cl, opt), "models"))
    return out


def _precursor_log_int(u: float, lo: int, hi: int) -> int:
    return int(round(math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))))


def _precursor_pow2(u: float, lo: int, hi: int) -> int:
    return (2 ** _precursor_log_int(u, int(math.log2(lo)), int(math.log2(hi))) if lo > 1
            else 2 ** int(u * math.log2(hi)))


def precursor_random_plan(n: int, seed: int) -> list[BenchConfig]:
    """The precursor's random plan, unchanged (it produced ``h200-families-2026-11-28.csv`` with seed 2026):
    one scrambled Sobol sequence, family ``i % 4``, bf16|fp32, adamw|sgd, no memory filter."""
    from scipy.stats import qmc

    with warnings.catch_warnings():  # n need not be a power of two here (it was not in the precursor)
        warnings.simplefilter("ignore")
        points = qmc.Sobol(d=12, scramble=True, seed=seed).random(n)
    li, p2 = _precursor_log_int, _precursor_pow2
    out: list[BenchConfig] = []
    for i, u in enumerate(points.tolist()):
        family = ("fc", "vgg", "resnet", "inception")[i % 4]
        precision = "bf16" if u[9] < 0.5 else "fp32"
        optimizer = "adamw" if u[10] < 0.5 else "sgd"
        channels_last = family != "fc" and u[11] < 0.5
        if family == "fc":
            params = {"input_features": li(u[0], 64, 4096), "hidden_layers": 1 + int(u[1] * 10),
                      "hidden_width": li(u[2], 64, 4096), "dropout": 0.5 if u[3] < 0.5 else 0.0,
                      "batchnorm": bool(u[4] < 0.5), "classes": li(u[5], 2, 1024)}
            batch = p2(u[6], 8, 1024)
        elif family == "vgg":
            params = {"blocks": 1 + int(u[0] * 5), "convs_per_block": 1 + int(u[1] * 4),
                      "filters": p2(u[2], 8, 128), "batchnorm": bool(u[3] < 0.7),
                      "input_size": 32 * (1 + int(u[4] * 7)), "dense_layers": int(u[5] * 3),
                      "dense_width": li(u[7], 64, 4096), "classes": li(u[8], 2, 1000)}
            params["input_size"] = max(params["input_size"], 2 ** params["blocks"])
            batch = p2(u[6], 4, 256)
        elif family == "resnet":
            stages = 2 + int(u[0] * 3)
            depth = 1 + int(u[1] * 6)
            params = {"blocks": [depth] * stages, "block": "bottleneck" if u[2] < 0.5 else "basic",
                      "width": p2(u[3], 16, 64), "input_size": 32 * (1 + int(u[4] * 7)),
                      "dense_layers": int(u[5] * 2), "classes": li(u[8], 2, 1000)}
            batch = p2(u[6], 4, 256)
        else:
            params = {"stages": 1 + int(u[0] * 3), "modules_per_stage": 1 + int(u[1] * 3),
                      "f1": 32 * (1 + int(u[2] * 6)), "f2_in": 32 * (1 + int(u[3] * 6)),
                      "f2_out": 32 * (2 + int(u[7] * 8)), "f3_in": 16 * (1 + int(u[5] * 6)),
                      "f3_out": 16 * (1 + int(u[8] * 6)), "f4_out": 16 * (1 + int(u[4] * 6)),
                      "input_size": 64 + 32 * int(u[5] * 6), "classes": li(u[8], 2, 1000)}
            batch = p2(u[6], 4, 128)
        out.append(BenchConfig(resolve(family, params), StepConfig(batch, precision, channels_last, optimizer),
                               f"random-sobol-seed{seed}"))
    return out
