"""Benchmark sweeps: real training steps measured configuration by configuration into a CSV dataset.

:func:`run_sweep` measures a plan (:mod:`traincost.sweeps.plans`) on one device and appends one row
per configuration (:data:`FIELDS`, ``schema_version`` 1): the architecture (spec JSON), the step
configuration, the measured step time (median/min/max ms), the measured CUDA peak memory, the device
and software versions, the host load, the status, the walk's features and the analytic prediction at
measurement time. Nothing measured is lost:

- each row is written with one ``write`` and flushed (and fsynced) before the next configuration;
- ``resume=True`` keeps every finished row (a half-written last line from a kill is cut off) and
  skips every configuration whose :func:`~traincost.sweeps.plans.config_key` is already there;
- an OOM or an error in one configuration becomes its row's status and the sweep goes on;
- a time budget stops the sweep between configurations;
- one process writes a dataset at a time (:class:`DatasetLock`); ``resume`` refuses another plan's or device's;
- lines that are not a complete row are skipped and reported (``skipped``), never silently.

:func:`read_dataset` reads a dataset (and the precursor's files, whose columns are a subset) as rows
of :data:`FIELDS`; :func:`merge_datasets` combines shards, keeping the newest ok row per key.
"""

from __future__ import annotations

import csv
import gc
import io
import json
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from traincost.errors import TraincostError, TraincostUsageError
from traincost.sweeps.plans import BenchConfig, PlanError, config_key

try:
    import fcntl
except ImportError:  # not POSIX: DatasetLock falls back to O_EXCL
    fcntl = None  # type: ignore[assignment]

SCHEMA_VERSION = 1

#: The dataset columns, in file order. Names shared with the precursor's files mean the same thing.
FIELDS = [
    "schema_version", "config_key", "sweep", "family", "model", "spec",
    "batch_size", "precision", "channels_last", "optimizer", "status",
    "median_ms", "min_ms", "max_ms", "repeats", "warmup",
    "measured_peak_bytes", "predicted_peak_bytes",
    "params", "flops_forward", "flops_backward", "flops_optimizer", "bytes_read", "bytes_written", "ops",
    "analytic_ms", "profile_source", "profile_name",
    "device", "torch", "cuda", "cudnn", "traincost", "host_loadavg", "other_cpu_s_per_s", "timestamp",
]

#: The precursor's (``scripts/measure_steps.py`` before ``traincost bench``) columns: read and upgraded.
LEGACY_FIELDS = ["model", "spec", "batch_size", "precision", "channels_last", "optimizer", "status",
                 "median_ms", "min_ms", "max_ms", "repeats", "measured_peak_bytes", "predicted_peak_bytes",
                 "params", "flops_forward", "flops_backward", "flops_optimizer", "bytes_read", "bytes_written",
                 "ops", "device", "torch", "cuda", "cudnn", "timestamp"]
_LEGACY_HEADERS = (LEGACY_FIELDS, ["sweep", *LEGACY_FIELDS])

#: Statuses: ``ok``; ``oom``; ``error: <Type>: <message>``; ``skipped: <why>`` (not measured).
STATUS_OK = "ok"
STATUS_OOM = "oom"


class DatasetError(TraincostUsageError):
    """A dataset file that cannot be read or appended to (different columns, another schema)."""


class DatasetBusyError(TraincostError):
    """Another process is writing the dataset (it holds its lock): a failure, exit code 1."""


# ------------------------------------------------------------------------------------------ locking

_HELD: dict[str, int] = {}  # lock files this process holds, and how many times (DatasetLock is reentrant)


def _holder(lock_path: Path) -> tuple[str, bool]:  # who holds (or held) a lock, and whether it names anyone
    try:
        info = json.loads(lock_path.read_text(encoding="utf-8", errors="replace"))
        return f"pid {info['pid']} on {info['host']} since {info['since']}", True
    except (OSError, ValueError, TypeError, KeyError):
        return "another process", False


