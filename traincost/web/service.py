"""What the web app answers, without the web framework: query parameters in, JSON text or a :class:`WebError` out.

The query parameters are the CLI's options (``batch_size`` is ``--batch-size``), parsed by the CLI command's
own click types, then checked by the same :mod:`traincost.queries` calls in the same order: the same input
gives the object ``--json`` prints, and a bad value the line the CLI prints (without its ``Error:`` and
``(see ... --help)``). The web app adds what a server shared on a lab machine needs: only names, families,
their parameters and uploaded spec text (never a ``file.py:factory``, module path or file: no user code runs
and no file is read), bounded sizes, a time limit per answer, and a cache of answers.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import click

from traincost.errors import TraincostError, TraincostUsageError

#: Bounds of what one request may ask for: a shared server answers in seconds, not hours.
MAX_BATCH = 65536
MAX_GPUS = 65536
MAX_DEVICES = 64
MAX_SAMPLE_ELEMENTS = 2**24          # values in one sample's input (3 x 2048 x 2048 is 12.6 M)
MAX_FAMILY_INT = 65536               # any integer family parameter (widths, features, classes)
MAX_LAYERS = 512                     # the layer counts of a family added up (hidden layers, blocks, modules)
MAX_SPEC_BYTES = 64 * 1024
DEFAULT_TIME_LIMIT_S = 30.0
CACHE_ANSWERS = 256
CACHE_WALKS = 16                     # walks kept (each holds every op of a step): other runs, GPUs, providers
                                     # price a kept walk again
MAX_WAITING = 64                     # predictions running or queued; more is "busy" (HTTP 503)

_FAMILY_DEPTH = ("hidden_layers", "blocks", "convs_per_block", "stages", "modules_per_stage", "dense_layers")
#: Keyword arguments of a torchvision (or timm) constructor that would load weights or read a file.
_LOADING_KEYS = re.compile(r"weight|pretrain|checkpoint|file|path|url|cache|dir", re.IGNORECASE)
_STEP_OPTIONS = ("input_shape", "input_dtype", "batch_size", "precision", "channels_last", "optimizer")
_RUN_OPTIONS = ("epochs", "dataset_size", "provider", "nodes", "network")
#: The options of each endpoint, by the query parameter's name; ``spec`` (JSON text) and the family
#: parameters are added to both.
ENDPOINT_OPTIONS = {
    "predict": ("model", *_STEP_OPTIONS, "device", *_RUN_OPTIONS, "gpus"),
    "compare": ("model", *_STEP_OPTIONS, "gpus", *_RUN_OPTIONS, "num_gpus", "sort"),
}


class WebError(Exception):
    """An answer that is not a result: HTTP ``status``, one line ``message``, the query parameter at fault."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.message, "field": self.field}


def _usage(exc: TraincostError, field: str | None) -> WebError:
    return WebError(400 if isinstance(exc, TraincostUsageError) else 422, str(exc), field)


@dataclass(frozen=True)
class _Option:
    """One CLI option as a query parameter: its click type, the name the CLI's messages show, its default."""

    name: str
    param: click.Parameter

    @property
    def shown(self) -> str:
        return self.param.get_error_hint(None)   # "'--batch-size'", "'-n' / '--num-gpus'"

    def default(self) -> Any:
        if getattr(self.param, "is_flag", False):
            return False
        value = self.param.default
        return None if value is None or not isinstance(value, (int, float, str)) else value

    def convert(self, text: str) -> Any:
        try:
            return self.param.type.convert(text, self.param, None)
        except click.BadParameter as exc:
            raise WebError(400, f"Invalid value for {self.shown}: {exc.message}", self.name) from None


def _options(command: str) -> dict[str, _Option]:
    """Query parameter name -> option, from the CLI command itself (``--gpus`` of compare is ``gpus``)."""
    from traincost.cli.model import compare_command, predict_command

    cmd = {"predict": predict_command, "compare": compare_command}[command]
    out = {}
    for p in cmd.params:
        longs = [o for o in p.opts if o.startswith("--")]
        name = longs[0][2:].replace("-", "_") if longs else p.name
        out[name] = _Option(name, p)
    return out


def family_fields() -> dict[str, tuple[str, ...]]:
    """Family name -> its parameters' names, in the order of its dataclass."""
    from dataclasses import fields

    from traincost.flopmodel import families

    return {name: tuple(f.name for f in fields(family.params_cls)) for name, family in families.FAMILIES.items()}


