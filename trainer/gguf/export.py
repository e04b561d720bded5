"""GGUF export of a trained run, made by llama.cpp's own tools: the merged model, or the adapter alone.

The merged model is the merge the Hub push makes (`trainer.hub.push.merge_adapter`: the adapter merged into an
unquantised copy of the base), saved with the base's SentencePiece `tokenizer.model` (llama.cpp's converter reads
Phi-3's vocabulary from it), then:

- f16, bf16, q8_0: written by `convert_hf_to_gguf.py --outtype <type>`;
- q4_K_M, q5_K_M: converted to f16, then quantized by llama.cpp's quantizer (`llama_model_quantize`, through
  llama-cpp-python's bindings of the library built from the same tree).

The adapter alone is `convert_lora_to_gguf.py` (f16), loaded on top of the base's GGUF (llama.cpp's `--lora`, Ollama's
`ADAPTER`). Beside every export goes an Ollama Modelfile (`trainer.gguf.modelfile`). Everything is written in a work
folder first and moved into `<run>/gguf/` only when complete: a failed conversion leaves no half-written file and
says why (the converter's own last error line).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from trainer.gguf.modelfile import modelfile, modelfile_name
from trainer.gguf.tools import LlamaCppTools, llama_cpp_tools
from trainer.runs.folder import GGUF_DIR

GGUF_TYPES: tuple[str, ...] = ("q4_K_M", "q5_K_M", "q8_0", "f16", "bf16")
"""The types offered, smallest first: llama.cpp's usual quantisations and the two 16-bit floats."""
CONVERTER_TYPES = ("f16", "bf16", "q8_0")
"""Types `convert_hf_to_gguf.py` writes itself; the K-quants go through the quantizer."""
QUANTIZER_FTYPES = {"q4_K_M": "LLAMA_FTYPE_MOSTLY_Q4_K_M", "q5_K_M": "LLAMA_FTYPE_MOSTLY_Q5_K_M"}
BITS_PER_WEIGHT = {"f16": 16.0, "bf16": 16.0, "q8_0": 8.5, "q5_K_M": 5.69, "q4_K_M": 4.89}
"""Bits a weight takes in the file (llama.cpp's quantize table; q8_0: 32 int8 and one f16 scale per block). For
Phi-3-mini (3.82 B weights) this gives 2.34 GB at q4_K_M and 4.06 GB at q8_0 (Microsoft's own Phi-3-mini-4k GGUFs:
2.39 GB and 4.06 GB)."""
ADAPTER_TYPE = "f16"

# Measured on 2 CPU cores (x86_64, torch 2.13 CPU, llama-cpp-python 0.3.36), 2026-12-08, by scripts/gguf_rates.py:
# a random Phi-3-shaped model of 0.368 B parameters (hidden 1024, 24 layers) merged in 7.0 s, converted to f16 in
# 6.7 s and quantized to q4_K_M in 12.5 s; the tiny demo model's whole export (its fixed costs: two Python processes,
# the converter's imports) takes 4-5 s. A GPU Space merges on its GPU, faster than this.
MERGE_PARAMS_PER_S = 52e6
CONVERT_PARAMS_PER_S = 55e6
QUANTIZE_PARAMS_PER_S = 29e6
FIXED_S = 5.0


class ExportError(RuntimeError):
    """A GGUF export failed; nothing half-written was left."""


@dataclass(frozen=True)
class ExportEstimate:
    """What an export will make, before it starts."""

    gguf_type: str
    size_bytes: int
    seconds: float

    def markdown(self) -> str:
        return (
            f"**{self.gguf_type}**: a file of about {_size(self.size_bytes)}, made in about "
            f"{_duration(self.seconds)} on this machine's CPU (merge, llama.cpp's converter"
            f"{', its quantizer' if self.gguf_type in QUANTIZER_FTYPES else ''})."
        )


