"""GPU catalog, links and cloud price table: datasheet specs, forgiving name resolution, on-demand prices.

The data are package files ``traincost/data/gpus.csv``, ``traincost/data/links.csv`` (GPU-to-GPU links and
networks for data-parallel training) and ``traincost/data/prices.csv`` (provenance,
conflict decisions and how to add rows: ``docs/catalog.md``). Loaded tables are immutable tuples cached
by ``functools.lru_cache``; the pandas frames are fresh copies on every call.

Units: TFLOP/s are dense (non-sparse) peaks, 1e12 FLOP/s with 2 FLOPs per multiply-add; memory is the
vendor's "GB", which for HBM/GDDR is GiB (``memory_bytes`` uses 2**30); bandwidth is decimal GB/s (1e9).
"""

from __future__ import annotations

import csv
import difflib
import functools
import os
import re
from dataclasses import asdict, dataclass, fields
from importlib import resources
from typing import TYPE_CHECKING

from traincost.errors import TraincostError, TraincostUsageError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DTYPES",
    "GPUS_PER_NODE",
    "LINK_KINDS",
    "PRICE_COLUMNS",
    "GPUSpec",
    "Link",
    "Price",
    "gpus_frame",
    "intra_node_link",
    "load_gpus",
    "load_links",
    "load_price_file",
    "load_prices",
    "newest_price_date",
    "prices_for",
    "prices_frame",
    "resolve_gpu",
    "resolve_link",
]

DTYPES: tuple[str, ...] = ("fp32", "tf32", "fp16", "bf16")

_DTYPE_ALIASES = {
    "fp32": "fp32", "float32": "fp32", "float": "fp32", "f32": "fp32",
    "tf32": "tf32", "tensorfloat32": "tf32",
    "fp16": "fp16", "float16": "fp16", "half": "fp16", "f16": "fp16",
    "bf16": "bf16", "bfloat16": "bf16",
}


@dataclass(frozen=True)
class GPUSpec:
    """Datasheet facts about one rentable GPU variant (one row of ``gpus.csv``).

    ``None`` means the value is unsupported or unpublished (``notes`` says which). Tensor rates are dense;
    for GPUs without tensor cores ``fp16_tflops`` is the non-tensor FP16 rate.
    """

    key: str
    name: str
    vendor: str
    architecture: str
    form_factor: str
    fp32_tflops: float
    tf32_tflops: float | None
    fp16_tflops: float | None
    bf16_tflops: float | None
    memory_gb: float
    mem_bandwidth_gb_s: float
    sm_count: int | None
    tdp_w: float | None
    launch_year: int | None
    interconnect: str
    nvlink_gb_s: float | None
    pcie_gen: int | None
    l2_cache_mb: float | None = None  # L2 cache in MB (binary: MiB, as NVIDIA/AMD quote it)
    boost_clock_mhz: float | None = None  # datasheet boost clock (the clock the peak TFLOP/s assume)
    aliases: tuple[str, ...] = ()
    source: str = ""
    notes: str = ""

    @property
    def memory_bytes(self) -> int:
        """Device memory in bytes (vendor GB of HBM/GDDR are GiB: ``memory_gb * 2**30``)."""
        return int(round(self.memory_gb * 2**30))

    @property
    def mem_bandwidth_bytes_per_s(self) -> float:
        """Peak DRAM bandwidth in bytes/s (``mem_bandwidth_gb_s * 1e9``)."""
        return self.mem_bandwidth_gb_s * 1e9

    @property
    def l2_bytes(self) -> int | None:
        """L2 cache in bytes (``l2_cache_mb * 2**20``: vendors' cache "MB" are MiB); ``None`` when unknown."""
        return None if self.l2_cache_mb is None else int(round(self.l2_cache_mb * 2**20))

    def peak_tflops(self, dtype: str) -> float | None:
        """Dense peak TFLOP/s for ``dtype`` (fp32, tf32, fp16, bf16; torch names such as
        ``torch.bfloat16`` accepted); ``None`` when unsupported or unpublished."""
        canon = _DTYPE_ALIASES.get(str(dtype).lower().removeprefix("torch."))
        if canon is None:
            raise TraincostUsageError(f"unknown dtype {dtype!r}; expected one of: {', '.join(DTYPES)}")
        return getattr(self, f"{canon}_tflops")