class DatasetLock:
    """One writer at a time (reentrant): ``<path>.lock`` (pid, host, start) with an ``flock`` the kernel drops
    when its process dies, so one left by ``kill -9`` is taken over (``note``); without ``fcntl``: ``O_EXCL``.
    A context manager; :class:`DatasetBusyError` while another process holds it; removed on release."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.note: str | None = None
        self._fd: int | None = None
        self._key, self._held = os.path.abspath(self.lock_path), False

    def __enter__(self) -> "DatasetLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def acquire(self) -> "DatasetLock":
        if not self._held:
            if self._key not in _HELD:
                self._fd = self._take()
            _HELD[self._key] = _HELD.get(self._key, 0) + 1
            self._held = True
        return self

    def _take(self) -> int:
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        for _ in range(20):
            fd = None
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | (0 if fcntl else os.O_EXCL), 0o644)
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except (FileExistsError, BlockingIOError):  # another process holds it
                if fd is not None:
                    os.close(fd)
                raise DatasetBusyError(f"{self.path} is being written by {_holder(self.lock_path)[0]} "
                                       f"(lock {self.lock_path})") from None
            except OSError as exc:
                raise DatasetError(f"cannot lock {self.path}: {self.lock_path}: {exc.strerror or exc}") from None
            try:  # its holder may have removed it between our open and flock: then take the new one
                same = os.path.samestat(os.fstat(fd), os.stat(self.lock_path))
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            holder, named = _holder(self.lock_path)
            if named:  # left by a process that died holding it
                self.note = f"took over the stale lock {self.lock_path} of {holder} (no longer running)"
            os.ftruncate(fd, 0)
            os.write(fd, (json.dumps(me) + "\n").encode())
            return fd
        raise DatasetBusyError(f"{self.path}: could not take the lock {self.lock_path} (it keeps changing hands)")

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        _HELD[self._key] -= 1
        if _HELD[self._key] == 0:
            del _HELD[self._key]
            self.lock_path.unlink(missing_ok=True)  # still holding it: a waiting process sees it replaced
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


# ------------------------------------------------------------------------------------------ reading


def _header_problem(header: list[str], where: str) -> str | None:
    if header == FIELDS or header in _LEGACY_HEADERS:
        return None
    missing = [c for c in FIELDS if c not in header]
    extra = [c for c in header if c not in FIELDS]
    parts = []
    if missing:
        parts.append(f"missing {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
    if extra:
        parts.append(f"unexpected {', '.join(extra[:8])}{' ...' if len(extra) > 8 else ''}")
    if not parts:
        parts.append("columns in another order")
    return (f"{where}: not a traincost dataset of schema {SCHEMA_VERSION} "
            f"(columns differ: {'; '.join(parts)})")


def upgrade_row(row: dict[str, str]) -> dict[str, str]:
    """A row of any readable header as a row of :data:`FIELDS` (new columns computed or left empty)."""
    out = {f: row.get(f, "") or "" for f in FIELDS}
    if not out["schema_version"]:
        out["schema_version"] = str(SCHEMA_VERSION)
    if not out["family"] and out["spec"]:
        try:
            out["family"] = str(json.loads(out["spec"]).get("model", ""))
        except (json.JSONDecodeError, AttributeError):
            pass
    if not out["config_key"]:
        out["config_key"] = row_key(out)
    return out


def row_key(row: dict[str, str]) -> str:
    """The configuration key of a CSV row (see :func:`~traincost.sweeps.plans.config_key`)."""
    try:
        return config_key(row["spec"], row["batch_size"], row["precision"], row["channels_last"],
                          row["optimizer"], row["device"])
    except (KeyError, ValueError, TypeError, json.JSONDecodeError):
        return ""


class DatasetRows(list):
    """A dataset's rows (dicts of :data:`FIELDS`); ``skipped``: numbers of lines not a complete row."""

    def __init__(self, rows: Sequence[dict[str, str]] = (), *, path: str | Path = "", skipped: Sequence[int] = ()) -> None:
        super().__init__(rows)
        self.path = str(path)
        self.skipped = list(skipped)