def estimate_export(n_params: int, gguf_type: str, adapter_params: int | None = None) -> ExportEstimate:
    """The file's size (its weights at the type's bits per weight) and the time (rates measured on a CPU) of exporting
    a model of `n_params` parameters; with `adapter_params`, the adapter alone (f16)."""
    if adapter_params is not None:
        return ExportEstimate(ADAPTER_TYPE, adapter_params * 2, FIXED_S)
    seconds = FIXED_S + n_params / MERGE_PARAMS_PER_S + n_params / CONVERT_PARAMS_PER_S
    if gguf_type in QUANTIZER_FTYPES:
        seconds += n_params / QUANTIZE_PARAMS_PER_S
    return ExportEstimate(gguf_type, int(n_params * BITS_PER_WEIGHT[gguf_type] / 8), seconds)


def _size(size: int) -> str:
    return f"{size / 1e9:.2f} GB" if size >= 1e9 else f"{size / 1e6:.1f} MB"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def gguf_name(stem: str, gguf_type: str, adapter: bool = False) -> str:
    """The export's file name: `<stem>-<type>.gguf`, the adapter's `<stem>-lora-f16.gguf`."""
    return f"{stem}-lora-{ADAPTER_TYPE}.gguf" if adapter else f"{stem}-{gguf_type}.gguf"


def export_stem(run_dir: Path) -> str:
    """The exports' name stem: the run folder's name (unique, letters, digits, - and _)."""
    return Path(run_dir).name


@dataclass
class ExportResult:
    """What an export wrote into `<run>/gguf/`."""

    gguf: Path
    modelfile: Path
    seconds: float


Progress = Callable[[str], None]


def export_merged(
    run_dir: Path, gguf_type: str, token: str | bool | None = None, on_phase: Progress = print
) -> ExportResult:
    """Merge the run's adapter into its base and write it as GGUF of `gguf_type` with an Ollama Modelfile.

    Raises:
        ExportError: the type is unknown, or a step failed (why; nothing half-written is left).
        ToolsMissing: llama.cpp's converters are not here and could not be fetched.
    """
    from trainer.config import load_yaml
    from trainer.hub.push import merge_adapter
    from trainer.runs import folder as rf

    if gguf_type not in GGUF_TYPES:
        raise ExportError(f"unknown GGUF type {gguf_type!r}: use one of {', '.join(GGUF_TYPES)}.")
    run_dir, started = Path(run_dir), time.time()
    tools = llama_cpp_tools()
    config = load_yaml(run_dir / rf.CONFIG_FILE)
    name = gguf_name(export_stem(run_dir), gguf_type)
    with _work_folder(run_dir) as work:
        on_phase("merging")
        merged = merge_adapter(run_dir, work / "merged")
        if vocabulary := tokenizer_model(config.model.model_name_or_path, token):
            shutil.copyfile(vocabulary, merged / "tokenizer.model")
        on_phase("converting")
        first = work / (name if gguf_type in CONVERTER_TYPES else "converted-f16.gguf")
        convert(tools, merged, first, gguf_type if gguf_type in CONVERTER_TYPES else "f16")
        if gguf_type in QUANTIZER_FTYPES:
            on_phase("quantizing")
            quantize(first, work / name, gguf_type)
        (work / modelfile_name(name)).write_text(modelfile(name, config.data.system_prompt), encoding="utf-8")
        return ExportResult(*_publish(run_dir, work, [name, modelfile_name(name)]), time.time() - started)


def export_adapter(run_dir: Path, token: str | bool | None = None, on_phase: Progress = print) -> ExportResult:
    """Write the run's adapter as a GGUF LoRA adapter (f16) for llama.cpp's `--lora` / Ollama's `ADAPTER`, with a
    Modelfile naming the base's GGUF."""
    from trainer.config import load_yaml
    from trainer.runs import folder as rf

    run_dir, started = Path(run_dir), time.time()
    tools = llama_cpp_tools()
    config = load_yaml(run_dir / rf.CONFIG_FILE)
    name = gguf_name(export_stem(run_dir), ADAPTER_TYPE, adapter=True)
    base = config.model.model_name_or_path
    with _work_folder(run_dir) as work:
        on_phase("converting")
        base_args = ["--base", str(local)] if (local := local_model_dir(base)) else ["--base-model-id", base]
        argv = [str(tools.lora_converter), *base_args, "--outtype", ADAPTER_TYPE, "--outfile", str(work / name)]
        _run_tool(tools, [*argv, str(run_dir / rf.ADAPTER_DIR)], "convert_lora_to_gguf.py", work / name, token)
        base_file = f"{Path(base).name}-f16.gguf"
        text = modelfile(base_file, config.data.system_prompt, adapter_file=name)
        (work / modelfile_name(name)).write_text(text, encoding="utf-8")
        return ExportResult(*_publish(run_dir, work, [name, modelfile_name(name)]), time.time() - started)