@dataclass(frozen=True)
class Price:
    """One on-demand cloud price: $/GPU-hour with its provider, source and ISO date (YYYY-MM-DD)."""

    provider: str
    instance_type: str  # "" where the source names no instance type
    gpu_key: str
    gpu_count: int
    usd_per_gpu_hour: float
    source: str
    source_date: str
    region: str


# ---------------------------------------------------------------- loading


def _read_rows(filename: str) -> list[dict[str, str]]:
    text = (resources.files("traincost") / "data" / filename).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


def _opt(value: str, kind: type, where: str) -> float | int | None:
    value = value.strip()
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        raise TraincostError(f"{where}: not a number: {value!r}") from None


def _req(value: str, kind: type, where: str) -> float | int:
    out = _opt(value, kind, where)
    if out is None:
        raise TraincostError(f"{where}: required value is empty")
    return out


_FLOAT_OPT = ("tf32_tflops", "fp16_tflops", "bf16_tflops", "tdp_w", "nvlink_gb_s", "l2_cache_mb",
              "boost_clock_mhz")
_INT_OPT = ("sm_count", "launch_year", "pcie_gen")
_FLOAT_REQ = ("fp32_tflops", "memory_gb", "mem_bandwidth_gb_s")


@functools.lru_cache(maxsize=1)
def load_gpus() -> tuple[GPUSpec, ...]:
    """All catalog GPUs, in file order (``traincost/data/gpus.csv``)."""
    specs = []
    for i, row in enumerate(_read_rows("gpus.csv"), start=2):
        where = f"gpus.csv line {i}"
        values: dict[str, object] = {}
        for f in fields(GPUSpec):
            raw = row.get(f.name)
            if raw is None:
                raise TraincostError(f"{where}: missing column {f.name!r}")
            if f.name in _FLOAT_REQ:
                values[f.name] = _req(raw, float, f"{where} {f.name}")
            elif f.name in _FLOAT_OPT:
                values[f.name] = _opt(raw, float, f"{where} {f.name}")
            elif f.name in _INT_OPT:
                values[f.name] = _opt(raw, int, f"{where} {f.name}")
            elif f.name == "aliases":
                values[f.name] = tuple(a.strip() for a in raw.split(";") if a.strip())
            else:
                values[f.name] = raw.strip()
        for name in ("key", "name", "source"):
            if not values[name]:
                raise TraincostError(f"{where}: {name} is empty")
        for name in (*_FLOAT_REQ, *_FLOAT_OPT, *_INT_OPT):
            value = values[name]
            if value is not None and not value > 0:  # type: ignore[operator]
                raise TraincostError(f"{where} {name}: must be > 0, got {value!r}")
        specs.append(GPUSpec(**values))  # type: ignore[arg-type]
    keys = [s.key for s in specs]
    if len(set(keys)) != len(keys):
        raise TraincostError("gpus.csv: duplicate keys")
    return tuple(specs)


def gpus_frame() -> pd.DataFrame:
    """The catalog as a new DataFrame, one row per GPU, columns = ``GPUSpec`` fields."""
    import pandas as pd

    return pd.DataFrame([asdict(s) for s in load_gpus()])


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


#: The columns a price file needs (``traincost/data/prices.csv`` and a user's ``--prices FILE``); the shipped
#: file also has ``instance_type``, ``price_usd_per_instance_hour``, ``region`` and ``notes`` (optional in a user's).
PRICE_COLUMNS: tuple[str, ...] = ("provider", "gpu_key", "gpu_count", "price_usd_per_gpu_hour", "price_type",
                                  "source", "source_date")


