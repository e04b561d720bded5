"""Pushing a run's GGUF exports to the Hub: to `<repo>-GGUF` with a card of their own (how to run them with
llama.cpp, Ollama and LM Studio; tags gguf and the base model), or alongside the adapter in its repo's `gguf/`."""

from __future__ import annotations

from pathlib import Path

from trainer.gguf.modelfile import gguf_card, modelfile_name
from trainer.hub.auth import check_push_access
from trainer.hub.card import MODEL_CARD_FILE
from trainer.hub.push import create_and_commit
from trainer.hub.retry import hub_error
from trainer.runs import folder as rf


def push_gguf(
    run_dir: Path,
    names: list[str],
    repo_id: str,
    token: str,
    alongside: bool = False,
    private: bool = True,
    retries: int = 4,
    backoff_s: float = 1.0,
) -> str:
    """Upload the run's exports `names` (files of `<run>/gguf/`) and their Modelfiles in one commit.

    Args:
        run_dir: the run folder.
        names: .gguf file names in its gguf/ folder.
        repo_id: the target repo: a GGUF repo of its own, or (alongside) the adapter's repo.
        token: a write token (never logged or stored).
        alongside: put them in the repo's `gguf/` folder and leave its card alone; else at the root, with a card.

    Returns:
        The repo's URL.

    Raises:
        HubError: no access, or the Hub kept failing (the files stay in the run folder).
    """
    from trainer.config import load_yaml

    folder = Path(run_dir) / rf.GGUF_DIR
    prefix = "gguf/" if alongside else ""
    files: list[tuple[str, Path | bytes]] = []
    for name in names:
        files.append((prefix + name, folder / name))
        if (folder / modelfile_name(name)).is_file():
            files.append((prefix + modelfile_name(name), folder / modelfile_name(name)))
    if not alongside:
        config = load_yaml(Path(run_dir) / rf.CONFIG_FILE)
        sizes = [(name, (folder / name).stat().st_size) for name in names]
        card = gguf_card(repo_id, config.model.model_name_or_path, config.hub.repo_id or None, sizes)
        files.append((MODEL_CARD_FILE, card.encode("utf-8")))
    try:
        check_push_access(repo_id, token, retries, backoff_s)
        url, _ = create_and_commit(
            repo_id,
            files,
            token,
            private,
            f"Upload GGUF ({', '.join(names)}) from run {Path(run_dir).name}",
            "Converted with llama.cpp's convert_hf_to_gguf.py by Phi-3 Fine-Tune Studio.",
            retries,
            backoff_s,
        )
    except Exception as exc:
        raise hub_error(exc, token, f"pushing GGUF files to {repo_id!r}") from None
    return url