@dataclass(frozen=True)
class Query:
    """A parsed request: the options' values by name (defaults filled in), the model spec, the cache keys of
    the answer."""

    command: str
    values: Mapping[str, Any]
    spec: Any
    key: str


def parse(command: str, query: Mapping[str, str]) -> Query:
    """Check and convert the query parameters of ``/api/<command>``, as the CLI would, then resolve the model
    (:class:`WebError` naming the parameter). Nothing is walked yet."""
    from traincost.queries import check_num_gpus, check_run_options, device_names

    options = _options(command)
    params = family_fields()
    family_names = sorted({n for names in params.values() for n in names})
    allowed = set(ENDPOINT_OPTIONS[command]) | set(family_names) | {"spec"}
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise WebError(400, f"unknown parameter {unknown[0]!r}; /api/{command} takes "
                            f"{', '.join(ENDPOINT_OPTIONS[command])}, spec and the family parameters", unknown[0])
    values: dict[str, Any] = {}
    for name in ENDPOINT_OPTIONS[command]:
        option = options[name]
        text = query.get(name)
        if text is None or text.strip() == "":
            if option.param.required:
                raise WebError(400, f"Missing option {option.shown}.", name)
            values[name] = option.default()
        else:
            values[name] = option.convert(text)
    if values["batch_size"] > MAX_BATCH:
        raise WebError(400, f"batch_size {values['batch_size']} is over this server's bound of {MAX_BATCH}",
                       "batch_size")
    if command == "compare":
        devices = _checked("gpus", device_names, values["gpus"])
        if len(devices) > MAX_DEVICES:
            raise WebError(400, f"{len(devices)} devices to compare is over this server's bound of {MAX_DEVICES}",
                           "gpus")
        for d in devices:
            check_device_name(d, "gpus")
        values["gpus"] = devices
        _checked("num_gpus", check_num_gpus, values["num_gpus"])
        count = "num_gpus"
    else:
        check_device_name(values["device"], "device")
        count = "gpus"
    if values[count] > MAX_GPUS:
        raise WebError(400, f"{count} {values[count]} is over this server's bound of {MAX_GPUS} GPUs", count)
    _checked("epochs", check_run_options, values["epochs"], None)
    _checked("dataset_size", check_run_options, None, values["dataset_size"])
    family_values = {n: query[n] for n in family_names if n in query and query[n].strip() != ""}
    spec = model_spec(values["model"], query.get("spec"), family_values, values["input_shape"],
                      values["input_dtype"])
    key = json.dumps({"command": command, "spec": spec.to_dict(), "input_shape": list(spec.sample_shape()),
                      **{k: v for k, v in values.items() if k not in ("model", "input_shape", "input_dtype")}},
                     sort_keys=True)
    return Query(command, values, spec, key)


def _checked(field: str, check: Callable[..., Any], *args: Any) -> Any:
    try:
        return check(*args)
    except TraincostError as exc:
        raise _usage(exc, field) from None


def model_spec(model: str | None, spec_text: str | None, family_values: Mapping[str, str],
               input_shape: str | None, input_dtype: str | None) -> Any:
    """The architecture to walk: a name with family parameters, or a spec's JSON text; never user code."""
    from traincost.queries import resolve_named

    if spec_text is not None and spec_text.strip():
        if model:
            raise WebError(400, "give either MODEL or --spec, not both", "model")
        if family_values:
            first = next(iter(family_values))
            raise WebError(400, f"--spec carries its own parameters; do not pass --{first.replace('_', '-')}", first)
        spec = spec_from_text(spec_text, "spec")
        if input_shape is not None or input_dtype is not None:
            spec = _checked("input_shape", spec.with_input, input_shape, input_dtype)
    else:
        if model:
            check_model_name(model)
        try:
            spec = resolve_named(model or None, family_values, input_shape, input_dtype)
        except TraincostError as exc:
            raise _usage(exc, _spec_field(str(exc), family_values, input_shape)) from None
    check_spec(spec)
    return spec


def _spec_field(message: str, family_values: Mapping[str, str], input_shape: str | None) -> str:
    """The parameter a model error is about: a family parameter it names, the input shape, else the model."""
    for name in family_values:
        if re.search(rf"\b{name}\b|--{name.replace('_', '-')}\b", message):
            return name
    if input_shape is not None and "input_shape" in message:
        return "input_shape"
    return "model"


