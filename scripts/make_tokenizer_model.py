"""Write Phi-3's SentencePiece `tokenizer.model` for the bundled offline tokenizer (trainer/assets/phi3-tokenizer/).

llama.cpp's converter reads a Phi-3 vocabulary from `tokenizer.model` (SentencePiece), which the bundled folder,
copied from `tokenizer.json`, lacked. This writes one from the same vocabulary as llama.cpp itself ships it:
`models/ggml-vocab-phi-3.gguf` in llama.cpp's tree (carried by llama-cpp-python's source distribution), whose
pieces, scores and token types are those of the real `tokenizer.model` of microsoft/Phi-3-mini-4k-instruct.
tests/unit/test_gguf_parts.py checks it token for token against tokenizer.json.

    python scripts/make_tokenizer_model.py [PATH/TO/ggml-vocab-phi-3.gguf]   # default: from the llama.cpp tools

Only the SentencePiece part (ids 0-31999) goes in: the added tokens (<|endoftext|>, <|user|>, ...) live in
tokenizer.json and tokenizer_config.json, where transformers and the converter read them.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SP_PIECES = 32000  # the SentencePiece model's own vocabulary; the ids above are added tokens


def sentencepiece_model(vocab_gguf: Path) -> bytes:
    """A serialized SentencePiece ModelProto (BPE, byte fallback, Llama's normalizer) of the GGUF's first 32000
    tokens, with their scores and types."""
    import gguf
    from sentencepiece import sentencepiece_model_pb2 as sp

    reader = gguf.GGUFReader(str(vocab_gguf))

    def values(name: str) -> list:  # a GGUF array field's items, each as its raw part
        return [reader.fields[name].parts[i] for i in reader.fields[name].data]

    tokens = [bytes(part).decode("utf-8") for part in values("tokenizer.ggml.tokens")]
    scores = [float(part[0]) for part in values("tokenizer.ggml.scores")]
    types = [int(part[0]) for part in values("tokenizer.ggml.token_type")]
    model = sp.ModelProto()
    for piece, score, kind in list(zip(tokens, scores, types, strict=True))[:SP_PIECES]:
        # llama.cpp's token types are SentencePiece's: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
        model.pieces.add(piece=piece, score=score, type=kind)
    spec = model.trainer_spec
    spec.model_type = sp.TrainerSpec.BPE
    spec.vocab_size = SP_PIECES
    spec.byte_fallback = True
    spec.unk_id, spec.bos_id, spec.eos_id, spec.pad_id = 0, 1, 2, -1
    normalizer = model.normalizer_spec
    normalizer.name = "identity"
    normalizer.add_dummy_prefix = True
    normalizer.remove_extra_whitespaces = False
    normalizer.escape_whitespaces = True
    return model.SerializeToString()


def main(argv: list[str]) -> int:
    if argv:
        vocab = Path(argv[0])
    else:
        from trainer.gguf.tools import llama_cpp_tools

        vocab = llama_cpp_tools().vocab("phi-3")
    out = ROOT / "trainer" / "assets" / "phi3-tokenizer" / "tokenizer.model"
    out.write_bytes(sentencepiece_model(vocab))
    print(f"wrote {out} ({out.stat().st_size:,} bytes) from {vocab}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
