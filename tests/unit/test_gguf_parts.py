"""The GGUF export's pure parts: the bundled tokenizer.model against tokenizer.json, the Ollama Modelfile against the
chat template, the pins, the estimate, the card, and the converters' unpacking (no llama.cpp run here: that is
tests/integration/test_gguf.py)."""

from __future__ import annotations

import io
import json
import re
import tarfile

import pytest

from trainer.gguf import export as gguf_export
from trainer.gguf import tools as gguf_tools
from trainer.gguf.modelfile import PHI3_OLLAMA_TEMPLATE, gguf_card, modelfile, modelfile_name
from trainer.paths import EXAMPLES_DIR, PROJECT_ROOT, TOKENIZER_DIR
from trainer.runs import exports


def test_the_bundled_tokenizer_model_encodes_as_tokenizer_json_token_for_token():
    """tokenizer.model (written by scripts/make_tokenizer_model.py from llama.cpp's ggml-vocab-phi-3.gguf) and the
    bundled tokenizer.json give the same ids for every text of the bundled examples and a few hard cases."""
    import sentencepiece
    from tokenizers import Tokenizer

    model = sentencepiece.SentencePieceProcessor(model_file=str(TOKENIZER_DIR / "tokenizer.model"))
    reference = Tokenizer.from_file(str(TOKENIZER_DIR / "tokenizer.json"))
    texts = ["  two  leading spaces", "tabs\tand\nnewlines\n\n", "日本語 🙂 ümlaut façade", "x**2 = 3.14159e-10"]
    for line in (EXAMPLES_DIR / "pirate_chat.jsonl").read_text(encoding="utf-8").splitlines():
        texts += [message["content"] for message in json.loads(line)["messages"]]
    assert model.vocab_size() == 32000 and len(texts) > 400
    differ = [t for t in texts if model.encode(t) != reference.encode(t, add_special_tokens=False).ids]
    assert differ == []


def _render_go_template(template: str, **values: str) -> str:
    """Ollama's template language, as much of it as Phi-3's template uses: {{ if .X }}...{{ end }} and {{ .X }}."""
    text = re.sub(
        r"\{\{ if \.(\w+) \}\}(.*?)\{\{ end \}\}", lambda m: m[2] if values.get(m[1]) else "", template, flags=re.S
    )
    return re.sub(r"\{\{ \.(\w+) \}\}", lambda m: values.get(m[1], ""), text)


@pytest.mark.parametrize("system", ["", "You are a pirate. Answer like one."])
def test_the_modelfile_template_writes_what_phi3s_chat_template_writes(phi3_tokenizer, system):
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": "Hi there?"}]
    expected = phi3_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    prompt_part = PHI3_OLLAMA_TEMPLATE.split("{{ .Response }}")[0]  # what Ollama sends before the reply
    assert _render_go_template(prompt_part, System=system, Prompt="Hi there?") == expected
    reply = [*messages, {"role": "assistant", "content": "Ahoy."}]
    whole = phi3_tokenizer.apply_chat_template(reply, tokenize=False)  # ends with the eos the template adds
    rendered = _render_go_template(PHI3_OLLAMA_TEMPLATE, System=system, Prompt="Hi there?", Response="Ahoy.")
    assert rendered + phi3_tokenizer.eos_token == whole


def test_the_modelfile_stops_at_end_of_turn_and_keeps_the_system_prompt():
    text = modelfile("run-q4_K_M.gguf", system_prompt='Talk like a pirate, say """arr"""')
    lines = text.splitlines()
    assert lines[0] == "FROM ./run-q4_K_M.gguf"
    assert 'PARAMETER stop "<|end|>"' in lines and 'PARAMETER stop "<|endoftext|>"' in lines
    assert 'SYSTEM """Talk like a pirate, say \\"\\"\\"arr\\"\\"\\""""' in lines  # its quotes cannot close it early
    assert f'TEMPLATE """{PHI3_OLLAMA_TEMPLATE}"""' in text
    assert "SYSTEM" not in modelfile("run-f16.gguf")  # no system prompt: none invented
    adapter = modelfile("tiny-phi3-f16.gguf", adapter_file="run-lora-f16.gguf").splitlines()
    assert "FROM ./tiny-phi3-f16.gguf" in adapter and "ADAPTER ./run-lora-f16.gguf" in adapter


def test_modelfile_names():
    assert modelfile_name("20250101-run-q4_K_M.gguf") == "Modelfile.q4_K_M"
    assert modelfile_name("20250101-run-lora-f16.gguf") == "Modelfile.lora"
    assert gguf_export.gguf_name("run", "q8_0") == "run-q8_0.gguf"
    assert gguf_export.gguf_name("run", "q8_0", adapter=True) == "run-lora-f16.gguf"


