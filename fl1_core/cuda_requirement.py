"""Why a GPU run cannot start: no CUDA device visible, a CPU-only torch, or an NVIDIA driver older than the torch
wheel's CUDA needs.

A torch wheel is built for one CUDA (``torch.version.cuda``); the driver must support that CUDA's major version.
The minimum Linux driver per CUDA major (NVIDIA's CUDA toolkit release notes; minor versions of a major run on its
first driver): CUDA 13.x ≥ 580, 12.x ≥ 525, 11.x ≥ 450. The pinned torch 2.14.1 wheel is a CUDA 13 build, so on
a CUDA 12 driver ``torch.cuda.is_available()`` is False and ``resolve_device("auto")`` would pick the CPU.
:func:`require_cuda` makes the GPU presets refuse that with the reason; :func:`cuda_report` reads the evidence
(``torch.version.cuda`` and ``torch.cuda``; the driver from ``nvidia-smi`` or ``/proc/driver/nvidia/version`` and
the CUDA it supports from the driver library's ``cuDriverGetVersion``, each optional).
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch

DEVICE_ENV = "FL1_DEVICE"  # forces the device that "auto" resolves to (fl1_core.placement.resolve_device)

#: minimum NVIDIA Linux driver (major version) per CUDA major
MIN_DRIVER = {13: 580, 12: 525, 11: 450}
PROC_DRIVER_FILE = Path("/proc/driver/nvidia/version")
INSTALL_HINT = ("install the same torch version built for a CUDA your driver supports (README: 'Installing torch for "
                "another CUDA'), or update the NVIDIA driver")


class CudaUnavailableError(RuntimeError):
    """A GPU preset was asked for and no usable CUDA device exists; the message says why."""


@dataclass(frozen=True)
class CudaReport:
    """What torch and the machine say about CUDA."""

    torch_version: str
    torch_cuda: str | None  # the CUDA the wheel was built for; None = a CPU-only build
    available: bool  # torch.cuda.is_available()
    devices: int  # visible CUDA devices (0 when not available)
    driver: str | None  # NVIDIA driver version, e.g. "575.57.08"; None = no driver found
    driver_cuda: str | None  # the newest CUDA the driver supports, e.g. "12.9" (cuDriverGetVersion)
    visible_devices: str | None  # $CUDA_VISIBLE_DEVICES

    @property
    def usable(self) -> bool:
        return self.available and self.devices > 0

    def problem(self) -> str | None:
        """None when a CUDA device is usable, else one sentence on why not and what to do."""
        if self.usable:
            return None
        wheel = f"torch {self.torch_version}"
        if self.torch_cuda is None:
            return (f"{wheel} is a CPU-only build (torch.version.cuda is None): install the CUDA wheel of the same "
                    "version (README: 'Installing torch for another CUDA')")
        if self.visible_devices is not None and self.visible_devices.strip() in ("", "-1"):
            return f"no CUDA device is visible: CUDA_VISIBLE_DEVICES={self.visible_devices!r} hides every GPU"
        major = _major(self.torch_cuda)
        need = MIN_DRIVER.get(major)
        need_text = f"driver >= {need}" if need else f"a driver for CUDA {major}"
        if self.driver_cuda is not None and _major(self.driver_cuda) < major:
            driver = f"the NVIDIA driver {self.driver}" if self.driver else "the NVIDIA driver"
            return (f"{driver} supports CUDA up to {self.driver_cuda}, older than {wheel}'s CUDA {self.torch_cuda} "
                    f"needs ({need_text}): {INSTALL_HINT}")
        if self.driver is not None and need is not None and _major(self.driver) < need:
            return (f"the NVIDIA driver {self.driver} is older than {wheel}'s CUDA {self.torch_cuda} needs "
                    f"({need_text}): {INSTALL_HINT}")
        if self.driver is None and self.driver_cuda is None:
            return (f"no CUDA device is visible: {wheel} (CUDA {self.torch_cuda}) found no GPU and no NVIDIA driver "
                    f"(no nvidia-smi, no {PROC_DRIVER_FILE})")
        return (f"no CUDA device is usable although the NVIDIA driver {self.driver or self.driver_cuda} is installed "
                f"({wheel}, CUDA {self.torch_cuda}): check `nvidia-smi` and CUDA_VISIBLE_DEVICES")


def _major(version: str) -> int:
    return int(re.match(r"\s*(\d+)", version).group(1))


def _driver_cuda_from_libcuda(library: str = "libcuda.so.1") -> str | None:
    """The newest CUDA the installed driver supports (``cuDriverGetVersion`` of the driver library, no device
    initialised: 12090 → "12.9"); None when the library is missing or the call fails."""
    try:
        lib = ctypes.CDLL(library)
        value = ctypes.c_int(0)
        status = lib.cuDriverGetVersion(ctypes.byref(value))
    except (OSError, AttributeError):
        return None
    if status != 0 or value.value <= 0:
        return None
    return f"{value.value // 1000}.{(value.value % 1000) // 10}"


def _driver_from_nvidia_smi(timeout: float = 10.0) -> str | None:
    """The driver version ``nvidia-smi`` reports (first GPU), None without nvidia-smi or on any failure."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\d+\.\d+(\.\d+)?", out.stdout or "")
    return match.group(0) if out.returncode == 0 and match else None


def _driver_from_proc(path: Path | None = None) -> str | None:
    """The kernel module's version in ``/proc/driver/nvidia/version`` ("NVRM version: … Kernel Module  575.57.08 …")."""
    try:
        text = (path or PROC_DRIVER_FILE).read_text(errors="replace")
    except OSError:
        return None
    match = re.search(r"Kernel Module\s+(?:for \S+\s+)?(\d+\.\d+(?:\.\d+)?)", text)
    return match.group(1) if match else None


def cuda_report() -> CudaReport:
    """Read torch's CUDA build and availability, and the driver where one can be found (never raises)."""
    available = bool(torch.cuda.is_available())
    return CudaReport(
        torch_version=torch.__version__.split("+")[0],
        torch_cuda=torch.version.cuda,
        available=available,
        devices=int(torch.cuda.device_count()) if available else 0,
        driver=_driver_from_nvidia_smi() or _driver_from_proc(),
        driver_cuda=_driver_cuda_from_libcuda() if torch.version.cuda else None,
        visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
    )


def require_cuda(what: str) -> CudaReport:
    """Raise :class:`CudaUnavailableError` (``"<what> needs a CUDA device: <why>"``) unless a CUDA device is usable;
    returns the report. ``$FL1_DEVICE`` forcing another device is refused too."""
    forced = os.environ.get(DEVICE_ENV, "").strip()
    if forced and not forced.startswith("cuda"):
        raise CudaUnavailableError(f"{what} needs a CUDA device, but {DEVICE_ENV}={forced} forces another device")
    report = cuda_report()
    problem = report.problem()
    if problem is not None:
        raise CudaUnavailableError(f"{what} needs a CUDA device: {problem}")
    return report


__all__ = ["CudaReport", "CudaUnavailableError", "DEVICE_ENV", "MIN_DRIVER", "cuda_report", "require_cuda"]