def _parse_line(line: str) -> list[str] | None:
    try:
        return next(csv.reader([line]), [])
    except csv.Error:
        return None


def read_dataset(path: str | Path) -> DatasetRows:
    """Every complete row of a dataset file as a dict of :data:`FIELDS` (precursor files upgraded).

    Raises :class:`DatasetError` for a missing file, a file with other columns or another schema version.
    A line that is not a complete row (a last line cut off by a kill, a damaged line) is left out and its
    number listed in the result's ``skipped``; blank lines are ignored. A row is one line (traincost never
    writes a newline in a field), so a damaged line with a stray quote swallows none of the rows after it.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"dataset not found: {path}")
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    end = len(lines) - 1  # lines[end]: "" after a final newline, else a line a kill left unfinished
    header = _parse_line(lines[0]) if text.strip() else None
    if not header:
        raise DatasetError(f"{path}: empty file, not a traincost dataset")
    problem = _header_problem(header, str(path))
    if problem:
        raise DatasetError(problem)
    rows: list[dict[str, str]] = []
    skipped: list[int] = []
    for i in range(1, end):
        values = _parse_line(lines[i]) if lines[i].strip() else []
        if values and len(values) == len(header):
            row = upgrade_row(dict(zip(header, values)))
            version = row["schema_version"]
            if version == str(SCHEMA_VERSION):
                rows.append(row)
                continue
            if version.strip().isdigit():
                raise DatasetError(f"{path}: schema_version {version!r} is not supported "
                                   f"(this traincost reads {SCHEMA_VERSION})")
        if values != []:  # not a blank line: damaged (or garbage with the right number of commas)
            skipped.append(i + 1)
    if end >= 1 and lines[end].strip():
        skipped.append(end + 1)
    return DatasetRows(rows, path=path, skipped=skipped)


def _timestamp_order(row: dict[str, str]) -> float:
    try:
        ts = datetime.fromisoformat(row.get("timestamp", "").replace("Z", "+00:00"))
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=timezone.utc)
        return ts.timestamp()
    except ValueError:
        return float("-inf")


@dataclass(frozen=True)
class MergeResult:
    rows: list[dict[str, str]]
    read: int
    duplicates: int
    files: int
    skipped: dict[str, list[int]] = field(default_factory=dict)  # per file: lines not a complete row


def merge_datasets(paths: Sequence[str | Path]) -> MergeResult:
    """Rows of all ``paths`` with one row per configuration key: the newest ``ok`` row, else the newest row.

    Order: by first appearance of the key. Every file is checked before anything is merged.
    """
    if not paths:
        raise TraincostUsageError("merge needs at least one dataset file")
    chosen: dict[str, dict[str, str]] = {}
    read = 0
    tables = [read_dataset(p) for p in paths]
    skipped = {str(p): rows.skipped for p, rows in zip(paths, tables) if rows.skipped}
    for rows in tables:
        for row in rows:
            read += 1
            key = row["config_key"] or f"unkeyed-{read}"
            old = chosen.get(key)
            if old is None or _better(row, old):
                chosen[key] = row
    return MergeResult(list(chosen.values()), read, read - len(chosen), len(paths), skipped)


def _better(new: dict[str, str], old: dict[str, str]) -> bool:
    new_ok, old_ok = new["status"] == STATUS_OK, old["status"] == STATUS_OK
    if new_ok != old_ok:
        return new_ok
    return _timestamp_order(new) >= _timestamp_order(old)


def write_dataset(rows: Sequence[dict[str, str]], path: str | Path) -> Path:
    """Write rows of :data:`FIELDS` to ``path`` atomically (a temporary file renamed over it)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------------------------------ the sweep


@dataclass
class SweepEvent:
    """What the progress callback gets after each configuration (and once before the first)."""

    done: int
    total: int
    elapsed_s: float
    row: dict[str, Any] | None = None