def local_model_dir(name: str) -> Path | None:
    """The folder a base model is loaded from when it is on this machine (the tiny demo model, a local folder)."""
    from trainer.phi3 import TINY_MODEL_NAME
    from trainer.tools.tiny import tiny_model_dir

    if name == TINY_MODEL_NAME:
        return tiny_model_dir()
    return Path(name) if (Path(name) / "config.json").is_file() else None


def tokenizer_model(base: str, token: str | bool | None = None) -> Path | None:
    """The base model's SentencePiece `tokenizer.model` (Phi-3's vocabulary for llama.cpp's converter): the local
    folder's, the bundled one for the tiny demo model (its vocabulary is Phi-3's), else the Hub repo's. None for a
    model without one (Phi-4's GPT-2-style vocabulary needs none)."""
    from trainer.paths import TOKENIZER_DIR
    from trainer.phi3 import TINY_MODEL_NAME

    if base == TINY_MODEL_NAME:
        return TOKENIZER_DIR / "tokenizer.model"
    if (local := local_model_dir(base)) is not None:
        return local / "tokenizer.model" if (local / "tokenizer.model").is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return Path(hf_hub_download(base, "tokenizer.model", token=token))
    except EntryNotFoundError:
        return None


def convert(tools: LlamaCppTools, model_dir: Path, outfile: Path, outtype: str) -> None:
    """llama.cpp's `convert_hf_to_gguf.py` on a model folder (raises ExportError with the converter's reason)."""
    argv = [str(tools.converter), str(model_dir), "--outtype", outtype, "--outfile", str(outfile)]
    _run_tool(tools, argv, "convert_hf_to_gguf.py", outfile)


def quantize(source: Path, target: Path, gguf_type: str) -> None:
    """llama.cpp's quantizer (its library, through llama-cpp-python's bindings): `source` (f16) to `gguf_type`."""
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANTIZER_FTYPES[gguf_type])
    params.nthread = os.cpu_count() or 1
    code = llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), ctypes.byref(params))
    if code != 0 or not target.is_file():
        raise ExportError(f"llama.cpp's quantizer failed on {source.name} (code {code}): see the log above.")


def _run_tool(tools: LlamaCppTools, argv: list[str], name: str, outfile: Path, token=None) -> None:
    env = tools.environment(os.environ)
    if isinstance(token, str):
        env["HF_TOKEN"] = token  # the caller's own (the converter may read the base's config from the Hub)
    done = subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True)
    sys.stdout.write(done.stderr[-4000:])  # the converter logs to stderr: the run's log keeps its tail
    if done.returncode != 0 or not outfile.is_file():
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        reason = next((line for line in reversed(lines) if "Error" in line), lines[-1] if lines else "no output")
        raise ExportError(f"llama.cpp's {name} failed: {reason.strip()}")


@contextlib.contextmanager
def _work_folder(run_dir: Path) -> Iterator[Path]:
    """A fresh folder inside `<run>/gguf/` for one export, removed when it ends (complete or not)."""
    parent = Path(run_dir) / GGUF_DIR
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".work-", dir=parent) as work:
        yield Path(work)


def _publish(run_dir: Path, work: Path, names: list[str]) -> tuple[Path, Path]:
    """Move the finished files from the work folder into `<run>/gguf/` (each an atomic rename)."""
    out = Path(run_dir) / GGUF_DIR
    for name in names:
        os.replace(work / name, out / name)
    return out / names[0], out / names[1]
