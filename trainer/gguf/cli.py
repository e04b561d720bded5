"""`python -m trainer export-gguf`: a trained run as GGUF for llama.cpp, Ollama and LM Studio (and the export job's
worker, with --request: the settings the Runs tab queued in RUN/gguf/request.json)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from trainer.gguf.export import ADAPTER_TYPE, GGUF_TYPES

EXAMPLE = "python -m trainer export-gguf runs/20250101-120000-run --type q4_K_M"


def add_command(sub) -> None:
    """The export-gguf command."""
    parser = sub.add_parser(
        "export-gguf",
        help="a trained run as GGUF (llama.cpp, Ollama, LM Studio), with an Ollama Modelfile",
        description="Merge the run's adapter into its base and convert it with llama.cpp's own converter (and "
        "quantizer, for the K-quants) into RUN/gguf/<run>-<type>.gguf, with an Ollama Modelfile beside it; or the "
        "adapter alone (--adapter) for llama.cpp's --lora and Ollama's ADAPTER. llama.cpp's converters come from "
        f"llama-cpp-python's source distribution on PyPI, fetched on first use. Example: {EXAMPLE}",
    )
    parser.add_argument("run", type=Path, nargs="?", help="the run folder of a trained run")
    parser.add_argument("--type", default="q4_K_M", choices=GGUF_TYPES, help="the GGUF type (default: q4_K_M)")
    parser.add_argument("--adapter", action="store_true", help=f"the adapter alone, as a GGUF LoRA ({ADAPTER_TYPE})")
    parser.add_argument(
        "--push", metavar="REPO", help="then upload it to REPO (e.g. you/phi3-pirate-GGUF) with a card"
    )
    parser.add_argument("--alongside", action="store_true", help="with --push: into REPO's gguf/ folder, no new card")
    parser.add_argument("--public", action="store_true", help="with --push: create the repo as public")
    parser.add_argument("--request", action="store_true", help="read the settings from RUN/gguf/request.json")
    parser.add_argument("--fetch-tools", action="store_true", help="fetch llama.cpp's converters (then export RUN)")


def command(args: argparse.Namespace) -> int:
    """Export (and push); print where the files are. Exit 0, or 1 with the reason."""
    from trainer.errors import EXIT_CANCELLED
    from trainer.gguf.export import ExportError, export_adapter, export_merged
    from trainer.gguf.tools import ToolsMissing, llama_cpp_tools
    from trainer.hub import HubError, resolve_token
    from trainer.runs import folder as rf
    from trainer.runs.processes import on_term
    from trainer.runs.state import RunState

    def cancelled(signum, frame):  # Cancel: the work folder is removed on the way out, nothing half-written stays
        raise SystemExit(EXIT_CANCELLED)

    on_term(cancelled)
    if args.fetch_tools:
        print(f"llama.cpp's converters: {llama_cpp_tools().root}", flush=True)
        if args.run is None:
            return 0
    if args.run is None:
        raise SystemExit(f"give the run folder to export, e.g. {EXAMPLE}")
    folder = args.run / rf.GGUF_DIR
    request = _request(args, folder)
    phase = _phases(folder) if args.request else (lambda name: print(f"{name} ...", flush=True))
    token = resolve_token()
    try:
        if not _tools_here():
            phase("fetching llama.cpp's tools")
        if request["adapter"]:
            result = export_adapter(args.run, token=token, on_phase=phase)
        else:
            result = export_merged(args.run, request["type"], token=token, on_phase=phase)
        print(
            f"wrote {result.gguf} ({result.gguf.stat().st_size / 1e6:.1f} MB) and {result.modelfile.name} "
            f"in {result.seconds:.0f} s",
            flush=True,
        )
        if request["push"] != "none":
            url = _push(args.run, result.gguf.name, request, token, not args.public)
            print(f"pushed to {url}", flush=True)
    except (ExportError, ToolsMissing, HubError) as exc:
        print(f"error: {exc}", flush=True)
        if args.request:
            rf.write_status(folder, RunState.FAILED, error=str(exc))
        return 1
    if args.request:
        rf.write_status(folder, RunState.SUCCEEDED, phase=None, file=result.gguf.name, error=None)
    how = f"--lora {result.gguf} -m <the base model as GGUF>" if request["adapter"] else f"-m {result.gguf}"
    print(f"run it: ollama create my-phi3 -f {result.modelfile}  (or llama-cli {how} -cnv)")
    return 0


def _tools_here() -> bool:
    from trainer.gguf.tools import LlamaCppTools, tools_dir

    return LlamaCppTools(tools_dir()).complete()


def _request(args: argparse.Namespace, folder: Path) -> dict:
    """What to make: the queued request (--request), else the flags."""
    from trainer.runs import folder as rf

    if args.request:
        return json.loads((folder / rf.REQUEST_FILE).read_text(encoding="utf-8"))
    where = "none" if not args.push else "alongside" if args.alongside else "separate"
    return {"type": args.type, "adapter": args.adapter, "push": where, "repo_id": args.push or ""}


def _phases(folder: Path):
    from trainer.runs import folder as rf

    def phase(name: str) -> None:
        print(f"{name} ...", flush=True)
        rf.set_phase(folder, name)

    return phase


def _push(run_dir: Path, name: str, request: dict, token, private: bool) -> str:
    from trainer.config import load_yaml
    from trainer.gguf.push import push_gguf
    from trainer.runs import folder as rf

    alongside = request["push"] == "alongside"
    repo_id = request["repo_id"]
    if alongside and not repo_id:  # beside the adapter: its repo
        repo_id = load_yaml(run_dir / rf.CONFIG_FILE).hub.repo_id
    return push_gguf(run_dir, [name], repo_id, token, alongside=alongside, private=private)


COMMANDS = {"export-gguf": command}