@dataclass
class SweepSummary:
    """The outcome of :func:`run_sweep`. ``statuses`` counts the rows written now by status class;
    ``skipped_lines``: the resumed file's lines that are not a complete row; ``lock_note``: see DatasetLock."""

    out: str
    device: str
    planned: int
    already_done: int
    written: int
    statuses: dict[str, int] = field(default_factory=dict)
    stopped_by_budget: bool = False
    elapsed_s: float = 0.0
    analytic_profile: str | None = None
    skipped_lines: list[int] = field(default_factory=list)
    lock_note: str | None = None

    @property
    def remaining(self) -> int:
        return self.planned - self.already_done - self.written

    def to_dict(self) -> dict[str, Any]:
        return {"out": self.out, "device": self.device, "planned": self.planned,
                "already_done": self.already_done, "written": self.written, "remaining": self.remaining,
                "statuses": self.statuses, "stopped_by_budget": self.stopped_by_budget,
                "elapsed_s": round(self.elapsed_s, 1), "analytic_profile": self.analytic_profile,
                "skipped_lines": self.skipped_lines}


@dataclass(frozen=True)
class Settings:
    """Timing settings of a sweep on one device kind.

    ``warmup``/``repeats``: steps per configuration; ``min_seconds``: more timed steps until they took
    this long in all (so a short step's median rests on many steps); ``max_seconds``: timed steps stop
    after this long (at least 3). ``quiet_wait_s`` (CPU): before each configuration, wait for other processes to use
    less than ``quiet_cores`` CPU cores; a configuration they disturbed anyway (more than
    ``quiet_cores`` busy during the timing) is measured again, up to ``attempts`` times in all, and
    the least disturbed attempt is kept; the waits of one configuration total at most ``quiet_wait_s``. Two threads sharing two cores with another busy process can be
    10-100x slower, so on a shared machine this matters more than the number of repeats.
    """

    warmup: int
    repeats: int
    max_seconds: float
    quiet_wait_s: float = 0.0
    min_seconds: float = 0.0
    quiet_cores: float = 0.3
    attempts: int = 3


DEFAULT_SETTINGS = {"cpu": Settings(warmup=3, repeats=5, max_seconds=6.0, quiet_wait_s=120.0, min_seconds=0.5),
                    "cuda": Settings(warmup=3, repeats=10, max_seconds=10.0)}


def usable_memory_bytes(device: torch.device, *, available: bool = True) -> int:
    """Memory one configuration may use: 90% of the GPU's; on CPU half of the RAM available now
    (``available=False``: half of the total RAM, a number that does not change between runs)."""
    if device.type == "cuda":
        return int(0.9 * torch.cuda.get_device_properties(device).total_memory)
    key = "MemAvailable:" if available else "MemTotal:"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) * 1024 // 2
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES" if available else "SC_PHYS_PAGES")
        return os.sysconf("SC_PAGE_SIZE") * pages // 2
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def walk_features(config: BenchConfig) -> dict[str, int]:
    """The walk's numbers for a configuration (params, FLOPs by phase, bytes, ops, predicted peak)."""
    from traincost.flopmodel.count import count

    s = config.step
    counted = count(config.spec, batch_size=s.batch_size, precision=s.precision, channels_last=s.channels_last,
                    optimizer=s.optimizer)
    flops = counted.flops
    return {"params": counted.params, "flops_forward": flops["forward"], "flops_backward": flops["backward"],
            "flops_optimizer": flops["optimizer"], "bytes_read": counted.bytes["read"],
            "bytes_written": counted.bytes["written"], "ops": counted.ops,
            "predicted_peak_bytes": counted.peak_memory_bytes}


def step_flops(features: dict[str, int]) -> int:
    return features["flops_forward"] + features["flops_backward"] + features["flops_optimizer"]


