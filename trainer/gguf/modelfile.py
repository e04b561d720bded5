"""The text that goes beside a GGUF export (pure): Ollama's Modelfile and the `<repo>-GGUF` model card.

Phi-3's chat format in Ollama's template language (Go templates): `<|system|>`, `<|user|>` and `<|assistant|>` each
on their own line, every turn closed by `<|end|>`, which is also a stop, or the reply never ends (the Modelfile of
Ollama's own `phi3` model says the same). The tests render this template for a conversation and compare it with the
tokenizer's own chat template.
"""

from __future__ import annotations

PHI3_OLLAMA_TEMPLATE = (
    "{{ if .System }}<|system|>\n{{ .System }}<|end|>\n{{ end }}"
    "{{ if .Prompt }}<|user|>\n{{ .Prompt }}<|end|>\n{{ end }}"
    "<|assistant|>\n{{ .Response }}<|end|>\n"
)
"""Phi-3's chat template for Ollama (one system turn, one user turn, the reply)."""

PHI3_STOPS = ("<|end|>", "<|endoftext|>", "<|user|>", "<|assistant|>")
"""Where Ollama stops a reply: the end of the turn, the end of text, and a new turn's header."""


def _quoted(text: str) -> str:
    """A Modelfile triple-quoted value (its own closing quotes cannot occur inside)."""
    return '"""' + text.replace('"""', '\\"\\"\\"') + '"""'


def modelfile(gguf_file: str, system_prompt: str = "", adapter_file: str | None = None) -> str:
    """An Ollama Modelfile for an exported GGUF: the merged model (`gguf_file`), or the base's GGUF with the
    adapter's (`adapter_file`) on top; Phi-3's template and stops, and the run's system prompt when it had one."""
    lines = []
    if adapter_file:
        lines += [
            "# The adapter on top of its base model's GGUF: convert the base once with llama.cpp",
            "# (python convert_hf_to_gguf.py BASE_MODEL_DIR --outtype f16) and name its file here.",
        ]
    lines.append(f"FROM ./{gguf_file}")
    if adapter_file:
        lines.append(f"ADAPTER ./{adapter_file}")
    lines.append(f"TEMPLATE {_quoted(PHI3_OLLAMA_TEMPLATE)}")
    lines += [f'PARAMETER stop "{stop}"' for stop in PHI3_STOPS]
    if system_prompt.strip():
        lines.append(f"SYSTEM {_quoted(system_prompt.strip())}")
    return "\n".join(lines) + "\n"


def gguf_card(repo_id: str, base_model: str, adapter_repo: str | None, files: list[tuple[str, int]]) -> str:
    """The model card of `<repo_id>` holding GGUF files (`files`: name and size in bytes): what they are and how
    to run them with llama.cpp, Ollama and LM Studio."""
    rows = "\n".join(f"| `{name}` | {gguf_type_of(name)} | {size / 1e9:.2f} GB |" for name, size in files)
    first = files[0][0] if files else "model.gguf"
    source = f"[{adapter_repo}](https://huggingface.co/{adapter_repo})" if adapter_repo else "a LoRA adapter"
    return f"""---
base_model: {base_model}
library_name: gguf
tags:
- gguf
- llama.cpp
- phi3
- lora
---

# {repo_id.split("/")[-1]}

GGUF files of `{base_model}` fine-tuned with {source} (merged into the base, then converted and quantized with
llama.cpp's own `convert_hf_to_gguf.py` and quantizer), made with Phi-3 Fine-Tune Studio.

| file | type | size |
| --- | --- | --- |
{rows}

## llama.cpp

```bash
llama-cli --hf-repo {repo_id} --hf-file {first} -cnv
```

## Ollama

The repo holds a `Modelfile` with Phi-3's chat template and `<|end|>` as a stop:

```bash
huggingface-cli download {repo_id} {first} {modelfile_name(first)} --local-dir .
ollama create my-phi3 -f {modelfile_name(first)}
ollama run my-phi3
```

or straight from the Hub: `ollama run hf.co/{repo_id}`.

## LM Studio

Search for `{repo_id}` in LM Studio's model browser, or `lms get {repo_id}`; its chat template is read from the GGUF.
"""


def gguf_type_of(name: str) -> str:
    """The GGUF type a file was named with (`<stem>-<type>.gguf`; the adapter's `<stem>-lora-f16.gguf`)."""
    return name.removesuffix(".gguf").rsplit("-", 1)[-1]


def modelfile_name(gguf_file: str) -> str:
    """The Modelfile written beside an export: `Modelfile.<type>`, the adapter's `Modelfile.lora`."""
    return (
        "Modelfile.lora"
        if gguf_file.removesuffix(".gguf").endswith("-lora-f16")
        else f"Modelfile.{gguf_type_of(gguf_file)}"
    )
