"""Which arithmetic precision training and sampling use: bf16 where the hardware has it, else fp32.

``"auto"`` (the default of :class:`~mdllm_kit.lm.config.TrainSettings` and
:class:`~mdllm_kit.lm.sampler.Sampler`) picks bf16 on a CUDA GPU that
supports it and on a CPU with native bf16 matrix instructions (Intel AMX
``amx_bf16`` or AVX-512 ``avx512_bf16``), and fp32 everywhere else; the
fallback is said in the log. On CPUs without these instructions bf16 is
emulated and slower than fp32, so it is never chosen automatically there.

Training under bf16 is mixed precision (``torch.autocast``: fp32 master
weights, optimizer state and loss); sampling runs a bf16 copy of the
model with a bf16 KV cache and computes the logits in fp32.
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

from ..errors import ModelError

__all__ = ["PRECISIONS", "cpu_bf16_flags", "cpu_has_bf16", "resolve_precision"]

logger = logging.getLogger(__name__)

#: Accepted values of the ``precision`` settings.
PRECISIONS: tuple[str, ...] = ("auto", "bf16", "fp32")

#: /proc/cpuinfo flags of native bf16 matrix arithmetic (Intel AMX tiles, AVX-512 BF16 dot products).
BF16_CPU_FLAGS: tuple[str, ...] = ("amx_bf16", "avx512_bf16")


@functools.lru_cache(maxsize=1)
def cpu_bf16_flags() -> tuple[str, ...]:
    """The native-bf16 flags of this CPU (subset of :data:`BF16_CPU_FLAGS`; empty if none or unknown).

    Read from ``/proc/cpuinfo`` (Linux); elsewhere torch's CPU capability
    ``"AMX"`` or ``"AVX512_BF16"`` (when reported) counts as the corresponding flag.
    """
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags.update(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    found = [f for f in BF16_CPU_FLAGS if f in flags]
    if not found:
        import torch

        capability = str(torch.backends.cpu.get_cpu_capability()).upper()
        if "AMX" in capability:
            found.append("amx_bf16")
        elif "BF16" in capability:
            found.append("avx512_bf16")
    return tuple(found)


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (AMX or AVX-512 BF16)."""
    return bool(cpu_bf16_flags())


def resolve_precision(precision: str, device: Any, what: str = "training") -> str:
    """``"bf16"`` or ``"fp32"`` for a requested precision on a device.

    Parameters
    ----------
    precision : {"auto", "bf16", "fp32"}
        ``"auto"``: bf16 when the device has native bf16 arithmetic (a CUDA
        GPU with ``torch.cuda.is_bf16_supported()``, a CPU with
        :func:`cpu_has_bf16`), else fp32 (logged). ``"bf16"`` is honoured on
        any device (emulated, slower, on CPUs without the instructions).
    device : str or torch.device
        ``"cpu"``, ``"cuda"``, ``"cuda:0"``, ...
    what : str
        Name of the task in the log line ("training", "sampling").

    Returns
    -------
    str
        ``"bf16"`` or ``"fp32"``.
    """
    if precision not in PRECISIONS:
        raise ModelError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    import torch

    kind = torch.device(device).type
    if precision != "auto":
        if precision == "bf16" and kind == "cpu" and not cpu_has_bf16():
            logger.warning("%s in bf16 on a CPU without native bf16 instructions (amx_bf16 / avx512_bf16): "
                           "emulated, likely slower than fp32", what)
        else:
            logger.info("%s in %s (precision=%r)", what, precision, precision)
        return precision
    if kind == "cuda":
        ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        reason = "this GPU does not support bf16"
    elif kind == "cpu":
        ok = cpu_has_bf16()
        reason = "this CPU has no native bf16 instructions (amx_bf16 / avx512_bf16)"
    else:
        ok, reason = False, f"bf16 is not chosen automatically on {kind!r} devices"
    if ok:
        logger.info("%s in bf16 (mixed precision; precision='auto' on %s%s)", what, kind,
                    f" with {'/'.join(cpu_bf16_flags())}" if kind == "cpu" else "")
        return "bf16"
    logger.info("%s in fp32: %s (precision='auto')", what, reason)
    return "fp32"