def analytic_profile(device: torch.device, profile: str | None = None) -> Any | None:
    """The profile the analytic prediction column uses: ``profile`` (a .json path) if given, else the
    shipped CPU profile (cpu) or ``profile_for(<GPU name>)`` (calibrated, else datasheet). ``None`` when
    there is none (the column stays empty)."""
    from traincost.hardware.profile import load_profile
    from traincost.hardware.store import profile_for

    if profile is not None:
        return load_profile(profile)
    try:
        return profile_for("cpu" if device.type == "cpu" else torch.cuda.get_device_name(device))
    except Exception:
        return None


def analytic_ms(config: BenchConfig, profile: Any | None) -> float | None:
    """``traincost.predict``'s iteration time for ``config`` on ``profile``; ``None`` if unavailable."""
    if profile is None:
        return None
    try:
        from traincost.api import predict
    except Exception:
        return None
    s = config.step
    try:
        est = predict(config.spec, device=profile, batch_size=s.batch_size, precision=s.precision,
                      channels_last=s.channels_last, optimizer=s.optimizer)
        return float(est.iteration_ms)
    except Exception:
        return None


def _host_busy_s() -> float | None:
    """Busy CPU seconds of the whole host since boot (Linux ``/proc/stat``), or None elsewhere."""
    try:
        values = Path("/proc/stat").read_text().splitlines()[0].split()[1:9]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in values)
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _status_of(exc: BaseException) -> str:
    text = (str(exc).splitlines() or [""])[0]
    if isinstance(exc, torch.OutOfMemoryError) or (isinstance(exc, RuntimeError) and (
            "out of memory" in text.lower() or "can't allocate memory" in text.lower())):
        return STATUS_OOM
    return f"error: {type(exc).__name__}: {text}"[:200]


def status_class(status: str) -> str:
    """``ok``, ``oom``, ``error`` or ``skipped``."""
    return status.split(":", 1)[0].strip() or "error"


def _device_name(device: torch.device) -> str:
    from traincost.calibrate.host import device_name

    return device_name(device)


def _versions() -> dict[str, str]:
    try:
        from importlib.metadata import version

        tc = version("traincost")
    except Exception:
        tc = ""
    cudnn = ""
    try:
        cudnn = str(torch.backends.cudnn.version() or "") if torch.version.cuda else ""
    except Exception:
        pass
    return {"torch": torch.__version__, "cuda": torch.version.cuda or "", "cudnn": cudnn, "traincost": tc}


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def plan_of_sweep(sweep: str) -> str:
    """The plan of a ``sweep`` value: ``seed`` (``seed:<family>:<factor>``), else itself (``plan:<name>``...)."""
    return "seed" if sweep.startswith("seed:") else sweep


def check_resume(path: str | Path, rows: Sequence[dict[str, str]], configs: Sequence[BenchConfig],
                 device: torch.device | str) -> None:
    """Raise :class:`DatasetError` naming the difference when ``rows`` (those of ``path``) are of another
    plan than ``configs`` or another ``device`` (a name as in the ``device`` column, or a torch device)."""
    name = device if isinstance(device, str) else _device_name(device)
    plans = {plan_of_sweep(c.sweep) for c in configs if c.sweep}
    old_plans = {plan_of_sweep(r["sweep"]) for r in rows if r.get("sweep")}
    old_devices = {r["device"] for r in rows if r.get("device")}
    problems = []
    if plans and old_plans - plans:
        problems.append(f"its rows are from plan {', '.join(map(repr, sorted(old_plans)))}, "
                        f"this run is plan {', '.join(map(repr, sorted(plans)))}")
    if old_devices - {name}:
        problems.append(f"its rows were measured on {', '.join(map(repr, sorted(old_devices)))}, "
                        f"this run measures on {name!r}")
    if problems:
        raise DatasetError(f"cannot resume {path}: {'; '.join(problems)}; write to a new file "
                           "(traincost merge combines them)")