def _price_rows(text: str, where: str, error: type[TraincostError]) -> tuple[Price, ...]:
    """The on-demand prices of one price CSV (rows of another ``price_type``, spot or reserved, are skipped).

    ``where`` names the file in errors as ``where:LINE: column NAME: ...``; ``error`` is the exception type
    (a shipped file's bad row is a bug, a user's is a usage error). ``gpu_key`` may be any name
    :func:`resolve_gpu` accepts (``H100``, ``A100 80GB``): it is stored as the catalog key.
    """
    import io
    import math

    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [c for c in PRICE_COLUMNS if c not in header]
    if missing:
        raise error(f"{where}:1: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} (a price "
                    f"file has the columns of traincost/data/prices.csv: {', '.join(PRICE_COLUMNS)}, and "
                    "optionally instance_type, price_usd_per_instance_hour, region, notes)")
    prices = []
    for row in reader:
        line = reader.line_num

        def bad(column: str, why: str) -> TraincostError:
            return error(f"{where}:{line}: column {column}: {why}")

        def cell(column: str) -> str:
            value = row.get(column)
            return "" if value is None else str(value).strip()

        if None in row:
            raise error(f"{where}:{line}: more cells than the {len(header)} columns of the header")
        price_type = cell("price_type")
        if not price_type:
            raise bad("price_type", "empty (on-demand; spot or reserved rows are skipped)")
        if price_type != "on-demand":
            continue
        provider = cell("provider")
        if not provider:
            raise bad("provider", "empty")
        name = cell("gpu_key")
        try:
            gpu_key = resolve_gpu(name).key
        except TraincostUsageError as exc:
            raise bad("gpu_key", str(exc)) from None
        try:
            gpu_count = int(cell("gpu_count"))
        except ValueError:
            raise bad("gpu_count", f"not a whole number: {cell('gpu_count')!r}") from None
        if gpu_count < 1:
            raise bad("gpu_count", f"must be >= 1, got {gpu_count}")
        try:
            usd = float(cell("price_usd_per_gpu_hour"))
        except ValueError:
            raise bad("price_usd_per_gpu_hour", f"not a number: {cell('price_usd_per_gpu_hour')!r}") from None
        if not (math.isfinite(usd) and usd > 0):
            raise bad("price_usd_per_gpu_hour", f"must be a positive number of USD, got {usd:g}")
        source = cell("source")
        if not source:
            raise bad("source", "empty (say where the price comes from)")
        date = cell("source_date")
        if not _valid_date(date):
            raise bad("source_date", f"not an ISO date YYYY-MM-DD: {date!r}")
        prices.append(Price(provider=provider, instance_type=cell("instance_type"), gpu_key=gpu_key,
                            gpu_count=gpu_count, usd_per_gpu_hour=usd, source=source, source_date=date,
                            region=cell("region")))
    return tuple(prices)


def _valid_date(text: str) -> bool:
    import datetime

    if not _ISO_DATE.match(text):
        return False
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=1)
def load_prices() -> tuple[Price, ...]:
    """All on-demand prices (``traincost/data/prices.csv``), in file order, history included."""
    text = (resources.files("traincost") / "data" / "prices.csv").read_text(encoding="utf-8")
    prices = _price_rows(text, "prices.csv", TraincostError)
    known = {s.key for s in load_gpus()}
    for p in prices:  # the shipped file names catalog keys exactly (no forgiving resolution)
        if p.gpu_key not in known:
            raise TraincostError(f"prices.csv: gpu_key {p.gpu_key!r} is not in gpus.csv")
    return prices


