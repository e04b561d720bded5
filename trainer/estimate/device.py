"""The machine a run is estimated for: this machine's GPU, or on a CPU-only machine the Space's suggested hardware.

A table of the GPUs a Space offers (memory as torch reports it, dense 16-bit tensor TFLOPS and memory bandwidth
from the vendor's datasheet: H200 4.8 TB/s, H100 SXM 3.35 TB/s, A100 80GB SXM 2,039 GB/s, L40S 864 GB/s, A10 600 GB/s,
L4 300 GB/s, T4 320 GB/s) and of Space hardware flavours; `detect_device` picks the device, `space_hardware` reads
``suggested_hardware`` from the README's front matter (the Space config).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from trainer.paths import PROJECT_ROOT
from trainer.phi3 import TINY_MODEL_NAME

GIB = 1024**3


@dataclass(frozen=True)
class Gpu:
    """One GPU model: how torch names it, its memory and its dense 16-bit tensor peak."""

    name: str
    match: str  # a substring of torch.cuda.get_device_name()
    memory_gib: float  # total_memory as torch reports it (a little under the marketed size)
    tflops: float  # dense bf16 (fp16 on the T4) tensor TFLOPS, no sparsity
    source: str
    bandwidth_gbs: float = 0.0  # memory bandwidth in GB/s from the same datasheet (a decode step reads each weight)


GPUS = (
    Gpu("H200", "H200", 139.8, 989.0, "NVIDIA H200 datasheet: 1,979 TFLOPS bf16 with sparsity, so 989 dense", 4800),
    Gpu("H100 80GB", "H100", 79.1, 989.0, "NVIDIA H100 SXM datasheet: 1,979 TFLOPS bf16 sparse, 989 dense", 3350),
    Gpu("A100 80GB", "A100", 79.2, 312.0, "NVIDIA A100 datasheet: 312 TFLOPS bf16 dense", 2039),
    Gpu("L40S", "L40S", 44.4, 362.0, "NVIDIA L40S datasheet: 733 TFLOPS bf16 with sparsity, 362 dense", 864),
    Gpu("A10G", "A10G", 22.1, 125.0, "NVIDIA A10 datasheet: 125 TFLOPS bf16 dense (A10G assumed the same)", 600),
    Gpu("L4", "L4", 22.0, 121.0, "NVIDIA L4 datasheet: 242 TFLOPS bf16 with sparsity, 121 dense", 300),
    Gpu("T4", "T4", 14.7, 65.0, "NVIDIA T4 datasheet: 65 TFLOPS fp16 mixed precision (no bf16)", 320),
)

SPACE_HARDWARE = {
    "t4-small": "T4",
    "t4-medium": "T4",
    "l4x1": "L4",
    "l4x4": "L4",
    "l40sx1": "L40S",
    "l40sx4": "L40S",
    "l40sx8": "L40S",
    "a10g-small": "A10G",
    "a10g-large": "A10G",
    "a10g-largex2": "A10G",
    "a10g-largex4": "A10G",
    "a100-large": "A100 80GB",
    "a100x4": "A100 80GB",
    "a100x8": "A100 80GB",
    "h100": "H100 80GB",
    "h100x8": "H100 80GB",
    "h200": "H200",
}
"""Hugging Face Space hardware flavours with a GPU -> the GPU (a run trains on one of them)."""

DEFAULT_HARDWARE = "a10g-small"
"""Assumed when this machine has no GPU and the README names no GPU hardware."""


@dataclass(frozen=True)
class Device:
    """What a run is estimated on.

    Attributes:
        name: e.g. "A10G", "NVIDIA H100 80GB HBM3", "CPU (2 cores)".
        kind: "cuda" or "cpu".
        memory: bytes available to the run (the GPU's total memory, or the machine's RAM).
        gpu: the table entry (TFLOPS and its source), None for a CPU or an unknown GPU.
        source: why this device: this machine, or the Space's suggested hardware.
        count: how many of them the run trains on, one process each (DDP: each holds a whole copy, so the memory
            figures are per GPU and the steps are shared out).
        usd_per_hour: what the hardware costs, when the user pays for it (a Hugging Face Jobs flavour).
    """

    name: str
    kind: Literal["cuda", "cpu"]
    memory: int
    gpu: Gpu | None
    source: str
    count: int = 1
    usd_per_hour: float | None = None


def find_gpu(name: str) -> Gpu | None:
    """The table entry for a GPU name (a torch device name or a table name), or None."""
    return next((gpu for gpu in GPUS if gpu.match.lower() in name.lower() or gpu.name == name), None)


def gpu_device(name: str, source: str) -> Device:
    """A device from the table by GPU name (e.g. "T4", "A100 80GB")."""
    gpu = find_gpu(name)
    if gpu is None:
        raise ValueError(f"unknown GPU {name!r}; known: {', '.join(g.name for g in GPUS)}")
    return Device(gpu.name, "cuda", int(gpu.memory_gib * GIB), gpu, source)


def space_hardware(readme: Path = PROJECT_ROOT / "README.md") -> str | None:
    """``suggested_hardware`` from the README's YAML front matter (the Space config), or None."""
    try:
        text = readme.read_text(encoding="utf-8")
    except OSError:
        return None
    front = text.split("---", 2)[1] if text.startswith("---") else ""
    found = re.search(r"^suggested_hardware:\s*[\"']?([\w.-]+)", front, re.MULTILINE)
    return found.group(1) if found else None


def assumed_space_device(readme: Path = PROJECT_ROOT / "README.md") -> Device:
    """The GPU a Space run would get: the README's suggested hardware, else `DEFAULT_HARDWARE` (said so)."""
    flavour = space_hardware(readme)
    if flavour in SPACE_HARDWARE:
        return gpu_device(SPACE_HARDWARE[flavour], f"no GPU here: assumed the Space's suggested hardware {flavour}")
    return gpu_device(
        SPACE_HARDWARE[DEFAULT_HARDWARE],
        f"no GPU here and no GPU in the Space config: assumed {DEFAULT_HARDWARE} (24 GB)",
    )


def cpu_device() -> Device:
    """This machine's CPU and RAM."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    return Device(f"CPU ({os.cpu_count()} cores)", "cpu", ram, None, "this machine (no GPU)")


def jobs_device(flavor: str, gpus: int, usd_per_hour: float) -> Device | None:
    """A Hugging Face Jobs flavour as a device (its GPU, how many, its price), or None for an unknown one."""
    gpu = SPACE_HARDWARE.get(flavor)
    if gpu is None:
        return None
    device = gpu_device(gpu, f"Hugging Face Jobs {flavor}")
    return Device(device.name, "cuda", device.memory, device.gpu, device.source, max(gpus, 1), usd_per_hour)


def detect_device(model_name: str, gpus: str = "one") -> Device:
    """The device a run of `model_name` is estimated on.

    This machine's GPU when it has one (torch's name and total memory; all of this machine's GPUs when `gpus` is
    "all", the run's `run.gpus`); else the tiny demo model trains on this CPU; else (a real model on a CPU-only
    machine) the Space's suggested GPU, and the source says so.
    """
    import torch  # only now: the web page imports no torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        gpu = find_gpu(props.name)
        count = torch.cuda.device_count() if gpus == "all" else 1
        return Device(props.name, "cuda", int(props.total_memory), gpu, "this machine's GPU", count)
    if model_name == TINY_MODEL_NAME:
        return cpu_device()
    return assumed_space_device()