class _Writer:
    """Appends rows to the dataset: one ``write`` per row, flushed and fsynced."""

    def __init__(self, path: Path, resume: bool, configs: Sequence[BenchConfig] = (), device: str = "") -> None:
        self.path = path
        self.done: set[str] = set()
        self.skipped: list[int] = []
        self.lock = DatasetLock(path).acquire()
        try:
            self._open(resume, configs, device)
        except BaseException:
            self.lock.release()
            raise

    def _open(self, resume: bool, configs: Sequence[BenchConfig], device: str) -> None:
        path = self.path
        exists = path.exists() and path.stat().st_size > 0
        if exists and not resume:
            raise TraincostUsageError(f"{path} already exists: pass --resume to continue it, "
                                      "or choose another --out")
        if exists:
            cut = self._repair()
            rows = read_dataset(path)
            check_resume(path, rows, configs, device)
            self.done = {r["config_key"] for r in rows}
            self.skipped = sorted(rows.skipped + ([cut] if cut else []))
        self.fh = path.open("a", newline="", encoding="utf-8")
        if not exists:
            self._write_line(FIELDS)

    def _repair(self) -> int | None:
        """Check the header and cut off a last line a kill left half-written (its line number, if any)."""
        with self.path.open("rb") as fh:
            head = fh.readline().decode("utf-8", errors="replace")
        header = next(csv.reader([head]), [])
        if header != FIELDS:
            problem = _header_problem(header, str(self.path)) or f"{self.path}: written by the precursor script"
            raise DatasetError(f"cannot resume: {problem}; write to a new file (traincost merge combines them)")
        data = self.path.read_bytes()
        if not data.endswith(b"\n"):
            with self.path.open("r+b") as fh:
                fh.truncate(data.rfind(b"\n") + 1)
            return data.count(b"\n") + 1
        return None

    def _write_line(self, values: Sequence[str]) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(values)
        self.fh.write(buf.getvalue())
        self.fh.flush()
        try:
            os.fsync(self.fh.fileno())
        except OSError:
            pass

    def write(self, row: dict[str, Any]) -> None:
        self._write_line([_fmt(row.get(f)) for f in FIELDS])
        self.done.add(row["config_key"])

    def close(self) -> None:
        try:
            self.fh.close()
        finally:
            self.lock.release()


def run_sweep(configs: Sequence[BenchConfig], out: str | Path, device: torch.device | str = "cpu", *,
              resume: bool = False, budget_s: float | None = None, settings: Settings | None = None,
              profile: str | None = None, memory_bytes: int | None = None,
              progress: Callable[[SweepEvent], None] | None = None,
              measure: Callable[..., Any] | None = None) -> SweepSummary:
    """Measure ``configs`` on ``device`` and append one row each to ``out`` (see the module docstring).

    ``budget_s``: stop before starting a configuration once this many seconds have passed.
    ``memory_bytes``: configurations whose walk peak is larger are recorded as ``skipped`` without
    running (default :func:`usable_memory_bytes`). ``profile``: a profile .json for the analytic column.
    ``measure``: the timing function (default :func:`traincost.sweeps.steps.measure_step`).
    A ``KeyboardInterrupt`` (Ctrl-C, or SIGTERM mapped to it by the CLI) abandons the configuration in
    flight; every finished row is already on disk.
    ``out`` is locked (:class:`DatasetLock`) for the whole sweep: :class:`DatasetBusyError` if another process
    writes it. ``resume=True``: :class:`DatasetError` when ``out`` is of another plan or device (:func:`check_resume`).
    """
    from traincost.sweeps.steps import build_on, measure_step

    measure = measure or measure_step
    dev = torch.device(device) if isinstance(device, str) else device
    settings = settings or DEFAULT_SETTINGS["cuda" if dev.type == "cuda" else "cpu"]
    name = _device_name(dev)
    limit_bytes = memory_bytes if memory_bytes is not None else usable_memory_bytes(dev)
    prof = analytic_profile(dev, profile)
    versions = _versions()
    out = Path(out)
    writer = _Writer(out, resume, configs, name)  # holds the lock until closed
    keyed = [(c.key(name), c) for c in configs]
    todo = [(k, c) for k, c in keyed if k not in writer.done]
    already = len(keyed) - len(todo)
    summary = SweepSummary(str(out), name, len(keyed), already, 0,
                           analytic_profile=f"{prof.name} ({prof.source})" if prof is not None else None,
                           skipped_lines=writer.skipped, lock_note=writer.lock.note)
    start = time.monotonic()
    statuses: Counter[str] = Counter()
    if progress:
        progress(SweepEvent(0, len(todo), 0.0))
    try:
        for done, (key, cfg) in enumerate(todo):
            elapsed = time.monotonic() - start
            if budget_s is not None and elapsed >= budget_s:
                summary.stopped_by_budget = True
                break
            if key in writer.done:  # the same configuration twice in one plan
                continue
            row = _measure_one(cfg, key, dev, name, versions, settings, limit_bytes, prof, build_on, measure,
                               None if budget_s is None else budget_s - elapsed)
            writer.write(row)
            summary.written += 1
            statuses[status_class(row["status"])] += 1
            if progress:
                progress(SweepEvent(done + 1, len(todo), time.monotonic() - start, row))
    finally:
        writer.close()
        summary.statuses = dict(statuses)
        summary.elapsed_s = time.monotonic() - start
    return summary


