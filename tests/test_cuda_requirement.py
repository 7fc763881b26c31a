"""GPU presets refuse to start without a usable CUDA device and say why (CPU-only torch, a driver older than the
wheel's CUDA, no device); "auto" never falls back to the CPU silently on a machine with a driver. torch.cuda, the
driver library and nvidia-smi are stood in for: no GPU here."""

from __future__ import annotations

import logging
import stat

import pytest
import torch

import fl1_core.cuda_requirement as cr
from fl1_core.cli import main
from fl1_core.placement import _say_why_not_cuda, resolve_device


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """A machine whose torch build, CUDA availability, nvidia-smi (a script on PATH) and driver library are set by
    the test: ``machine(torch_cuda=..., available=..., devices=..., smi=..., driver_cuda=...)``."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("FL1_DEVICE", raising=False)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", str(bindir))
    monkeypatch.setattr(cr, "PROC_DRIVER_FILE", tmp_path / "proc")
    _say_why_not_cuda.cache_clear()

    def setup(torch_cuda="13.0", available=False, devices=0, smi=None, driver_cuda=None, proc=None):
        monkeypatch.setattr(torch.version, "cuda", torch_cuda)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: devices)
        monkeypatch.setattr(cr, "_driver_cuda_from_libcuda", lambda library="libcuda.so.1": driver_cuda)
        if smi is not None:  # a fake nvidia-smi printing this driver version
            exe = bindir / "nvidia-smi"
            exe.write_text(f"#!/bin/sh\necho '{smi}'\n")
            exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
        if proc is not None:
            (tmp_path / "proc").write_text(proc)

    yield setup
    _say_why_not_cuda.cache_clear()


def test_a_cpu_only_torch_build_is_named(machine):
    machine(torch_cuda=None)
    with pytest.raises(cr.CudaUnavailableError, match=r"fl1 x needs a CUDA device: torch .* is a CPU-only build"):
        cr.require_cuda("fl1 x")


def test_a_driver_older_than_the_wheels_cuda_is_named_with_both_versions(machine):
    machine(torch_cuda="13.0", smi="575.57.08", driver_cuda="12.9")
    report = cr.cuda_report()
    assert report.driver == "575.57.08" and report.driver_cuda == "12.9" and not report.usable
    msg = report.problem()
    assert "575.57.08" in msg and "CUDA up to 12.9" in msg and "CUDA 13.0" in msg and "driver >= 580" in msg
    assert "Installing torch for another CUDA" in msg


def test_an_old_driver_is_found_without_the_driver_library_from_nvidia_smi_or_proc(machine):
    machine(torch_cuda="13.0", proc="NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.161.08  Thu Feb 29 2024\n")
    assert "driver 535.161.08 is older than torch" in cr.cuda_report().problem()
    machine(torch_cuda="13.0", smi="570.133.20")  # nvidia-smi is asked first
    assert "driver 570.133.20 is older than" in cr.cuda_report().problem()


def test_driver_version_from_the_kernel_module_file(tmp_path):
    f = tmp_path / "version"
    f.write_text("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.65.06  Release Build  (dvs-builder)\n"
                 "GCC version:  gcc version 12.3.0\n")
    assert cr._driver_from_proc(f) == "580.65.06"
    f.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\n")
    assert cr._driver_from_proc(f) == "550.54.15"
    assert cr._driver_from_proc(tmp_path / "absent") is None


def test_no_driver_and_hidden_devices(machine, monkeypatch):
    machine(torch_cuda="13.0")
    assert "found no GPU and no NVIDIA driver" in cr.cuda_report().problem()
    machine(torch_cuda="13.0", smi="580.65.06", driver_cuda="13.0")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert "CUDA_VISIBLE_DEVICES='' hides every GPU" in cr.cuda_report().problem()
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert "check `nvidia-smi`" in cr.cuda_report().problem()  # a new enough driver, yet no device


def test_a_usable_device_passes_and_a_forced_cpu_is_refused(machine, monkeypatch):
    machine(torch_cuda="13.0", available=True, devices=2, smi="580.65.06", driver_cuda="13.0")
    report = cr.require_cuda("fl1 sft --hardware gpu")
    assert report.usable and report.devices == 2 and report.problem() is None
    monkeypatch.setenv("FL1_DEVICE", "cpu")
    with pytest.raises(cr.CudaUnavailableError, match="FL1_DEVICE=cpu forces another device"):
        cr.require_cuda("fl1 sft --hardware gpu")


@pytest.mark.parametrize("command", ["sft", "rl"])
def test_the_gpu_presets_refuse_before_doing_anything(machine, tmp_path, command):
    machine(torch_cuda="13.0", smi="575.57.08", driver_cuda="12.9")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        main([command, "--init", str(tmp_path / "no-ckpt"), "--data", str(tmp_path / "no-data"), "--out", str(out),
              "--hardware", "gpu"])
    msg = str(exc.value)
    assert msg.startswith(f"fl1 {command} --hardware gpu needs a CUDA device") and "driver >= 580" in msg
    assert not out.exists()


def test_auto_falls_back_to_the_cpu_with_a_warning_when_a_driver_is_present(machine, caplog):
    machine(torch_cuda="13.0", smi="575.57.08", driver_cuda="12.9")
    with caplog.at_level(logging.WARNING, logger="fl1_core.placement"):
        assert resolve_device("auto") == torch.device("cpu")
    assert any("runs on the CPU" in r.message and "575.57.08" in r.message for r in caplog.records)


def test_auto_stays_quiet_on_a_machine_without_a_driver(machine, caplog):
    machine(torch_cuda="13.0")
    with caplog.at_level(logging.WARNING, logger="fl1_core.placement"):
        assert resolve_device("auto") == torch.device("cpu")
    assert not caplog.records
