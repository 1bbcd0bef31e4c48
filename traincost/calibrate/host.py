"""Facts about the device and its host: parsing and naming the device (:func:`parse_device`,
:func:`device_name`, :func:`device_slug`), its catalog key, which math modes it runs well enough to measure,
its memory, CPU caches and flags, the software stack, and how busy the host is.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import time
from pathlib import Path
from typing import Any

import torch

from traincost.calibrate.grid import _DTYPES, _one_line, _Settings
from traincost.errors import TraincostUsageError
from traincost.hardware.store import cpu_model

__all__ = ["device_name", "device_slug", "parse_device"]


def parse_device(device: str) -> torch.device:
    """``'cpu'``, ``'cuda'`` or ``'cuda:N'`` -> ``torch.device``, checked against this machine.

    Raises ``TraincostUsageError`` for an unknown string, CUDA without CUDA, or a missing GPU index.
    """
    text = str(device).strip().lower()
    if text == "cpu":
        return torch.device("cpu")
    m = re.fullmatch(r"(?:cuda|gpu)(?::(\d+))?", text)
    if not m:
        raise TraincostUsageError(f"unknown device {device!r}; expected 'cpu', 'cuda' or 'cuda:N'")
    if not torch.cuda.is_available():
        built = torch.version.cuda or "no CUDA"
        raise TraincostUsageError(f"device {device!r}: CUDA is not available on this machine "
                                  f"(torch {torch.__version__}, built with {built}); use --device cpu")
    count = torch.cuda.device_count()
    index = int(m.group(1)) if m.group(1) is not None else torch.cuda.current_device()
    if index >= count:
        raise TraincostUsageError(f"device {device!r} does not exist: this machine has {count} CUDA "
                                  f"device{'s' if count != 1 else ''} (cuda:0..cuda:{count - 1})")
    return torch.device("cuda", index)


def device_name(dev: torch.device) -> str:
    """Human name: the GPU's marketing name, or ``'<CPU model> (<n> threads)'``."""
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"{cpu_model()} ({torch.get_num_threads()} threads)"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "device"


def device_slug(dev: torch.device) -> str:
    """File-name slug: ``cpu-2core-x86_64``, or the GPU's catalog key / name (``h200-sxm-141gb``)."""
    if dev.type == "cuda":
        key = _catalog_key(dev)
        return key or _slug(torch.cuda.get_device_name(dev))
    return f"cpu-{os.cpu_count()}core-{platform.machine().lower()}"


def _catalog_key(dev: torch.device) -> str | None:
    from traincost.hardware.catalog import resolve_gpu

    props = torch.cuda.get_device_properties(dev)
    name = props.name
    candidates = [f"{name} {round(props.total_memory / 2**30)}GB", f"{name} {round(props.total_memory / 1e9)}GB",
                  name]
    for cand in candidates:
        try:
            return resolve_gpu(cand).key
        except TraincostUsageError:
            continue
    return None


def _cuda_modes(dev: torch.device) -> tuple[list[str], dict[str, str]]:
    major, _minor = torch.cuda.get_device_capability(dev)
    modes = ["fp32"]
    skipped: dict[str, str] = {}
    if major >= 8:
        modes.append("tf32")
    else:
        skipped["tf32"] = f"compute capability {major}.x has no TF32"
    try:
        bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:
        bf16 = torch.cuda.is_bf16_supported()
    if bf16 and major >= 8:
        modes.append("bf16")
    else:
        skipped["bf16"] = "no native bf16 on this GPU"
    modes.append("fp16")
    return modes, skipped


def _probe_rate(mode: str, n: int) -> float:
    a = torch.randn(n, n, dtype=_DTYPES[mode])
    b = torch.randn(n, n, dtype=_DTYPES[mode])
    torch.mm(a, b)
    best = float("inf")
    for _ in range(5):  # best of 5: a busy host must not decide which modes exist
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / max(best, 1e-9)