def _measure_one(cfg: BenchConfig, key: str, dev: torch.device, name: str, versions: dict[str, str],
                 settings: Settings, limit_bytes: int, prof: Any, build_on: Any, measure: Any,
                 budget_left_s: float | None) -> dict[str, Any]:
    s = cfg.step
    row: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "config_key": key, "sweep": cfg.sweep,
        "family": cfg.spec.name if cfg.spec.kind == "family" else cfg.spec.kind, "model": cfg.spec.label,
        "spec": cfg.spec_json, "batch_size": s.batch_size, "precision": s.precision,
        "channels_last": s.channels_last, "optimizer": s.optimizer, "device": name, **versions,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        features = dict(cfg.features) if cfg.features else walk_features(cfg)
    except Exception as exc:
        row["status"] = f"error: walk: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"[:200]
        return row
    row.update(features)
    if features["predicted_peak_bytes"] > limit_bytes:
        row["status"] = (f"skipped: predicted peak {features['predicted_peak_bytes'] / 2**30:.2f} GiB over "
                         f"the {limit_bytes / 2**30:.2f} GiB usable")
        return row
    ms = analytic_ms(cfg, prof)
    if ms is not None:
        row.update(analytic_ms=ms, profile_source=prof.source, profile_name=prof.name)
    deadline = None if budget_left_s is None else time.monotonic() + budget_left_s
    quiet = dev.type == "cpu" and settings.quiet_wait_s > 0
    model = None
    best: tuple[float, Any] | None = None
    try:
        model = build_on(cfg.spec, dev)
        wait_left = settings.quiet_wait_s  # shared by the attempts of this configuration
        for _attempt in range(max(1, settings.attempts) if quiet else 1):
            if quiet:
                wait_s = wait_left if deadline is None else min(wait_left, max(0.0, deadline - time.monotonic()))
                wait_left -= wait_for_quiet(settings.quiet_cores, wait_s)
            if hasattr(os, "getloadavg"):
                row["host_loadavg"] = f"{os.getloadavg()[0]:.2f}"
            left = settings.max_seconds if deadline is None else deadline - time.monotonic()
            with _OtherCpu() as others:
                timing = measure(model, cfg.spec.sample_shape(), s, dev, warmup=settings.warmup,
                                 repeats=settings.repeats, max_seconds=max(1.0, min(settings.max_seconds, left)),
                                 min_seconds=settings.min_seconds)
            disturbed = others.cores if others.cores is not None else 0.0
            if best is None or disturbed < best[0]:
                best = (disturbed, timing)
                row["other_cpu_s_per_s"] = "" if others.cores is None else f"{others.cores:.2f}"
            if disturbed <= settings.quiet_cores or (deadline is not None and time.monotonic() >= deadline):
                break
        timing = best[1]
        row.update(median_ms=timing.median_ms, min_ms=timing.min_ms, max_ms=timing.max_ms,
                   repeats=timing.repeats, warmup=settings.warmup, measured_peak_bytes=timing.peak_memory_bytes,
                   status=STATUS_OK)
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        row["status"] = _status_of(exc)
    finally:
        model = None
        gc.collect()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return row