def load_price_file(path: str | os.PathLike[str]) -> tuple[Price, ...]:
    """A user's own price table: a CSV with the columns of ``traincost/data/prices.csv`` (``PRICE_COLUMNS``
    required; ``gpu_key`` may be any GPU name :func:`resolve_gpu` accepts). Only ``on-demand`` rows are kept.

    Raises ``TraincostUsageError`` naming ``file:line`` and the column of the first bad row, or the file
    when it cannot be read or holds no on-demand price.
    """
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8-sig", newline="") as f:
            text = f.read()
    except OSError as exc:
        raise TraincostUsageError(f"prices file {name}: cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise TraincostUsageError(f"prices file {name}: not UTF-8 text (a CSV file is expected)") from None
    try:
        prices = _price_rows(text, name, TraincostUsageError)
    except csv.Error as exc:
        raise TraincostUsageError(f"{name}: not a readable CSV file: {exc}") from None
    if not prices:
        raise TraincostUsageError(f"{name}: no on-demand price (rows need price_type 'on-demand')")
    return prices


def newest_price_date(prices: tuple[Price, ...] | list[Price]) -> str | None:
    """The newest ``source_date`` of a price table (ISO), ``None`` for an empty one."""
    return max((p.source_date for p in prices), default=None)


def prices_frame() -> pd.DataFrame:
    """The price file as a new DataFrame (all columns, including notes)."""
    import pandas as pd

    return pd.DataFrame(_read_rows("prices.csv")).astype(
        {"gpu_count": int, "price_usd_per_gpu_hour": float}
    )


def prices_for(gpu: GPUSpec | str, prices: tuple[Price, ...] | list[Price] | None = None) -> tuple[Price, ...]:
    """Current on-demand prices for one GPU (a ``GPUSpec`` or any name ``resolve_gpu`` accepts), cheapest first.

    ``prices``: the table to read (default: the shipped one, :func:`load_prices`). A provider's **newest**
    price is used: of its rows for the GPU, those of the latest ``source_date``; of these the cheapest
    $/GPU-hour (ties: the fewest GPUs). Older rows are dated history. Every price carries its source and date.
    """
    key = (gpu if isinstance(gpu, GPUSpec) else resolve_gpu(gpu)).key
    best: dict[str, Price] = {}
    for p in load_prices() if prices is None else prices:
        if p.gpu_key != key:
            continue
        cur = best.get(p.provider)
        if cur is None or _price_rank(p) < _price_rank(cur):
            best[p.provider] = p
    return tuple(sorted(best.values(), key=lambda p: (p.usd_per_gpu_hour, p.provider)))


def _price_rank(p: Price) -> tuple[int, float, int]:
    return (-int(p.source_date.replace("-", "")), p.usd_per_gpu_hour, p.gpu_count)


# ---------------------------------------------------------------- name resolution
#
# A name is reduced to tokens: lower case, split on anything not a letter or digit; vendor and
# family words (nvidia, tesla, geforce, rtx, gtx, ...) and memory types / PCIe generations dropped;
# sxm2/sxm4/sxm5/hgx -> "sxm"; "80 GB", "80gb" and a bare "80" after the model -> "80gb"; "titan x" -> "titanx";
# "quadro" is kept but moved behind the model ("Quadro RTX 6000" -> 6000 + quadro).
# The first token is the model, the others are a form factor, a memory size or qualifiers (nvl, ti, ada,
# quadro, ...). An exact alias (key, name or listed alias, order-insensitive) wins; otherwise the model's
# rows are filtered by form factor and memory, and must carry the same qualifiers as the name. Several
# rows left: the default is SXM before OAM before PCIe, then the smallest memory (A100 -> A100 SXM4 40GB,
# H100 -> H100 SXM5 80GB, V100 -> V100 SXM2 16GB, GH200 -> GH200 96GB). A bare model number whose only
# rows are Quadro-branded resolves to them (RTX 8000 -> Quadro RTX 8000) unless another qualified row
# shares the number: "RTX 6000" (Quadro RTX 6000, RTX 6000 Ada, and RTX A6000) is ambiguous.

_NOISE = frozenset({"nvidia", "tesla", "geforce", "rtx", "gtx", "amd", "instinct", "gpu", "generation"})
_NOISE_RE = re.compile(r"^(gen\d+|hbm\d*e?|gddr\d+x?)$")
_FORMS = {"sxm": "sxm", "sxm2": "sxm", "sxm3": "sxm", "sxm4": "sxm", "sxm5": "sxm", "sxm6": "sxm",
          "hgx": "sxm", "pcie": "pcie", "oam": "oam"}
_FORM_ORDER = {"sxm": 0, "oam": 1, "pcie": 2}
_MEM = re.compile(r"^(\d+)gb$")
_SOFT = frozenset({"quadro"})  # a brand word a bare model number may omit


def _tokens(text: str) -> tuple[str, ...]:
    s = re.sub(r"pci[\s_-]*e(xpress)?", "pcie", text.lower())
    s = re.sub(r"\btitan[\s_-]*", "titan", s)
    out: list[str] = []
    brand: list[str] = []
    for t in re.findall(r"[a-z0-9]+", s):
        if t in ("gb", "gib") and out and out[-1].isdigit():
            out[-1] += "gb"
            continue
        t = re.sub(r"^(\d+)gib$", r"\1gb", t)
        if t.startswith("rtx") and len(t) > 3:
            t = t[3:]
        if t in _NOISE or _NOISE_RE.match(t):
            continue
        if t in _SOFT:
            brand.append(t)
            continue
        out.append(_FORMS.get(t, t))
    return tuple(out[:1] + [t + "gb" if t.isdigit() else t for t in out[1:]] + brand[:1])


def _form_class(form_factor: str) -> str | None:
    f = form_factor.lower()
    return next((c for c in ("sxm", "oam", "pcie") if c in f), None)


def _default_rank(spec: GPUSpec) -> tuple[int, float]:
    return (_FORM_ORDER.get(_form_class(spec.form_factor) or "", 3), spec.memory_gb)


def _qualifiers(toks: tuple[str, ...]) -> frozenset[str]:
    """The tokens after the model that are neither a form factor nor a memory size (nvl, ti, ada, ...)."""
    return frozenset(t for t in toks[1:] if t not in _FORM_ORDER and not _MEM.match(t))


@functools.lru_cache(maxsize=1)
def _index() -> tuple[dict[frozenset[str], str], dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """(exact token set -> key, model token -> keys in default order, label -> names for suggestions)."""
    specs = sorted(load_gpus(), key=_default_rank)
    exact: dict[frozenset[str], str] = {}
    models: dict[str, list[str]] = {}
    labels: dict[str, list[str]] = {}
    for s in specs:
        for text in (s.key, s.name, *s.aliases):
            toks = _tokens(text)
            if toks:
                exact.setdefault(frozenset(toks), s.key)
                labels.setdefault(" ".join(toks), []).append(s.name)
        model = _tokens(s.key)[0]
        models.setdefault(model, []).append(s.key)
        labels.setdefault(model, []).append(s.name)
    return (
        exact,
        {m: tuple(k) for m, k in models.items()},
        {lab: tuple(dict.fromkeys(n)) for lab, n in labels.items()},
    )


def resolve_gpu(name: str) -> GPUSpec:
    """The catalog GPU for a user-typed name, forgiving case, spacing, vendor prefixes and form factors.

    ``"H100"`` -> H100 SXM5 80GB, ``"a100"`` -> A100 SXM4 40GB, ``"tesla t4"`` -> T4, ``"3090"`` -> RTX 3090,
    ``"RTX 8000"`` -> Quadro RTX 8000, ``"1080 Ti"`` -> GTX 1080 Ti. Raises ``TraincostUsageError`` naming up
    to 5 close catalog GPUs when nothing matches, and naming the candidates when the name is ambiguous
    (``"RTX 6000"``: Quadro RTX 6000, RTX 6000 Ada or RTX A6000).
    """
    if not isinstance(name, str) or not name.strip():
        raise TraincostUsageError(f"unknown GPU {name!r}; expected a GPU name such as 'A100' or 'H100 SXM'")
    by_key = {s.key: s for s in load_gpus()}
    exact, models, labels = _index()
    toks = _tokens(name)
    if not toks:
        raise TraincostUsageError(f"unknown GPU {name!r}; expected a GPU name such as 'A100' or 'H100 SXM'")
    if frozenset(toks) in exact:
        return by_key[exact[frozenset(toks)]]
    model, rest = toks[0], toks[1:]
    forms = {t for t in rest if t in _FORM_ORDER}
    mems = {float(m.group(1)) for t in rest if (m := _MEM.match(t))}
    quals = _qualifiers(toks)
    if model in models and len(forms) <= 1 and len(mems) <= 1:
        cands = [
            key for key in models[model]
            if not (forms and _form_class(by_key[key].form_factor) not in forms)
            and not (mems and by_key[key].memory_gb not in mems)
        ]
        row_quals = {key: _qualifiers(_tokens(key)) for key in cands}
        match = [k for k in cands if row_quals[k] == quals]
        if not match and quals & _SOFT:  # "Quadro RTX A6000 48GB": the brand word is optional
            match = [k for k in cands if row_quals[k] == quals - _SOFT]
        if not match and not quals:  # a bare model number: a Quadro-only number is unambiguous
            soft = [k for k in cands if row_quals[k] and row_quals[k] <= _SOFT]
            others = [k for k in cands if row_quals[k] - _SOFT]
            if soft and others:
                raise TraincostUsageError(_ambiguous_message(name, model, models, by_key))
            match = soft
        if match:
            return by_key[match[0]]
    raise TraincostUsageError(_unknown_message(name, toks, model, models, labels, by_key))


def _ambiguous_message(name: str, model: str, models: dict[str, tuple[str, ...]],
                       by_key: dict[str, GPUSpec]) -> str:
    keys = [*models[model], *models.get(f"a{model}", ())]  # "RTX 6000": also the RTX A6000
    names = ", ".join(by_key[k].name for k in dict.fromkeys(keys))
    return f"ambiguous GPU {name!r}; did you mean one of: {names} (type the full name)"


def _unknown_message(
    name: str,
    toks: tuple[str, ...],
    model: str,
    models: dict[str, tuple[str, ...]],
    labels: dict[str, tuple[str, ...]],
    by_key: dict[str, GPUSpec],
) -> str:
    if model in models:
        close = [by_key[k].name for k in models[model]]
    else:
        close = []
        for probe in dict.fromkeys((" ".join(toks), model)):
            for lab in difflib.get_close_matches(probe, list(labels), n=10, cutoff=0.6):
                close.extend(labels[lab])
    close = list(dict.fromkeys(close))[:5]
    if close:
        return f"unknown GPU {name!r}; did you mean: {', '.join(close)}"
    return f"unknown GPU {name!r}; no close match; catalog models: {', '.join(sorted(models))}"


# ---------------------------------------------------------------- links (multi-GPU data parallel)


@dataclass(frozen=True)
class Link:
    """One GPU-to-GPU link or network (one row of ``links.csv``).

    ``gb_s``: datasheet bandwidth per GPU (NVLink, PCIe) or per NIC (network), one direction, decimal GB/s.
    ``achieved_factor``: the fraction of it NCCL's all-reduce reaches as bus bandwidth (nccl-tests
    ``busbw``), with ``achieved_source``. ``hop_latency_us``: NCCL's per-step ring latency for this kind of
    link (``src/graph/tuning.cc``, ``hwLat``, Ring / Simple protocol).
    """

    key: str
    name: str
    kind: str  # "nvlink" (any GPU fabric), "pcie" or "network"
    gb_s: float
    achieved_factor: float
    hop_latency_us: float
    aliases: tuple[str, ...] = ()
    source: str = ""
    source_date: str = ""
    achieved_source: str = ""
    notes: str = ""

    @property
    def busbw_bytes_per_s(self) -> float:
        """Achieved all-reduce bus bandwidth in bytes/s: ``gb_s * 1e9 * achieved_factor``."""
        return self.gb_s * 1e9 * self.achieved_factor


LINK_KINDS: tuple[str, ...] = ("nvlink", "pcie", "network")


@functools.lru_cache(maxsize=1)
def load_links() -> tuple[Link, ...]:
    """All links and networks, in file order (``traincost/data/links.csv``)."""
    links = []
    for i, row in enumerate(_read_rows("links.csv"), start=2):
        where = f"links.csv line {i}"
        link = Link(
            key=row["key"].strip(), name=row["name"].strip(), kind=row["kind"].strip(),
            gb_s=float(_req(row["gb_s"], float, f"{where} gb_s")),
            achieved_factor=float(_req(row["achieved_factor"], float, f"{where} achieved_factor")),
            hop_latency_us=float(_req(row["hop_latency_us"], float, f"{where} hop_latency_us")),
            aliases=tuple(a.strip() for a in row["aliases"].split(";") if a.strip()),
            source=row["source"].strip(), source_date=row["source_date"].strip(),
            achieved_source=row["achieved_source"].strip(), notes=row["notes"].strip())
        if link.kind not in LINK_KINDS:
            raise TraincostError(f"{where}: kind must be one of {', '.join(LINK_KINDS)}, got {link.kind!r}")
        if not (link.gb_s > 0 and 0 < link.achieved_factor <= 1 and link.hop_latency_us >= 0):
            raise TraincostError(f"{where}: gb_s > 0, 0 < achieved_factor <= 1 and hop_latency_us >= 0 needed")
        if not link.source or not _ISO_DATE.match(link.source_date) or not link.achieved_source:
            raise TraincostError(f"{where}: a link needs a source, an ISO source_date and an achieved_source")
        links.append(link)
    if len({link.key for link in links}) != len(links):
        raise TraincostError("links.csv: duplicate keys")
    return tuple(links)


def _link_token(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", text.lower())


def resolve_link(name: str, kind: str | None = None) -> Link:
    """The link for a key, name or alias (case, spaces and dashes ignored), e.g. ``"ib-hdr"``, ``"HDR"``,
    ``"100GbE"``, ``"nvlink4"``; ``kind`` restricts the kinds accepted. A usage error lists the choices."""
    links = [link for link in load_links() if kind is None or link.kind == kind]
    wanted = _link_token(name) if isinstance(name, str) else ""
    for link in links:
        if wanted and wanted in {_link_token(t) for t in (link.key, link.name, *link.aliases)}:
            return link
    what = f"{kind} link" if kind else "link"
    raise TraincostUsageError(f"unknown {what} {name!r}; choose one of: {', '.join(x.key for x in links)}")


#: GPUs one server holds (an HGX/DGX baseboard, or 8 PCIe cards): above it, ``nodes`` is needed.
GPUS_PER_NODE = 8


def intra_node_link(gpu: GPUSpec) -> Link:
    """The link a GPU's data-parallel all-reduce runs over inside one server: its NVLink generation (from
    ``interconnect``: ``"NVLink4 900 GB/s"`` -> ``nvlink4``) on SXM and superchip modules, AMD Infinity Fabric
    on an OAM MI300X, else PCIe of its ``pcie_gen`` (PCIe 4 when unknown). Optional 2-GPU NVLink bridges
    of PCIe cards are not assumed."""
    m = re.search(r"NVLink(\d)", gpu.interconnect)
    if m and gpu.nvlink_gb_s:
        return resolve_link(f"nvlink{m.group(1)}")
    if "infinity fabric" in gpu.interconnect.lower() and gpu.nvlink_gb_s:
        return resolve_link("infinity-fabric")
    return resolve_link(f"pcie{gpu.pcie_gen or 4}")
