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


def _system(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, platform: str, cpuinfo: str | None
) -> None:
    """Simulate ``sys.platform`` and /proc/cpuinfo's text (None: no such file)."""
    monkeypatch.setattr(sys, "platform", platform)
    path = tmp_path / "cpuinfo"
    if cpuinfo is not None:
        path.write_text(cpuinfo)
    monkeypatch.setattr(cpu, "CPUINFO", path)
    cpu._cpuinfo_field.cache_clear()


def _takes_float32_and_the_avx2_memory_figures() -> bool:
    return cpu.cpu_flags() == frozenset() and not cpu.cpu_has_bf16() and cpu.cpu_kernels() == "avx2"


def test_linux_x86_reads_flags_and_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _system(monkeypatch, tmp_path, "linux", X86_BF16_CPUINFO)
    assert "avx512_bf16" in cpu.cpu_flags()
    assert cpu.cpu_has_bf16() is True and cpu.cpu_kernels() == "avx512"
    assert cpu.cpu_model() == "AMD EPYC 9R45"


def test_linux_arm_takes_float32_and_the_avx2_memory_figures(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _system(monkeypatch, tmp_path, "linux", ARM_CPUINFO)
    assert _takes_float32_and_the_avx2_memory_figures()
    assert cpu.cpu_model() is None


def test_macos_has_no_cpuinfo_and_names_its_chip_through_sysctl(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _system(monkeypatch, tmp_path, "darwin", None)
    asked: list[list[str]] = []

    def sysctl(command: list[str], **_: object) -> subprocess.CompletedProcess:
        asked.append(command)
        return subprocess.CompletedProcess(command, 0, stdout="Apple M2 Pro\n", stderr="")

    monkeypatch.setattr(cpu.subprocess, "run", sysctl)
    assert _takes_float32_and_the_avx2_memory_figures()
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
    _system(monkeypatch, tmp_path, "win32", None)
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
    assert _takes_float32_and_the_avx2_memory_figures()


def test_precision_auto_takes_float32_on_a_mac(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from nst.engine import model

    _system(monkeypatch, tmp_path, "darwin", None)
    monkeypatch.setattr(model, "has_gpu", lambda: False)
    assert model.resolve_precision("auto") == "float32"
    assert model.resolve_precision("bfloat16") == "bfloat16"  # asked for, it is used
    _system(monkeypatch, tmp_path, "linux", X86_BF16_CPUINFO)
    assert model.resolve_precision("auto") == "bfloat16"
