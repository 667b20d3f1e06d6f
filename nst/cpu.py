"""What this machine's CPU offers TensorFlow's oneDNN kernels, read without importing TensorFlow.

oneDNN picks its kernels from the CPU's instruction sets, capped by ``ONEDNN_MAX_CPU_ISA`` where
that is set. Two choices follow from them: whether bfloat16 is native (``cpu_has_bf16``) and
faster than float32 (``cpu_prefers_bf16``), and
which family of convolution kernels runs, whose working memory differs by about 1.8×
(``cpu_kernels``; docs/benchmarks.md, Memory).

The instruction sets are read from Linux's /proc/cpuinfo. macOS and Windows have no such file,
and ARM CPUs list other names there: those systems get the safe answers, float32 for precision
``auto`` and the larger (AVX2) memory figures. Only the model name is read there, from
``sysctl`` on macOS and the registry on Windows.
"""

from __future__ import annotations

import os
import subprocess
import sys
from functools import cache
from pathlib import Path

# oneDNN's instruction-set names, lowest first (its ``ONEDNN_MAX_CPU_ISA`` values; the AVX10
# names are the newer spellings of the AVX512_CORE_FP16 and AMX levels).
ONEDNN_ISAS = (
    "SSE41",
    "AVX",
    "AVX2",
    "AVX2_VNNI",
    "AVX2_VNNI_2",
    "AVX512_CORE",
    "AVX512_CORE_VNNI",
    "AVX512_CORE_BF16",
    "AVX10_1_512",
    "AVX10_1_512_AMX",
    "AVX10_1_512_AMX_FP16",
)
ONEDNN_ALIASES = {
    "AVX512_CORE_FP16": "AVX10_1_512",
    "AVX512_CORE_AMX": "AVX10_1_512_AMX",
    "AVX512_CORE_AMX_FP16": "AVX10_1_512_AMX_FP16",
}
# The CPU flags oneDNN's AVX-512 kernels need (its AVX512_CORE level).
AVX512_CORE_FLAGS = frozenset({"avx512f", "avx512bw", "avx512vl", "avx512dq"})


CPUINFO = Path("/proc/cpuinfo")
WINDOWS_CPU_KEY = r"HARDWARE\DESCRIPTION\System\CentralProcessor\0"


@cache
def _cpuinfo_field(name: str) -> str | None:
    """The value of the first ``name`` line of /proc/cpuinfo, or None where there is none."""
    try:
        text = CPUINFO.read_text()
    except OSError:  # macOS, Windows
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def cpu_flags() -> frozenset[str]:
    """The CPU's x86 instruction-set flags from /proc/cpuinfo (empty where there are none: macOS,
    Windows and ARM CPUs)."""
    return frozenset((_cpuinfo_field("flags") or "").split())


def _macos_model() -> str | None:
    """``sysctl``'s brand string (``Apple M2``), or None."""
    try:
        done = subprocess.run(
            ["sysctl", "-n", "machdep.cpu.brand_string"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def _windows_model() -> str | None:
    """The registry's ``ProcessorNameString`` of the first CPU, or None."""
    try:
        import winreg

        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, WINDOWS_CPU_KEY) as cpu_key:
            name, _ = winreg.QueryValueEx(cpu_key, "ProcessorNameString")
    except (ImportError, OSError):
        return None
    return str(name).strip() or None


def cpu_model() -> str | None:
    """The CPU's model name: from /proc/cpuinfo on Linux, ``sysctl`` on macOS, the registry on
    Windows; None where the system does not say."""
    if sys.platform == "darwin":
        return _macos_model()
    if sys.platform == "win32":
        return _windows_model()
    return _cpuinfo_field("model name")


def isa_allowed(level: str) -> bool:
    """False if ``ONEDNN_MAX_CPU_ISA`` (or its old name ``DNNL_MAX_CPU_ISA``) caps oneDNN below
    ``level``; an unset, ``ALL``, ``DEFAULT`` or unknown cap allows everything."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or ""
    cap = ONEDNN_ALIASES.get(cap.upper(), cap.upper())
    if cap not in ONEDNN_ISAS:
        return True
    return ONEDNN_ISAS.index(cap) >= ONEDNN_ISAS.index(level)


def cpu_has_bf16() -> bool:
    """True if the CPU computes bfloat16 natively (AVX512_BF16 or AMX) and oneDNN may use it;
    False where that cannot be read (macOS, Windows, ARM), so precision ``auto`` takes float32."""
    flags = cpu_flags()
    return bool(flags & {"avx512_bf16", "amx_bf16"}) and isa_allowed("AVX512_CORE_BF16")


def cpu_vendor() -> str | None:
    """``GenuineIntel``, ``AuthenticAMD``, … from /proc/cpuinfo, or None where it cannot be read."""
    return _cpuinfo_field("vendor_id")


def cpu_prefers_bf16() -> bool:
    """True where bfloat16 convolutions are faster than float32 ones here: with AMX (Intel, from
    Sapphire Rapids on), or AVX512_BF16 on AMD (Zen 4 on; 1.8x float32's speed on a Zen 5).
    Intel's AVX512_BF16 without AMX (Cooper Lake, or a virtual machine that hides AMX from its
    guests) only adds a dot-product instruction, and oneDNN's bfloat16 convolutions ran slower
    than its float32 ones there (docs/benchmarks.md, "Precision"), so precision ``auto`` takes
    float32 on those."""
    flags = cpu_flags()
    if "amx_bf16" in flags and isa_allowed("AVX10_1_512_AMX"):
        return True
    return "avx512_bf16" in flags and cpu_vendor() == "AuthenticAMD" and cpu_has_bf16()


def cpu_precision(precision: str) -> str:
    """The precision a run of ``precision`` computes in on this CPU: ``auto`` takes bfloat16
    where ``cpu_prefers_bf16`` (``nst.engine.model.resolve_precision`` adds GPUs)."""
    if precision != "auto":
        return precision
    return "bfloat16" if cpu_prefers_bf16() else "float32"


def cpu_kernels() -> str:
    """``avx512`` where oneDNN runs its AVX-512 kernels here, else ``avx2`` (AVX2 or less)."""
    if cpu_flags() >= AVX512_CORE_FLAGS and isa_allowed("AVX512_CORE"):
        return "avx512"
    return "avx2"