def test_the_converters_release_is_the_locked_one_and_the_types_agree():
    lock = (PROJECT_ROOT / "requirements.txt").read_text()
    assert f"llama-cpp-python=={gguf_tools.LLAMA_CPP_PYTHON}\n" in lock
    assert exports.GGUF_TYPES == gguf_export.GGUF_TYPES
    assert set(gguf_export.GGUF_TYPES) == set(gguf_export.BITS_PER_WEIGHT)
    assert set(gguf_export.GGUF_TYPES) == set(gguf_export.CONVERTER_TYPES) | set(gguf_export.QUANTIZER_FTYPES)


def test_the_estimate_sizes_phi3_mini_as_its_published_ggufs():
    """Microsoft's Phi-3-mini-4k-instruct-gguf: q4 2.39 GB, fp16 7.64 GB; llama.cpp's q8_0 of it: 4.06 GB."""
    from trainer.estimate.memory import model_shape

    params = model_shape("microsoft/Phi-3-mini-4k-instruct").n_params
    sizes = {t: gguf_export.estimate_export(params, t).size_bytes / 1e9 for t in ("q4_K_M", "q8_0", "f16")}
    assert sizes["f16"] == pytest.approx(7.64, abs=0.02)
    assert sizes["q8_0"] == pytest.approx(4.06, abs=0.02)
    assert sizes["q4_K_M"] == pytest.approx(2.39, rel=0.05)
    quantized = gguf_export.estimate_export(params, "q4_K_M")
    assert quantized.seconds > gguf_export.estimate_export(params, "q8_0").seconds  # the quantizer's pass on top
    assert "2.34 GB" in quantized.markdown() and "quantizer" in quantized.markdown()
    adapter = gguf_export.estimate_export(params, "q4_K_M", adapter_params=25_165_824)
    assert (adapter.gguf_type, adapter.size_bytes) == ("f16", 50_331_648)


def test_the_gguf_card_says_how_to_run_it():
    card = gguf_card(
        "alice/pirate-GGUF", "microsoft/Phi-3-mini-4k-instruct", "alice/pirate", [("r-q4_K_M.gguf", 2_390_000_000)]
    )
    front = card.split("---")[1]
    assert "base_model: microsoft/Phi-3-mini-4k-instruct" in front and "- gguf" in front
    assert "| `r-q4_K_M.gguf` | q4_K_M | 2.39 GB |" in card
    assert "llama-cli --hf-repo alice/pirate-GGUF --hf-file r-q4_K_M.gguf" in card
    assert "ollama create my-phi3 -f Modelfile.q4_K_M" in card and "LM Studio" in card
    assert "[alice/pirate](https://huggingface.co/alice/pirate)" in card


def test_a_half_written_export_is_not_listed(tmp_path):
    folder = tmp_path / "gguf"
    (folder / ".work-x").mkdir(parents=True)
    (folder / ".work-x" / "run-f16.gguf").write_bytes(b"partial")
    (folder / "run-q8_0.gguf").write_bytes(b"12345")
    (folder / "Modelfile.q8_0").write_text("FROM ./run-q8_0.gguf")
    assert exports.export_files(tmp_path) == [("run-q8_0.gguf", 5)]


def _sdist(tmp_path, members: dict[str, bytes]):
    path = tmp_path / "sdist.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_only_the_converters_are_unpacked_and_nothing_outside_the_folder(tmp_path):
    prefix = f"llama_cpp_python-{gguf_tools.LLAMA_CPP_PYTHON}/vendor/llama.cpp/"
    archive = _sdist(
        tmp_path,
        {
            prefix + "convert_hf_to_gguf.py": b"converter",
            prefix + "gguf-py/gguf/__init__.py": b"gguf",
            prefix + "src/llama.cpp": b"library source: not needed",
            prefix + "conversion/../../../../escape.py": b"outside",
        },
    )
    gguf_tools.unpack(archive, tmp_path / "tools")
    found = sorted(str(p.relative_to(tmp_path / "tools")) for p in (tmp_path / "tools").rglob("*") if p.is_file())
    assert found == ["convert_hf_to_gguf.py", "gguf-py/gguf/__init__.py"]
    assert not list(tmp_path.rglob("escape.py"))


def test_a_download_with_another_hash_is_refused(tmp_path, monkeypatch):
    def fake_pip(argv, **kwargs):
        folder = argv[argv.index("-d") + 1]
        _sdist(tmp_path, {"x": b"tampered"}).rename(f"{folder}/llama_cpp_python-{gguf_tools.LLAMA_CPP_PYTHON}.tar.gz")
        return type("Done", (), {"returncode": 0, "stdout": "", "stderr": ""})()

    monkeypatch.setattr(gguf_tools.subprocess, "run", fake_pip)
    with pytest.raises(gguf_tools.ToolsMissing, match="not the pinned"):
        gguf_tools.fetch_tools(tmp_path / "tools")
    assert not (tmp_path / "tools").exists()
