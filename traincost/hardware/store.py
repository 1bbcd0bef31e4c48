"""Where profiles come from: the shipped calibrations, the CPU this runs on, and a device name -> profile.
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
import platform
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from traincost.errors import TraincostError, TraincostUsageError
from traincost.hardware.datasheet import datasheet_profile
from traincost.hardware.profile import DeviceProfile, load_profile

if TYPE_CHECKING:
    pass


def shipped_profiles_dir() -> Path:
    """``traincost/data/profiles`` inside the installed package."""
    return Path(str(resources.files("traincost") / "data" / "profiles"))


@functools.lru_cache(maxsize=1)
def load_shipped_profiles() -> tuple[DeviceProfile, ...]:
    """Every profile shipped in ``traincost/data/profiles/*.json``, sorted by file name."""
    folder = shipped_profiles_dir()
    if not folder.is_dir():
        return ()
    return tuple(load_profile(p) for p in sorted(folder.glob("*.json")))


def cpu_model() -> str:
    """This machine's CPU model string (``/proc/cpuinfo`` model name, else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_score(profile: DeviceProfile) -> tuple[int, int]:
    props = profile.properties
    same_machine = int(props.get("machine") == platform.machine())
    same_model = int(props.get("cpu_model") == cpu_model())
    same_count = int(props.get("cpu_count") == os.cpu_count())
    return (same_machine + same_model + same_count, -abs(int(props.get("cpu_count") or 0) - (os.cpu_count() or 0)))


def _created_at(profile: DeviceProfile) -> _dt.datetime:
    """When ``profile`` was calibrated (its ``created`` ISO date or time, UTC when no offset is given); the
    earliest time for a missing or unreadable one."""
    try:
        when = _dt.datetime.fromisoformat(str(profile.created))
    except ValueError:
        return _dt.datetime.min.replace(tzinfo=_dt.timezone.utc)
    return when if when.tzinfo else when.replace(tzinfo=_dt.timezone.utc)


def profile_for(device: str) -> DeviceProfile:
    """The profile to predict with for ``device``.

    * ``"cpu"``: the shipped CPU profile closest to this machine (architecture, CPU model, core count);
    * a path ending in ``.json`` (or an existing file): that profile;
    * a GPU name (anything :func:`traincost.hardware.catalog.resolve_gpu` accepts): the newest shipped calibrated
      profile of that catalog GPU if there is one (the H200 has two, of two hosts: ``h200.json`` and
      ``h200-2026-12-04.json``), else :func:`datasheet_profile` learned from the shipped GPU profiles.
    """
    if not isinstance(device, str) or not device.strip():
        raise TraincostUsageError(f"unknown device {device!r}; expected 'cpu', a GPU name or a profile .json")
    text = device.strip()
    if text.lower().endswith(".json") or (os.sep in text and Path(text).is_file()):
        return load_profile(text)
    shipped = load_shipped_profiles()
    if text.lower() == "cpu":
        cpus = [p for p in shipped if p.kind == "cpu"]
        if not cpus:
            raise TraincostError("no CPU profile is shipped; run 'traincost calibrate --device cpu -o cpu.json' "
                                 "and pass --device cpu.json")
        return max(cpus, key=_cpu_score)
    from traincost.hardware.catalog import resolve_gpu

    gpu = resolve_gpu(text)
    calibrated = [p for p in shipped if p.kind == "cuda" and p.source == "calibrated" and p.catalog_key == gpu.key]
    if calibrated:  # several hosts of one GPU calibrated: the newest calibration (name a file for another)
        return max(calibrated, key=_created_at)
    return datasheet_profile(gpu, [p for p in shipped if p.kind == "cuda" and p.source == "calibrated"])