def _cpu_modes(settings: _Settings) -> tuple[list[str], dict[str, str], list[dict[str, Any]]]:
    """fp32 always; bf16 / fp16 only when a 128^3 GEMM reaches a quarter of the fp32 rate.

    The probe runs on one thread, best of 5: the ratio between dtypes, which a busy host (whose other
    processes stall a multi-threaded op for a scheduler tick) cannot distort much."""
    n = 128
    rates: dict[str, float] = {}
    probes: list[dict[str, Any]] = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for mode in ("fp32", "bf16", "fp16"):
            try:
                rates[mode] = _probe_rate(mode, n)
                probes.append({"mode": mode, "n": n, "threads": 1, "flops_per_s": rates[mode]})
            except Exception as exc:  # noqa: BLE001 - an unsupported dtype is a skip, not a failure
                probes.append({"mode": mode, "n": n, "error": _one_line(exc)})
    finally:
        torch.set_num_threads(threads)
    modes = ["fp32"]
    skipped: dict[str, str] = {"tf32": "no TF32 on a CPU"}
    for mode in ("bf16", "fp16"):
        r = rates.get(mode)
        if r is not None and r >= 0.25 * rates.get("fp32", float("inf")):
            modes.append(mode)
        else:
            skipped[mode] = (f"{mode} GEMM probe ({n}^3, 1 thread) reached {r / 1e9:.1f} GFLOP/s vs fp32 "
                             f"{rates.get('fp32', 0) / 1e9:.1f}: too slow to matter, not measured"
                             if r is not None else f"{mode} GEMM unsupported on this CPU build")
    return modes, skipped, probes


def _total_memory(dev: torch.device) -> int:
    if dev.type == "cuda":
        return int(torch.cuda.get_device_properties(dev).total_memory)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def _cpu_caches() -> dict[str, int]:
    out: dict[str, int] = {}
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    try:
        for idx in sorted(base.glob("index*")):
            level = (idx / "level").read_text().strip()
            kind = (idx / "type").read_text().strip().lower()
            size = (idx / "size").read_text().strip().upper()
            mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(size[-1:], 1)
            num = int(size.rstrip("KMG"))
            key = f"l{level}{'d' if kind == 'data' else 'i' if kind == 'instruction' else ''}_bytes"
            out[key] = num * mult
    except (OSError, ValueError):
        pass
    return out


def _cpu_flags() -> list[str]:
    wanted = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "amx_bf16",
              "amx_tile", "amx_fp16", "asimd", "sve", "bf16")
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith(("flags", "features")):
                have = set(line.split(":", 1)[1].split())
                return [f for f in wanted if f in have]
    except OSError:
        pass
    return []


def _software(dev: torch.device) -> dict[str, Any]:
    import numpy

    sw: dict[str, Any] = {"torch": torch.__version__, "python": platform.python_version(),
                          "numpy": numpy.__version__, "platform": platform.platform(),
                          "cuda": torch.version.cuda, "cudnn": None}
    if dev.type == "cuda":
        with contextlib.suppress(Exception):
            sw["cudnn"] = torch.backends.cudnn.version()
        with contextlib.suppress(Exception):
            sw["hip"] = torch.version.hip
    else:
        sw["mkldnn"] = bool(torch.backends.mkldnn.is_available())
        with contextlib.suppress(Exception):
            sw["parallel_info"] = torch.__config__.parallel_info().splitlines()[:6]
    return sw


def _properties(dev: torch.device) -> dict[str, Any]:
    props: dict[str, Any] = {"device": str(dev), "machine": platform.machine(), "cpu_model": cpu_model(),
                             "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                             "torch_interop_threads": torch.get_num_interop_threads(),
                             "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS")}
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        props.update({
            "gpu_name": p.name, "sm_count": p.multi_processor_count,
            "compute_capability": f"{p.major}.{p.minor}", "total_memory_bytes": int(p.total_memory),
            "l2_cache_bytes": getattr(p, "L2_cache_size", None),
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
            "cudnn_enabled": bool(torch.backends.cudnn.enabled),
            "conv_fp32_uses_tf32": True,
            "matmul_fp32_uses_tf32": False,
        })
    else:
        props.update(_cpu_caches())
        props["cpu_flags"] = _cpu_flags()
        props["cpu_capability"] = str(torch.backends.cpu.get_cpu_capability())
        props["conv_fp32_uses_tf32"] = False
    return props


def _host_busy_s() -> float | None:
    """Busy CPU seconds of the whole host since boot (Linux ``/proc/stat``), or None elsewhere."""
    try:
        fields_ = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields_[:8])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