def check_model_name(name: str) -> None:
    """A family, a torchvision name or ``timm:<name>``; a path, ``file.py:factory`` or ``module:factory`` is
    refused before anything is resolved (it would read a file or import and run code)."""
    text = name.strip()
    if text.startswith("timm:") and re.fullmatch(r"timm:[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)?", text):
        return
    if re.search(r"[:/\\]", text) or re.search(r"\.(py|json|ya?ml)$", text, re.IGNORECASE) or "." in text:
        raise WebError(400, f"model {text!r}: this server takes a family, a torchvision or timm name, or an uploaded "
                            "spec; never a file.py:factory, module:factory or file path (no user code runs here)",
                       "model")


def check_device_name(name: str, field: str) -> None:
    """A GPU name or ``cpu``; a device profile file is refused (this server reads no file it is named)."""
    text = name.strip()
    if re.search(r"[/\\]", text) or text.lower().endswith(".json"):
        raise WebError(400, f"device {text!r}: this server takes GPU names (and cpu), never a profile file", field)


def check_spec(spec: Any) -> None:
    """No user code, no weights, and sizes within this server's bounds (:class:`WebError` otherwise)."""
    if spec.kind == "factory" and not spec.name.startswith("timm:"):
        raise WebError(400, f"model {spec.name!r} is a user factory: this server never runs user code", "model")
    if spec.kind != "family":
        for k, v in spec.params.items():
            if _LOADING_KEYS.search(str(k)) or not (v is None or isinstance(v, (int, float))):
                raise WebError(400, f"{spec.name}: parameter {k}={v!r} is refused here: the parameters of a "
                                    "torchvision or timm model must be numbers or booleans and load no weights",
                               "spec")
    shape = spec.sample_shape()
    elements = math.prod(shape)
    if elements > MAX_SAMPLE_ELEMENTS:
        raise WebError(400, f"input shape {','.join(map(str, shape))} has {elements:,} values per sample, over this "
                            f"server's bound of {MAX_SAMPLE_ELEMENTS:,}", "input_shape")
    if spec.kind == "family":
        depth = 0
        for k, v in spec.params.items():
            ints = list(v) if isinstance(v, (list, tuple)) else [v]
            ints = [i for i in ints if isinstance(i, int) and not isinstance(i, bool)]
            if any(i > MAX_FAMILY_INT for i in ints):
                raise WebError(400, f"{spec.name}: {k}={max(ints)} is over this server's bound of {MAX_FAMILY_INT}",
                               k)
            if k in _FAMILY_DEPTH:
                depth += sum(ints)
        if depth > MAX_LAYERS:
            raise WebError(400, f"{spec.name}: {depth} layers and blocks in all is over this server's bound of "
                                f"{MAX_LAYERS}", next((k for k in _FAMILY_DEPTH if k in spec.params), "model"))


def spec_from_text(text: str, field: str = "spec") -> Any:
    """An uploaded (or linked) spec: YAML or JSON text of one description, read with ``yaml.safe_load``,
    checked like a name (no factory, no file) before :meth:`ArchSpec.from_dict` resolves it."""
    import yaml

    from traincost.flopmodel.arch import ArchSpec

    if len(text.encode("utf-8")) > MAX_SPEC_BYTES:
        raise WebError(400, f"the spec is over this server's bound of {MAX_SPEC_BYTES // 1024} KiB", field)
    try:
        data = yaml.safe_load(text)   # JSON is YAML
    except yaml.YAMLError as exc:
        raise WebError(400, f"uploaded spec: malformed spec file: {str(exc).splitlines()[0]}", field) from None
    try:
        if isinstance(data, Mapping) and isinstance(data.get("model"), str):
            check_model_name(data["model"])
        spec = _checked(field, ArchSpec.from_dict, data, "uploaded spec")
        check_spec(spec)
    except WebError as exc:
        raise WebError(exc.status, exc.message, field) from None
    return spec


#: One walk at a time in this process: the walk's dispatch mode and module hooks are process-wide state (two
#: walks at once in two threads would attribute each other's ops).
_WALK_LOCK = threading.Lock()


