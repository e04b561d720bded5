"""GGUF exports of the tiny demo run, proved with real clients, not read back by our own code: llama.cpp itself
(llama-cpp-python's bindings) loads each file and answers the held-out prompts greedily as transformers does with the
trained adapter; transformers' own GGUF loader gives the same logits; the adapter GGUF on top of the base's GGUF
gives the tuned replies.

Needs llama.cpp's converters in the cache (`python -m trainer export-gguf --fetch-tools`; .ci/run fetches them
before the tests, which never go online): a missing tool fails here with that instruction, never skips.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from trainer.gguf import export as gguf_export
from trainer.gguf.tools import llama_cpp_tools

pytestmark = pytest.mark.slow

STOPS = (32007, 32000)  # <|end|>, <|endoftext|>
MAX_NEW = 40


@pytest.fixture(scope="module")
def exported(demo, tmp_path_factory):
    """A copy of the demo run, exported as f16, q8_0 and q4_K_M and as an adapter GGUF; and the base as f16 GGUF."""
    tools = llama_cpp_tools(fetch=False)  # ToolsMissing says how to fetch them
    result, _ = demo
    run_dir = tmp_path_factory.mktemp("gguf") / "demo-run"
    shutil.copytree(result.run_dir, run_dir, ignore=shutil.ignore_patterns("checkpoints"))
    files = {t: gguf_export.export_merged(run_dir, t).gguf for t in ("f16", "q8_0", "q4_K_M")}
    files["adapter"] = gguf_export.export_adapter(run_dir).gguf
    base = tmp_path_factory.mktemp("gguf-base") / "base"
    shutil.copytree(gguf_export.local_model_dir("tiny-phi3"), base)
    shutil.copyfile(gguf_export.tokenizer_model("tiny-phi3"), base / "tokenizer.model")
    gguf_export.convert(tools, base, base / "base-f16.gguf", "f16")
    files["base"] = base / "base-f16.gguf"
    return run_dir, files


@pytest.fixture(scope="module")
def reference(exported):
    """The held-out prompts (as token ids) and transformers' greedy replies: the base with the trained adapter
    (PEFT, fp32: not the merge the export made), and the base alone."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    from trainer.config import load_yaml
    from trainer.modeling import load_base_model

    run_dir, _ = exported
    samples = json.loads((run_dir / "samples.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "adapter")
    prompts = [tokenizer(s["prompt_text"], add_special_tokens=False).input_ids for s in samples]
    model = PeftModel.from_pretrained(load_base_model(load_yaml(run_dir / "config.yaml").model), run_dir / "adapter")

    def greedy(ids):
        out = model.generate(torch.tensor([ids]), max_new_tokens=MAX_NEW, do_sample=False, eos_token_id=list(STOPS))
        return out[0, len(ids) :].tolist()

    tuned = [greedy(p) for p in prompts]
    with model.disable_adapter():
        base = [greedy(p) for p in prompts]
    return prompts, tuned, base, model


def _llama(path, **kwargs):
    import llama_cpp

    return llama_cpp.Llama(str(path), n_ctx=512, verbose=False, seed=0, **kwargs)


def _replies(llm, prompts) -> list[list[int]]:
    """llama.cpp's greedy replies (top-k 1, no repetition penalty) to prompts given as the same token ids."""
    replies = []
    for ids in prompts:
        reply = []
        for token in llm.generate(ids, top_k=1, temp=0.0, repeat_penalty=1.0, reset=True):
            reply.append(token)
            if token in STOPS or len(reply) >= MAX_NEW:
                break
        replies.append(reply)
    llm.close()
    return replies


def test_llama_cpp_answers_as_the_trained_model_at_f16(exported, reference):
    _, files = exported
    prompts, tuned, base, _ = reference
    assert tuned != base  # the adapter changes the replies: a merge without it could not pass
    assert all(reply[-1] == STOPS[0] for reply in tuned)  # each reply ends at <|end|>
    assert _replies(_llama(files["f16"]), prompts) == tuned  # token for token


def test_q8_0_stays_close_and_q4_k_m_still_answers(exported, reference):
    _, files = exported
    prompts, tuned, _, _ = reference
    q8 = _replies(_llama(files["q8_0"]), prompts)
    agree = sum(a == b for got, want in zip(q8, tuned, strict=True) for a, b in zip(got, want, strict=False))
    assert agree >= 0.9 * sum(len(want) for want in tuned)
    q4 = _replies(_llama(files["q4_K_M"]), prompts)
    assert all(reply[-1] in STOPS for reply in q4)
    assert files["q4_K_M"].stat().st_size < 0.6 * files["f16"].stat().st_size


def test_f16_is_written_as_f16_with_phi3s_chat_template(exported, phi3_tokenizer):
    import gguf  # llama.cpp's own GGUF package

    _, files = exported
    reader = gguf.GGUFReader(str(files["f16"]))
    weights = [t for t in reader.tensors if t.name.endswith(".weight") and len(t.shape) == 2]
    assert weights and {t.tensor_type.name for t in weights} == {"F16"}
    llm = _llama(files["f16"])
    assert llm.metadata["general.file_type"] == "1"  # LLAMA_FTYPE_MOSTLY_F16
    assert llm.metadata["tokenizer.chat_template"] == phi3_tokenizer.chat_template
    llm.close()


def test_transformers_gguf_loader_gives_the_trained_logits(exported, reference):
    from transformers import AutoModelForCausalLM

    _, files = exported
    prompts, _, _, model = reference
    loaded = AutoModelForCausalLM.from_pretrained(
        files["f16"].parent, gguf_file=files["f16"].name, dtype=torch.float32
    )
    ids = torch.tensor([prompts[0]])
    with torch.no_grad():
        want, got = model(ids).logits, loaded(ids).logits
    assert (got - want).abs().max().item() < 0.02 * want.abs().max().item()  # f16 rounding only
    assert torch.equal(got[0, -1].argmax(), want[0, -1].argmax())


def test_the_adapter_gguf_on_the_base_gguf_gives_the_tuned_replies(exported, reference):
    _, files = exported
    prompts, tuned, base, _ = reference
    assert _replies(_llama(files["base"], lora_path=str(files["adapter"])), prompts) == tuned
    assert _replies(_llama(files["base"]), prompts) == base


def test_a_failed_conversion_leaves_nothing_and_says_why(exported, monkeypatch):
    run_dir, _ = exported
    before = sorted(p.name for p in (run_dir / "gguf").iterdir())
    monkeypatch.setattr(gguf_export, "tokenizer_model", lambda base, token=None: None)  # no tokenizer.model
    with pytest.raises(gguf_export.ExportError, match=r"convert_hf_to_gguf.py failed: .*tokenizer.model"):
        gguf_export.export_merged(run_dir, "bf16")
    assert sorted(p.name for p in (run_dir / "gguf").iterdir()) == before  # no file, no work folder


def test_the_cli_exports_and_says_where(exported):
    from tests.cli import run_cli

    run_dir, _ = exported
    done = run_cli("export-gguf", str(run_dir), "--type", "bf16")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    path = run_dir / "gguf" / f"{run_dir.name}-bf16.gguf"
    assert f"wrote {path}" in done.stdout and (run_dir / "gguf" / "Modelfile.bf16").is_file()
    assert f"ollama create my-phi3 -f {run_dir / 'gguf' / 'Modelfile.bf16'}" in done.stdout


def test_an_export_job_runs_the_worker_and_lists_its_file(exported, tmp_path):
    """The Runs tab's path: RunService.exports queues a job; its worker (`export-gguf RUN --request`) writes the file,
    the phases and the final state into the run's gguf/ folder."""
    import time

    from trainer.runs.queue import JobStore, RunQueue
    from trainer.runs.service import RunService
    from trainer.runs.state import FINISHED

    run_dir, _ = exported
    service = RunService(RunQueue(JobStore(tmp_path / "jobs.sqlite")))
    who = service.caller(None, None)  # the local user
    run = service.queue.store.create(run_dir, name="demo", owner=None)
    service.queue.store.update(run.id, status="succeeded")
    job = service.exports.start(who, run.id, "q5_K_M")
    end = time.time() + 180
    while service.queue.store.get(job.id).status not in FINISHED and time.time() < end:
        time.sleep(0.2)
    done = service.queue.store.get(job.id)
    log = (run_dir / "gguf" / "log.txt").read_text()
    assert done.status == "succeeded", log[-3000:]
    assert "merging ..." in log and "converting ..." in log and "quantizing ..." in log
    view = service.exports.view(who, service.find(who, run.id))
    assert view.status["state"] == "succeeded" and view.status["file"] == f"{run_dir.name}-q5_K_M.gguf"
    assert view.files[0][0] == f"{run_dir.name}-q5_K_M.gguf"
