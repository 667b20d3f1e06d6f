"""What ``nst.cpu`` reads on each system, simulated: /proc/cpuinfo's contents (or its absence),
``sys.platform``, macOS's ``sysctl`` and Windows's registry."""

import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from nst import cpu

X86_BF16_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R45
flags\t\t: fpu sse2 avx avx2 avx512f avx512bw avx512vl avx512dq avx512_bf16
"""
# A Graviton 3: ARM names its instruction sets "Features" and has no "model name" line.
ARM_CPUINFO = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp sve bf16 i8mm
CPU implementer\t: 0x41
CPU part\t: 0xd40
"""


@pytest.fixture(autouse=True)
def fresh_cpuinfo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No ``ONEDNN_MAX_CPU_ISA`` cap, and /proc/cpuinfo read again by each test."""
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    cpu._cpuinfo_field.cache_clear()
    yield
    cpu._cpuinfo_field.cache_clear()


def _cpuinfo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str | None) -> None:
    path = tmp_path / "cpuinfo"
    if text is not None:
        path.write_text(text)
    monkeypatch.setattr(cpu, "CPUINFO", path)


def test_linux_x86_reads_flags_and_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    _cpuinfo(monkeypatch, tmp_path, X86_BF16_CPUINFO)
    assert "avx512_bf16" in cpu.cpu_flags()
    assert cpu.cpu_has_bf16() is True and cpu.cpu_kernels() == "avx512"
    assert cpu.cpu_model() == "AMD EPYC 9R45"


def test_linux_arm_takes_float32_and_the_avx2_memory_figures(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    _cpuinfo(monkeypatch, tmp_path, ARM_CPUINFO)
    assert cpu.cpu_flags() == frozenset()
    assert cpu.cpu_has_bf16() is False and cpu.cpu_kernels() == "avx2"
    assert cpu.cpu_model() is None


def test_macos_has_no_cpuinfo_and_names_its_chip_through_sysctl(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    _cpuinfo(monkeypatch, tmp_path, None)
    asked: list[list[str]] = []

    def sysctl(command: list[str], **_: object) -> subprocess.CompletedProcess:
        asked.append(command)
        return subprocess.CompletedProcess(command, 0, stdout="Apple M2 Pro\n", stderr="")

    monkeypatch.setattr(cpu.subprocess, "run", sysctl)
    assert cpu.cpu_flags() == frozenset()
    assert cpu.cpu_has_bf16() is False and cpu.cpu_kernels() == "avx2"
    assert cpu.cpu_model() == "Apple M2 Pro"
    assert asked == [["sysctl", "-n", "machdep.cpu.brand_string"]]


def test_macos_without_sysctl_has_no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")

    def missing(command: list[str], **_: object) -> subprocess.CompletedProcess:
        raise FileNotFoundError(command[0])

    monkeypatch.setattr(cpu.subprocess, "run", missing)
    assert cpu.cpu_model() is None


def test_windows_names_its_cpu_from_the_registry(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    _cpuinfo(monkeypatch, tmp_path, None)
    opened: list[str] = []

    class Key:
        def __enter__(self) -> "Key":
            return self

        def __exit__(self, *_: object) -> None:
            return None

    def open_key(root: int, path: str) -> Key:
        opened.append(path)
        return Key()

    winreg = types.SimpleNamespace(
        HKEY_LOCAL_MACHINE=0x80000002,
        OpenKey=open_key,
        QueryValueEx=lambda key, name: ("Intel(R) Core(TM) i7-1185G7 @ 3.00GHz  ", 1),
    )
    monkeypatch.setitem(sys.modules, "winreg", winreg)
    assert cpu.cpu_model() == "Intel(R) Core(TM) i7-1185G7 @ 3.00GHz"
    assert opened == [r"HARDWARE\DESCRIPTION\System\CentralProcessor\0"]
    assert cpu.cpu_has_bf16() is False and cpu.cpu_kernels() == "avx2"


def test_precision_auto_takes_float32_on_a_mac(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from nst.engine import model

    monkeypatch.setattr(sys, "platform", "darwin")
    _cpuinfo(monkeypatch, tmp_path, None)
    monkeypatch.setattr(model, "has_gpu", lambda: False)
    assert model.resolve_precision("auto") == "float32"
    assert model.resolve_precision("bfloat16") == "bfloat16"  # asked for, it is used
    _cpuinfo(monkeypatch, tmp_path, X86_BF16_CPUINFO)
    cpu._cpuinfo_field.cache_clear()
    assert model.resolve_precision("auto") == "bfloat16"