class _OtherCpu:
    """Context manager: CPU cores other processes kept busy meanwhile (``cores``; None off Linux)."""

    def __enter__(self) -> "_OtherCpu":
        self.cores: float | None = None
        self._busy, self._cpu, self._wall = _host_busy_s(), time.process_time(), time.monotonic()
        return self

    def __exit__(self, *exc: Any) -> None:
        busy, wall = _host_busy_s(), time.monotonic() - self._wall
        if self._busy is not None and busy is not None and wall > 0:
            self.cores = max(0.0, (busy - self._busy - (time.process_time() - self._cpu)) / wall)


def wait_for_quiet(max_cores: float, max_wait_s: float, window_s: float = 0.25) -> float:
    """Wait until other processes use at most ``max_cores`` cores over a ``window_s`` window, or until
    ``max_wait_s`` has passed; returns the seconds waited (0 when already quiet or not on Linux)."""
    start = time.monotonic()
    while True:
        with _OtherCpu() as others:
            time.sleep(window_s)
        if others.cores is None or others.cores <= max_cores:
            return time.monotonic() - start - window_s
        if time.monotonic() - start >= max_wait_s:
            return time.monotonic() - start


# ------------------------------------------------------------------------------------------ plans for a device


def plan_for_device(plan: str, device: torch.device, *, limit: int | None = None, seed: int = 0,
                    memory_bytes: int | None = None, resume_keys: set[str] | None = None) -> list[BenchConfig]:
    """:func:`~traincost.sweeps.plans.build_plan` for ``device``: the random plan rejects configurations
    whose walk peak exceeds ``memory_bytes`` (default :func:`usable_memory_bytes`) or, on CPU, whose step
    exceeds :data:`~traincost.sweeps.plans.MAX_STEP_FLOPS`; accepted ones carry their walk features.
    The default memory is the device's (on CPU half the total RAM, not what is free now), so every run
    and every shard on the same kind of machine draws the same plan.
    ``resume_keys``: keys already measured, accepted without walking again.
    """
    from traincost.sweeps.plans import MAX_STEP_FLOPS, build_plan

    kind = "cuda" if device.type == "cuda" else "cpu"
    limit_bytes = memory_bytes if memory_bytes is not None else usable_memory_bytes(device, available=False)
    max_flops = MAX_STEP_FLOPS[kind]
    name = _device_name(device)
    accepted_features: dict[int, dict[str, int]] = {}

    def accept(cfg: BenchConfig) -> bool:
        if resume_keys and cfg.key(name) in resume_keys:
            return True
        try:
            features = walk_features(cfg)
        except Exception:
            return False
        if features["predicted_peak_bytes"] > limit_bytes:
            return False
        if max_flops is not None and step_flops(features) > max_flops:
            return False
        accepted_features[id(cfg)] = features
        return True

    configs = build_plan(plan, kind=kind, limit=limit, seed=seed, accept=accept)
    return [BenchConfig(c.spec, c.step, c.sweep, accepted_features.get(id(c))) for c in configs]


def existing_keys(path: str | Path) -> set[str]:
    """Configuration keys already in ``path`` (empty when it does not exist)."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return set()
    return {r["config_key"] for r in read_dataset(path)}


__all__ = ["FIELDS", "LEGACY_FIELDS", "SCHEMA_VERSION", "BenchConfig", "DatasetBusyError", "DatasetError",
           "DatasetLock", "DatasetRows", "MergeResult", "PlanError", "Settings", "SweepEvent", "SweepSummary",
           "check_resume", "existing_keys", "merge_datasets", "plan_for_device", "plan_of_sweep",
           "read_dataset", "run_sweep", "upgrade_row", "walk_features", "write_dataset"]