class Service:
    """Answers ``predict`` and ``compare`` queries under a time limit, with a bounded cache of answers.

    One prediction runs at a time in the process (:data:`_WALK_LOCK`): concurrent requests wait for it; a
    repeated question is answered from the cache, and the last walks are priced again for other GPUs and runs.
    A request that runs past ``time_limit_s`` gets an error; its work goes on in the background and is cached
    when done.
    """

    def __init__(self, time_limit_s: float = DEFAULT_TIME_LIMIT_S, cache_size: int = CACHE_ANSWERS,
                 workers: int = 4) -> None:
        if not (isinstance(time_limit_s, (int, float)) and math.isfinite(time_limit_s) and time_limit_s > 0):
            raise TraincostUsageError(f"the time limit must be a positive number of seconds, got {time_limit_s!r}")
        self.time_limit_s = float(time_limit_s)
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self._walks: OrderedDict[str, Any] = OrderedDict()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="traincost-web")
        self._waiting = 0
        self._count_lock = threading.Lock()

    def answer(self, command: str, query: Mapping[str, str]) -> str:
        """The JSON text of ``/api/<command>`` for these query parameters, or a :class:`WebError`."""
        parsed = parse(command, query)
        with self._cache_lock:
            if parsed.key in self._cache:
                self._cache.move_to_end(parsed.key)
                return self._cache[parsed.key]
        with self._count_lock:
            if self._waiting >= MAX_WAITING:
                raise WebError(503, f"this server is busy with {self._waiting} predictions; try again in a moment")
            self._waiting += 1
        future = self._pool.submit(self._compute, parsed)
        try:
            return future.result(timeout=self.time_limit_s)
        except FutureTimeout:
            if future.cancel():  # still queued: it never runs
                self._done()
            raise WebError(504, f"the prediction took longer than this server's time limit of "
                                f"{self.time_limit_s:g} s (a large model or batch); it finishes in the background: "
                                "ask again later, or try a smaller one") from None

    def _compute(self, query: Query) -> str:
        try:
            with _WALK_LOCK:
                text = json.dumps(compute(query, self._walker))
            with self._cache_lock:
                self._cache[query.key] = text
                self._cache.move_to_end(query.key)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            return text
        finally:
            self._done()

    def _walker(self, model: Any, **step: Any) -> Any:
        """:func:`traincost.api.walk_step` from the last :data:`CACHE_WALKS` walks (called under the walk lock)."""
        from traincost.api import walk_step

        key = json.dumps({"spec": model.to_dict(), "input_shape": list(model.sample_shape()), **step},
                         sort_keys=True)
        walked = self._walks.get(key)
        if walked is None:
            walked = walk_step(model, **step)
            self._walks[key] = walked
            while len(self._walks) > CACHE_WALKS:
                self._walks.popitem(last=False)
        self._walks.move_to_end(key)
        return walked

    def _done(self) -> None:
        with self._count_lock:
            self._waiting -= 1

    def close(self, wait: bool = False) -> None:
        """No new work; what is queued is dropped; ``wait``: until what runs has ended."""
        self._pool.shutdown(wait=wait, cancel_futures=True)


def compute(query: Query, walker: Callable[..., Any] | None = None) -> Any:
    """The object ``traincost predict --json`` (a dict) or ``compare --json`` (a list) prints; ``walker`` as
    :func:`traincost.api.predict` takes it (default: a new walk)."""
    from traincost.api import compare, predict, with_provider
    from traincost.queries import compare_rows, ranked_comparison

    v = query.values
    step = {"batch_size": v["batch_size"], "precision": v["precision"], "channels_last": v["channels_last"],
            "optimizer": v["optimizer"], "epochs": v["epochs"], "dataset_size": v["dataset_size"],
            "nodes": v["nodes"], "network": v["network"], "walker": walker}
    try:
        if query.command == "predict":
            estimate = predict(query.spec, device=v["device"], gpus=v["gpus"], **step)
            return with_provider(estimate, v["provider"]).to_dict()
        estimates = compare(query.spec, devices=v["gpus"], gpus=v["num_gpus"], **step)
        estimates, ranked, order = ranked_comparison(estimates, v["provider"], v["sort"])
        return compare_rows(estimates, ranked, order)
    except TraincostError as exc:
        raise _usage(exc, error_field(str(exc), query.command)) from None


def error_field(message: str, command: str) -> str | None:
    """The query parameter a library error is about, from the words of its message (for the page to show
    the message next to that field); ``None`` when it names none."""
    device = "device" if command == "predict" else "gpus"
    count = "gpus" if command == "predict" else "num_gpus"
    rules = (
        (r"^batch_size\b|\bbatch \d+ does not fit", "batch_size"),
        (r"provider", "provider"),
        (r"^nodes=\d+ needs a network|network", "network"),
        (r"not divisible by nodes|^nodes\b", "nodes"),
        (r"^gpus\b|needs a GPU device", count),
        (r"cannot run|^precision\b", "precision"),
        (r"^optimizer\b", "optimizer"),
        (r"^epochs\b", "epochs"),
        (r"^dataset_size\b", "dataset_size"),
        (r"GPU|device|profile", device),
    )
    for pattern, field in rules:
        if re.search(pattern, message):
            return field
    return None
