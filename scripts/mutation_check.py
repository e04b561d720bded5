"""Break the product on purpose, one realistic mutation at a time, and check that the tests notice.

Each mutation is a small patch (an exact snippet and its replacement) of the project's most important behaviour,
with the test files that should catch it. The check copies the project (what git tracks, plus untracked files git
does not ignore) into a temporary folder ONCE, applies each patch there in turn, runs those tests, and restores the
file. The working tree is never touched.

    python scripts/mutation_check.py              # all of them (about 15 minutes on 2 cores)
    python scripts/mutation_check.py --list       # names only
    python scripts/mutation_check.py -k adapter   # those whose name contains "adapter"

It prints CAUGHT or SURVIVED per mutation and exits non-zero if any survived, or if a patch no longer applies to
the code (the code moved: update the mutation, never drop it silently).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    old: str
    new: str
    tests: str  # pytest arguments: files, and -k where a file has many slow tests


def _m(name: str, file: str, old: str, new: str, tests: str) -> Mutation:
    return Mutation(name, file, old, new, tests)


MUTATIONS = [
    # --- the six survivors that issue 17 listed
    _m(
        "the two-pass chat fallback runs the tuned pass with the adapter disabled",
        "trainer/chat.py",
        "        self.model.set_adapter(adapter)\n"
        "        for tuned_reply, _ in self._stream(rows[1:], None, settings, stop):",
        "        self.model.set_adapter(adapter)\n"
        "        with self.model.disable_adapter():\n"
        "          for tuned_reply, _ in self._stream(rows[1:], None, settings, stop):",
        "tests/integration/test_chat.py",
    ),
    _m(
        "run-folder writes are made in place, not by rename",
        "trainer/runfolder.py",
        "        os.replace(tmp, path)",
        "        Path(tmp).unlink()\n        path.write_bytes(data)",
        "tests/unit/test_runfolder.py",
    ),
    _m(
        "the Runs refresh shows every user's runs to a signed-in user",
        "trainer/access.py",
        "    return jobs if caller.local or caller.admin else [job for job in jobs if job.owner == caller.name]",
        "    return jobs",
        "tests/security/test_users.py",
    ),
    _m(
        "packing is ignored when the trainer is built",
        "trainer/training.py",
        "        padding_free=padding_free,\n",
        "        padding_free=padding_free,\n        packing=False,\n",
        "tests/integration/test_batches.py tests/unit/test_sft_config.py",
    ),
    _m(
        "padding-free batches are switched off",
        "trainer/training.py",
        "    padding_free = t.padding_free and not t.packing\n",
        "    padding_free = False\n",
        "tests/integration/test_batches.py",
    ),
    _m(
        "the model card's usage snippet never applies the adapter",
        "trainer/hub/model_card.md",
        "model = PeftModel.from_pretrained(model, adapter_id).eval()",
        "model = model.eval()",
        "tests/unit/test_card.py tests/integration/test_card_snippet.py",
    ),
    # --- the Phi-3 recipe
    _m(
        "the pad token is the stop token",
        "trainer/modeling.py",
        "    tokenizer.pad_token = cfg.pad_token\n",
        "    tokenizer.pad_token = tokenizer.eos_token\n",
        "tests/unit/test_modeling.py",
    ),
    _m(
        "assistant-only loss is off",
        "trainer/training.py",
        "        padding_free=padding_free,\n",
        "        padding_free=padding_free,\n        assistant_only_loss=False,\n",
        "tests/unit/test_sft_config.py tests/integration/test_training.py -k labels_mask",
    ),
    _m(
        "the full model is saved instead of the adapter",
        "trainer/training.py",
        "    trainer.save_model(str(adapter_dir))",
        "    trainer.model.base_model.model.save_pretrained(adapter_dir, safe_serialization=True)",
        "tests/integration/test_training.py -k saved_adapter",
    ),
    _m(
        "a cancel stops without a checkpoint",
        "trainer/callbacks.py",
        "                control.should_save = True\n",
        "                pass\n",
        "tests/integration/test_training.py -k stop_request",
    ),
    _m(
        "the Alpaca input column is dropped",
        "trainer/data/formats.py",
        'instruction = instruction + "\\n\\n" + extra if',
        "instruction = instruction if",
        "tests/unit/test_data.py",
    ),
    _m(
        "a column mapping without an assistant column is accepted",
        "trainer/config/rules.py",
        '    elif not {"assistant", CONVERSATION_ROLE} & set(mapping.values()):',
        "    elif False:",
        "tests/unit/test_data.py tests/unit/test_config.py",
    ),
    _m(
        "presets are not read from their files",
        "trainer/config/loading.py",
        '        presets[path.stem] = (header["description"].strip(), read_yaml_dict(path))',
        '        presets[path.stem] = (header["description"].strip(), {})',
        "tests/unit/test_config.py",
    ),
    # --- the Hub and secrets
    _m(
        "the push permission check lets any namespace through",
        "trainer/hub/auth.py",
        "    if namespace == user:\n",
        "    if True:\n",
        "tests/hub/test_hub.py -k refused",
    ),
    _m(
        "the token is written to the run folder",
        "trainer/training.py",
        "        push_state=None,  # an earlier attempt's push is over\n",
        "        push_state=None,  # an earlier attempt's push is over\n        token=token,\n",
        "tests/hub/test_hub.py -k dataset_by_id",
    ),
    _m(
        "the repo-ID rule is skipped",
        "trainer/config/rules.py",
        "    if reason is None and not REPO_ID_RE.match(repo_id):",
        "    if False:",
        "tests/unit/test_config.py",
    ),
    _m(
        "the merged card shows a loss curve its repo does not have",
        "trainer/hub/model_card.md",
        "{% if not merged %}\n![Train and eval loss]",
        "{% if True %}\n![Train and eval loss]",
        "tests/unit/test_card.py",
    ),
    _m(
        "checkpoint uploads block the training step",
        "trainer/hub/push.py",
        "        with self._state:\n            superseded, self._waiting = self._waiting, staging",
        "        self._push(staging, self.repo_id, self.token, private=self.private)\n"
        "        with self._state:\n            superseded, self._waiting = self._waiting, staging",
        "tests/unit/test_checkpoint_uploader.py tests/hub/test_checkpoint_push.py -k slow_hub",
    ),
    _m(
        "checkpoint uploads read the folder the Trainer may delete",
        "trainer/hub/push.py",
        "                    shutil.copy2(checkpoint_dir / name, staging / name)",
        "                    pass",
        "tests/unit/test_checkpoint_uploader.py",
    ),
    _m(
        "training ends without waiting for its checkpoint uploads",
        "trainer/callbacks.py",
        "            if not uploader.wait(CANCEL_UPLOAD_WAIT_S if _STOP.is_set() else None):",
        "            if not True:",
        "tests/hub/test_checkpoint_push.py -k slow_hub",
    ),
    _m(
        "hf-xet network errors are not retried",
        "trainer/hub/retry.py",
        "    return type(exc) is RuntimeError and bool(XET_TRANSIENT.search(str(exc)))",
        "    return False",
        "tests/hub/test_hub.py -k classification",
    ),
    # --- data loading
    _m(
        "a Hub preview downloads the whole split",
        "trainer/data/load.py",
        "        if limit is None:\n"
        "            return datasets.load_dataset(name, cfg.dataset_config, split=split, token=token)",
        "        if True:\n"
        "            return datasets.load_dataset(name, cfg.dataset_config, split=split, token=token)",
        "tests/hub/test_streaming.py",
    ),
    _m(
        "a streamed file that does not parse escapes as a raw error",
        "trainer/data/load.py",
        "    except Exception as exc:  # a file that does not parse",
        "    except KeyError as exc:  # a file that does not parse",
        "tests/unit/test_data.py",
    ),
    _m(
        "over-long padding-free rows are not cut",
        "trainer/training.py",
        "        if max(lengths, default=0) <= max_length:",
        "        if True:",
        "tests/integration/test_long_rows.py",
    ),
    # --- models and parameters
    _m(
        "4-bit weights are counted at half their size",
        "trainer/training.py",
        "    return PeftModel.get_nb_trainable_parameters(model)",
        "    params = list(model.parameters())\n"
        "    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)",
        "tests/integration/test_qlora_loading.py",
    ),
    _m(
        "QLoRA forces gradient checkpointing on",
        "trainer/modeling.py",
        "        set_checkpointing(model, gradient_checkpointing)",
        "        set_checkpointing(model, True)",
        "tests/integration/test_qlora_loading.py",
    ),
    _m(
        "flash attention is never picked",
        "trainer/modeling.py",
        "    if on_gpu and dtype in (torch.bfloat16, torch.float16) and is_flash_attn_2_available():",
        "    if False:",
        "tests/unit/test_modeling.py",
    ),
    # --- front ends
    _m(
        "CLI errors name settings instead of flags",
        "trainer/config/hints.py",
        '            return f"pass {cli_flags(key, value)}"',
        "            return match.group(0)",
        "tests/unit/test_hints.py tests/unit/test_cli.py",
    ),
    _m(
        "the web form shows CLI flags in its errors",
        "trainer/ui/form.py",
        "{render_hints(text, 'ui', plain=True)}\")",
        "{render_hints(text, 'cli', plain=True)}\")",
        "tests/unit/test_hints.py",
    ),
    _m(
        "the cancel's SIGKILL timer keeps the process alive",
        "trainer/jobs.py",
        "                timer.daemon = True",
        "                timer.daemon = False",
        "tests/unit/test_jobs.py -k cancel_a_running",
    ),
    _m(
        "two servers can both start a job",
        "trainer/jobstore.py",
        "                if db.execute(\"SELECT 1 FROM jobs WHERE status = 'running' AND backend = 'local'\")"
        ".fetchone():",
        "                if False:",
        "tests/unit/test_jobs.py -k racing",
    ),
    # --- the security model (issue 12)
    _m(
        "a run is found by id without checking its owner",
        "trainer/access.py",
        "    if job is None or not caller.may_see(job):",
        "    if job is None:",
        "tests/security/test_users.py",
    ),
    _m(
        "a signed-out visitor acts with the Space's own token",
        "trainer/access.py",
        "    if not username:\n        return Caller(name=None, token=None)",
        "    if not username:\n        from trainer.hub import resolve_token\n\n"
        "        return Caller(name=None, token=resolve_token())",
        "tests/security/test_visitor.py tests/security/test_modes.py",
    ),
    _m(
        "a signed-out visitor counts as signed in",
        "trainer/access.py",
        "        return self.local or self.name is not None",
        "        return True",
        "tests/security/test_visitor.py",
    ),
    _m(
        "a run on a Space may name any file on the server",
        "trainer/access.py",
        "    if caller.local:\n        return None\n    problem = (",
        "    if True:\n        return None\n    problem = (",
        "tests/security/test_users.py",
    ),
    _m(
        "Compare loads a path typed into the repo field",
        "trainer/ui/compare_tab.py",
        "        if Path(repo).expanduser().exists():",
        "        if False:",
        "tests/security/test_users.py -k typed_path",
    ),
    _m(
        "the app listens on every interface by default",
        "trainer/ui/app.py",
        'server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),',
        'server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),',
        "tests/security/test_modes.py",
    ),
    _m(
        "the data dir is served by path",
        "trainer/ui/app.py",
        "        css=CSS,\n",
        "        css=CSS,\n        allowed_paths=[str(manager.store.path.parent)],\n",
        "tests/security/test_modes.py",
    ),
    _m(
        "the per-user run limit is not checked",
        "trainer/jobs.py",
        "        if owner is None or self.limits.active_runs is None:\n            return",
        "        if True:\n            return",
        "tests/security/test_users.py -k limited",
    ),
    _m(
        "a restart marks a run that finished while the server was down as failed",
        "trainer/jobs.py",
        "            code = recorded_exit(Path(job.run_dir))\n",
        "            code = None\n",
        "tests/security/test_nothing_lost.py",
    ),
    _m(
        "a queued run starts without its owner's token after a restart",
        "trainer/jobstore.py",
        '                    if not r["needs_token"] or r["id"] in with_token',
        "                    if True",
        "tests/security/test_nothing_lost.py",
    ),
    _m(
        "the pushed config names the server path of the dataset",
        "trainer/hub/card.py",
        '        data["dataset_name"] = Path(name).name',
        "        pass",
        "tests/security/test_validation.py",
    ),
    _m(
        "the CLI trains over an existing run without --resume",
        "trainer/__main__.py",
        "    if args.run_dir is not None and not args.resume and _holds_a_run(args.run_dir):",
        "    if False:",
        "tests/security/test_nothing_lost.py -k resume",
    ),
    # --- issue 14: a newcomer's first hour
    _m(
        "an untouched optional number (Max rows) reaches the config as 0",
        "trainer/ui/form.py",
        "        if key in specs and _unset_number(specs[key], value):\n            value = None\n",
        "",
        "tests/unit/test_form.py",
    ),
    _m(
        "an error inside Advanced settings leaves the section closed",
        "trainer/ui/form.py",
        "    return not advanced_keys().isdisjoint(problems_by_key(problems))",
        "    return False",
        "tests/unit/test_form.py tests/unit/test_ui_handlers.py",
    ),
    _m(
        "the progress bar ignores the run's phase",
        "trainer/ui/runs_tab.py",
        '    return status.get("phase") if status.get("phase") in rf.PHASES else "starting"',
        '    return "starting"',
        "tests/unit/test_ui.py",
    ),
    _m(
        "the worker does not say it is loading the model",
        "trainer/training.py",
        '    phase("loading the model")\n',
        "",
        "tests/integration/test_training.py -k phase",
    ),
    _m(
        "samples keep the raw <|end|> marker",
        "trainer/samples.py",
        "tokenizer.decode(new, skip_special_tokens=True)",
        "tokenizer.decode(new, skip_special_tokens=False)",
        "tests/integration/test_training.py -k persona",
    ),
    _m(
        "resume overwrites the run's first start time (job table)",
        "trainer/jobstore.py",
        "started_at = COALESCE(started_at, ?)",
        "started_at = ?",
        "tests/unit/test_jobs.py -k resume_requeues",
    ),
    _m(
        "resume overwrites the run's first start time (status.json)",
        "trainer/training.py",
        "started_at=earlier or time.time()",
        "started_at=time.time()",
        "tests/integration/test_training.py -k resume_continues",
    ),
    _m(
        "a run's chosen name is ignored",
        "trainer/config/schema.py",
        "        if self.run.name.strip():\n            return self.run.name.strip()\n",
        "",
        "tests/security/test_users.py -k named",
    ),
    _m(
        "runs started with the CLI are not listed",
        "trainer/ui/runs_tab.py",
        "    manager.adopt_runs()  # one stat when nothing changed\n",
        "",
        "tests/unit/test_ui_handlers.py -k cli",
    ),
    _m(
        "a CLI run that leads no process group cannot be cancelled",
        "trainer/workers.py",
        "        if os.getpgid(pid) == pid:",
        "        if True:",
        "tests/unit/test_jobs.py -k process_group",
    ),
    _m(
        "Start leaves the Runs tab on the previous run",
        "trainer/ui/train_tab.py",
        "selected = runs_tab.picker_update(ctx.manager, who, str(job.id))",
        "selected = gr.skip()",
        "tests/security/test_users.py -k queued_for_its_owner",
    ),
    _m(
        "Chat with this run skips the owner check",
        "trainer/ui/runs_tab.py",
        "            job = find_job(manager.store, who, job_id)\n        except AccessError as exc:",
        "            job = manager.store.get(int(job_id))\n        except AccessError as exc:",
        "tests/security/test_users.py -k chat_with",
    ),
    _m(
        "comparing runs skips the owner check",
        "trainer/ui/run_overlay.py",
        "    jobs = [find_job(manager.store, who, run_id) for run_id in dict.fromkeys(run_ids or [])]",
        "    jobs = [manager.store.get(int(run_id)) for run_id in dict.fromkeys(run_ids or [])]",
        "tests/unit/test_run_overlay.py",
    ),
    _m(
        "one session's Stop stops every session's generation",
        "trainer/chat.py",
        "            return self._stops.setdefault(session, threading.Event())",
        "            return self._stops.setdefault('', threading.Event())",
        "tests/unit/test_compare_tab.py",
    ),
    _m(
        "a refused Compare request leaves error badges on the panes",
        "trainer/ui/compare_tab.py",
        "            gr.Warning(str(exc))\n            yield gr.skip(), gr.skip(), gr.skip()\n",
        "            raise gr.Error(str(exc))\n",
        "tests/unit/test_compare_tab.py -k refused",
    ),
    _m(
        "the app writes its data into the checkout itself",
        "trainer/runfolder.py",
        "    return LOCAL_DATA_DIR\n",
        "    return PROJECT_ROOT\n",
        "tests/unit/test_runfolder.py",
    ),
    _m(
        "Cancel signals whatever process now has a dead worker's pid",
        "trainer/workers.py",
        "    return started is not None and (start is None or started == start)",
        "    return True",
        "tests/unit/test_jobs.py -k 'reused_pid or now_names_another'",
    ),
    _m(
        "a server folder is accepted as the base model on a Space",
        "trainer/access.py",
        "    if caller.local or name == TINY_MODEL_NAME:",
        "    if True:",
        "tests/security/test_visitor.py -k base_model",
    ),
    _m(
        "Preview reads the Hub with the Space's own token",
        "trainer/access.py",
        "    return caller.token or (None if caller.local else False)",
        "    return caller.token",
        "tests/security/test_visitor.py -k space_s_token",
    ),
    _m(
        "a run name renders as Markdown (links, images, headings)",
        "trainer/ui/context.py",
        '    return MARKDOWN_SPECIALS.sub(r"\\\\\\1", html.escape(str(text), quote=False)).replace("\\n", " ")',
        '    return html.escape(str(text), quote=False).replace("\\n", " ")',
        "tests/unit/test_ui.py -k shown_as_text",
    ),
    # --- issue 15: every dataset shape handled or refused clearly
    _m(
        "KTO rows labelled undesirable are trained on",
        "trainer/data/formats.py",
        '        if kto and row["label"] is False:',
        "        if False:",
        "tests/unit/test_shapes.py -k kto",
    ),
    _m(
        "a ShareGPT tool result is trained on as an assistant reply",
        "trainer/data/shapes.py",
        '        return {"role": "user", "content": response_text(content_text(value, index))}',
        '        return {"role": "assistant", "content": response_text(content_text(value, index))}',
        "tests/unit/test_shapes.py -k sharegpt_tool",
    ),
    _m(
        "ShareGPT rows with a function call are dropped as malformed",
        "trainer/data/shapes.py",
        '    if speaker == "function_call":',
        '    if speaker == "function_call" and False:',
        "tests/unit/test_shapes.py -k sharegpt_tool",
    ),
    _m(
        "the tools column is ignored",
        "trainer/data/shapes.py",
        "    block = tools_text(tools)\n    if not block:",
        "    block = tools_text(tools)\n    if True:",
        "tests/unit/test_shapes.py -k tool",
    ),
    _m(
        "OpenAI tool results stay separate turns",
        "trainer/data/formats.py",
        '    messages = with_tools(merge_tool_responses(messages), row.get("tools"))',
        '    messages = with_tools(messages, row.get("tools"))',
        "tests/unit/test_shapes.py -k openai",
    ),
    _m(
        "an image content part is read as text",
        "trainer/data/shapes.py",
        "            if kind in MEDIA_PARTS:",
        "            if False:",
        "tests/unit/test_shapes.py -k content_parts",
    ),
    _m(
        "an images column is ignored",
        "trainer/data/formats.py",
        "    if media := media_columns(columns):",
        "    if media := []:",
        "tests/unit/test_shapes.py -k multimodal",
    ),
    _m(
        "any share of malformed rows trains without a word",
        "trainer/data/quality.py",
        "    if allow or bad <= MAX_MALFORMED_SHARE * data.n_input:",
        "    if True:",
        "tests/unit/test_shapes.py tests/unit/test_data.py -k 'five_percent or prepare_reports'",
    ),
    _m(
        "placeholder values are not filled in",
        "trainer/data/formats.py",
        "    if placeholders:\n",
        "    if False:\n",
        "tests/unit/test_shapes.py -k template_slots",
    ),
    _m(
        "preference data trains on the rejected reply",
        "trainer/data/formats.py",
        '        messages = _preference(row.get("prompt"), _get(row, "chosen"))',
        '        messages = _preference(row.get("prompt"), _get(row, "rejected"))',
        "tests/unit/test_data.py -k preference",
    ),
    _m(
        "exact duplicates are not counted",
        "trainer/data/quality.py",
        "        if key in seen:",
        "        if False:",
        "tests/unit/test_shapes.py -k quality_report",
    ),
    _m(
        "a column holding conversations is suggested as user/assistant text",
        "trainer/config/rules.py",
        "            return {name: CONVERSATION_ROLE}",
        "            break",
        "tests/unit/test_suggestions.py",
    ),
    # --- issue 16 item 3: Hugging Face Jobs
    _m(
        "the user's token goes to a job as an environment variable, not a secret",
        "trainer/hfjobs.py",
        '            env={CONFIG_ENV: config.to_yaml(), EVENTS_ENV: "1", "PYTHONUNBUFFERED": "1"},',
        '            env={CONFIG_ENV: config.to_yaml(), EVENTS_ENV: "1", "PYTHONUNBUFFERED": "1", "HF_TOKEN": token},',
        "tests/hub/test_hf_jobs.py -k train_and_push",
    ),
    _m(
        "a Hugging Face Job blocks this machine's queue",
        "trainer/jobstore.py",
        "SELECT 1 FROM jobs WHERE status = 'running' AND backend = 'local'",
        "SELECT 1 FROM jobs WHERE status = 'running'",
        "tests/unit/test_jobs.py -k hf_jobs",
    ),
    _m(
        "a Hugging Face Job starts without a signed-in owner's token",
        "trainer/jobs.py",
        "        if flavor and not (owner and token):",
        "        if False:",
        "tests/unit/test_jobs.py -k hf_jobs_cancel",
    ),
    _m(
        "the Jobs hardware list is read with the Space's own token",
        "trainer/ui/train_tab.py",
        "HfJobsBackend().flavors(False)",
        "HfJobsBackend().flavors(None)",
        "tests/security/test_run_on_jobs.py",
    ),
    _m(
        "a ZeroGPU Space trains in the background anyway",
        "trainer/hfjobs.py",
        "    if zero_gpu:",
        "    if False:",
        "tests/security/test_run_on_jobs.py",
    ),
    _m(
        "a job's events are not copied into its run folder",
        "trainer/hfjobs.py",
        '    rf.write_text_atomic(run_dir / rf.EVENTS_FILE, "".join(json.dumps(e) + "\\n" for e in events))',
        "",
        "tests/unit/test_jobs.py -k hf_jobs",
    ),
    _m(
        "after a restart a returning owner's Hugging Face Job is never followed again",
        "trainer/jobs.py",
        "follow_remote(self.store, self._jobs(), job_id",
        "follow_remote(self.store, self.remote, job_id",
        "tests/unit/test_jobs.py -k restart",
    ),
    # --- issue 13: QLoRA on the CPU, the GPU check
    _m(
        "a training 4-bit model is left open to the AVX512-BF16 inference repack (wrong LoRA gradients)",
        "trainer/modeling.py",
        "        keep_4bit_weights_trainable(model)\n",
        "",
        "tests/integration/test_qlora_cpu.py -k gradients",
    ),
    _m(
        "the model goes to GPU 0 whatever the process's local rank",
        "trainer/modeling.py",
        '    return f"cuda:{int(os.environ.get(\'LOCAL_RANK\', 0))}" if cuda_available() else "cpu"',
        '    return "cuda:0" if cuda_available() else "cpu"',
        "tests/unit/test_modeling.py -k own_device",
    ),
    _m(
        "QLoRA is refused without a CUDA GPU again",
        "trainer/modeling.py",
        '    if cfg.load_in_4bit and importlib.util.find_spec("bitsandbytes") is None:  # CUDA or its CPU backend',
        '    if cfg.load_in_4bit and (importlib.util.find_spec("bitsandbytes") is None or not cuda_available()):',
        "tests/unit/test_modeling.py tests/unit/test_form.py",
    ),
    _m(
        "the chat of a QLoRA run on a CPU loads its base in full precision",
        "trainer/chat.py",
        "    if model_cfg.load_in_4bit:\n        return True\n    if free_bytes is None:\n        return False",
        "    if free_bytes is None:\n        return False\n    if model_cfg.load_in_4bit:\n        return True",
        "tests/unit/test_chat_sizing.py",
    ),
    _m(
        "the GPU check stops at the first failed step",
        "trainer/gpu_check.py",
        '                status = "passed" if code == 0 else f"failed (exit {code})"',
        '                status = "passed" if code == 0 else f"failed (exit {code})"\n'
        "                if code:\n                    break",
        "tests/unit/test_gpu_check.py",
    ),
    _m(
        "a failed benchmark configuration loses the figures of the others",
        "trainer/bench.py",
        "        except Exception as exc:  # noqa: BLE001 - one failed configuration must not lose the others' "
        "figures",
        "        except ZeroDivisionError as exc:",
        "tests/integration/test_bench.py -k failed_configuration",
    ),
    # --- issue 16: continue training, TRL export
    _m(
        "a continued run loads its adapter frozen (PEFT's default is_trainable=False)",
        "trainer/modeling.py",
        "    model = PeftModel.from_pretrained(model, source.load_from, is_trainable=True, token=token)",
        "    model = PeftModel.from_pretrained(model, source.load_from, is_trainable=False, token=token)",
        "tests/integration/test_continue.py",
    ),
    _m(
        "a continued run trains a fresh adapter instead of loading its parent's",
        "trainer/training.py",
        "    if config.model.adapter_name_or_path:  # continue: the adapter goes on the (k-bit prepared) base",
        "    if False:  # continue: the adapter goes on the (k-bit prepared) base",
        "tests/integration/test_continue.py",
    ),
    _m(
        "an adapter trained on another base is accepted",
        "trainer/modeling.py",
        "    if not same_base(source.base, cfg.model_name_or_path):",
        "    if False:",
        "tests/unit/test_continue_check.py",
    ),
    _m(
        "Start queues a run whose adapter is on another base (the pre-queue check skipped)",
        "trainer/preflight.py",
        "    problems += adapter_problems(cfg.model, token)",
        "    problems += []",
        "tests/unit/test_continue_check.py -k check_before_queueing",
    ),
    _m(
        "a continued run records the LoRA settings it was asked for, not the adapter's own",
        "trainer/training.py",
        "    return parent, dataclasses.replace(config, lora=lora)",
        "    return parent, config",
        "tests/integration/test_continue.py -k lora_settings",
    ),
    _m(
        "a continued run does not record its parent",
        "trainer/training.py",
        "        parent_run=parent,\n",
        "",
        "tests/integration/test_continue.py -k parent",
    ),
    _m(
        "the model card does not name the parent of a continued run",
        "trainer/hub/card.py",
        "        continued_from=continued_from(run.status),\n",
        "",
        "tests/integration/test_continue.py -k card",
    ),
    _m(
        "Continue training fills the form from another user's run",
        "trainer/ui/continuing.py",
        "    job = find_job(manager.store, who, job_id)\n",
        "    job = manager.store.get(int(job_id))\n",
        "tests/security/test_continue.py",
    ),
    _m(
        "a run id typed at Start is resolved for anyone, not only its owner",
        "trainer/ui/continuing.py",
        "continuable(manager, who, match[1]).run_dir",
        "manager.store.get(int(match[1])).run_dir",
        "tests/security/test_continue.py",
    ),
    _m(
        "on a Space an adapter path typed by a visitor is loaded",
        "trainer/ui/continuing.py",
        "        elif not who.local:\n",
        "        elif False:\n",
        "tests/security/test_continue.py",
    ),
    _m(
        "Download for TRL (and the adapter zip) skip the owner check",
        "trainer/ui/runs_tab.py",
        "make_zip(find_job(manager.store, caller(profile), job_id))",
        "make_zip(manager.store.get(int(job_id)))",
        "tests/security/test_continue.py -k download",
    ),
    _m(
        "trl_sft.yaml leaves out use_peft (stock TRL then fine-tunes every weight)",
        "trainer/trl_export.py",
        "        use_peft=True,\n",
        "",
        "tests/unit/test_trl_settings.py",
    ),
    _m(
        "trl_sft.yaml sets max_length for a padding-free run (TRL refuses it)",
        "trainer/trl_export.py",
        "        max_length=None if padding_free else t.max_length,\n",
        "        max_length=t.max_length,\n",
        "tests/unit/test_trl_settings.py",
    ),
    _m(
        "trl_sft.yaml writes attn_implementation: auto (invalid for TRL)",
        "trainer/trl_export.py",
        "    if m.attn_implementation in CHOSEN_ATTENTION:",
        "    if True:",
        "tests/unit/test_trl_settings.py",
    ),
    _m(
        "trl_sft.yaml leaves out use_cpu on a CPU",
        "trainer/trl_export.py",
        "        use_cpu=not on_gpu,\n",
        "",
        "tests/unit/test_trl_settings.py",
    ),
    _m(
        "a system prompt with a newline breaks out of trl_sft.yaml's comment block",
        "trainer/trl_export.py",
        "        return json.dumps(value, ensure_ascii=False)",
        "        return str(value)",
        "tests/unit/test_trl_settings.py -k comment_block",
    ),
    _m(
        "a run writes no trl_sft.yaml",
        "trainer/training.py",
        "    write_trl_export(config, run_dir, prepared, on_gpu=torch.cuda.is_available())",
        "    pass",
        "tests/integration/test_trl_export.py",
    ),
    _m(
        "two processes train apart (evaluate-before leaves the model out of DDP)",
        "trainer/training.py",
        "    dist.ready_for_ddp(trainer)\n",
        "",
        "tests/hub/test_multiprocess.py",
    ),
    _m(
        "every process writes to the run folder",
        "trainer/distributed.py",
        "    return rank() == 0\n",
        "    return True\n",
        "tests/integration/test_worker.py",
    ),
    _m(
        "each process decides alone when to stop",
        "trainer/callbacks.py",
        "            stop, time_up = dist.any_rank(_STOP.is_set() or time_up, time_up)",
        "            stop = _STOP.is_set() or time_up",
        "tests/integration/test_worker.py",
    ),
    _m(
        "each process makes its own run folder",
        "trainer/training.py",
        "        run_dir = dist.share(str(rf.new_run_dir()) if dist.is_main() else None)",
        "        run_dir = str(rf.new_run_dir())",
        "tests/hub/test_multiprocess.py",
    ),
    _m(
        "different adapters on the processes go unnoticed",
        "trainer/distributed.py",
        "    if len(set(prints)) > 1:",
        "    if False:",
        "tests/unit/test_workers.py",
    ),
    _m(
        "the process's memory is left out of the events",
        "trainer/callbacks.py",
        '                out["mem_each_gb"] = dist.gather(dist.peak_memory_gb())',
        "                pass",
        "tests/integration/test_worker.py",
    ),
    _m(
        "torchrun's exit code counts instead of the main process's",
        "trainer/jobs.py",
        "            code = code if recorded is None else recorded",
        "            code = code",
        "tests/unit/test_workers.py",
    ),
    _m(
        "Cancel signals the launcher, not the training processes",
        "trainer/jobs.py",
        "                for pid in training_pids(Path(job.run_dir)) or [job.pid]:",
        "                for pid in [job.pid]:",
        "tests/unit/test_workers.py",
    ),
    _m(
        "the hard kill leaves torchrun's children running",
        "trainer/jobs.py",
        "            for each in training_pids(Path(job.run_dir)):",
        "            for each in []:",
        "tests/unit/test_workers.py",
    ),
    _m(
        "a failure cause is read from torchrun's report",
        "trainer/jobs.py",
        '    text = worker_output(log_tail or "")',
        '    text = log_tail or ""',
        "tests/unit/test_workers.py",
    ),
    _m(
        "a run set to one GPU gets all of them",
        "trainer/distributed.py",
        '    return max(visible_gpus, 1) if gpus == "all" else 1',
        "    return max(visible_gpus, 1)",
        "tests/unit/test_workers.py",
    ),
    _m(
        "QLoRA starts under FSDP",
        "trainer/modeling.py",
        "    if cfg.load_in_4bit and dist.fsdp_launch():",
        "    if False:",
        "tests/unit/test_workers.py",
    ),
    _m(
        "the estimate leaves out what a Hugging Face Job costs",
        "trainer/estimate/render.py",
        "    if device.usd_per_hour is not None:",
        "    if False:",
        "tests/unit/test_estimate.py -k several_gpus",
    ),
    _m(
        "several GPUs do not share the steps in the estimate",
        "trainer/estimate/plan.py",
        "    per_step = t.per_device_train_batch_size * t.gradient_accumulation_steps * processes",
        "    per_step = t.per_device_train_batch_size * t.gradient_accumulation_steps",
        "tests/unit/test_estimate.py -k several_gpus",
    ),
    _m(
        "a job on a 4-GPU flavour trains on one",
        "trainer/hfjobs.py",
        "            command=job_command(dist.worker_processes(config.run.gpus, gpus)),",
        "            command=job_command(),",
        "tests/unit/test_workers.py -k flavour",
    ),
    _m(
        "the Runs tab leaves out the training processes",
        "trainer/ui/runs_tab.py",
        '    if (status.get("world_size") or 1) > 1:',
        "    if False:",
        "tests/unit/test_ui.py -k metrics",
    ),
    _m(
        "the Compare answers run outside a ZeroGPU allocation",
        "trainer/ui/compare_tab.py",
        "    inside = gpu_call(handler)\n",
        "    inside = handler\n",
        "tests/unit/test_compare_tab.py -k zerogpu",
    ),
    _m(
        "on ZeroGPU a Stop does not stop what reaches the panes",
        "trainer/ui/compare_tab.py",
        "                if stop.is_set():\n"
        "                    yield gr.skip(), gr.skip(), gr.skip()\n"
        "                    return\n",
        "",
        "tests/unit/test_compare_tab.py -k zerogpu",
    ),
    _m(
        "a resumed run changes its number of processes",
        "trainer/jobs.py",
        "        if resume and isinstance(before, int) and 1 <= before <= max(visible, 1):",
        "        if False:",
        "tests/unit/test_workers.py -k all_gpus",
    ),
    _m(
        "one process stops while another evaluates (the final stop is not agreed)",
        "trainer/callbacks.py",
        "    stop, time_up = dist.any_rank(_STOP.is_set(), _TIME_UP.is_set())",
        "    stop, time_up = _STOP.is_set(), _TIME_UP.is_set()",
        "tests/unit/test_workers.py",
    ),
    # --- installs: the lock, no code from the Hub at run time, today's names (issue 25)
    _m(
        "bitsandbytes is imported with `kernels` visible: it fetches a kernel from the Hub",
        "trainer/hubkernels.py",
        '        if fullname != "bitsandbytes" or allowed():',
        "        if True:",
        "tests/hub/test_hub_kernels.py -k qlora_run_and_its_chat",
    ),
    _m(
        "Hub kernels are allowed unless USE_HUB_KERNELS says otherwise",
        "trainer/hubkernels.py",
        '    os.environ.setdefault(ENV, "NO")',
        '    os.environ.setdefault(ENV, "YES")',
        "tests/hub/test_hub_kernels.py -k qlora_run_and_its_chat",
    ),
    _m(
        "a run's hub_kernels setting is ignored",
        "trainer/training.py",
        "    hubkernels.set_allowed(config.model.hub_kernels)  # before anything imports bitsandbytes",
        "    pass",
        "tests/hub/test_hub_kernels.py -k asks_for_them",
    ),
    _m(
        "a run on a Space fetches Hub kernels without the owner's leave",
        "trainer/access.py",
        "    if not asked or not space_mode() or hubkernels.allowed():",
        "    if True:",
        "tests/security/test_users.py -k hub_kernels",
    ),
    _m(
        "training arguments use the deprecated gradient_checkpointing names",
        "trainer/trl_export.py",
        "    if _has_activation_checkpointing():",
        "    if False:",
        "tests/unit/test_sft_config.py",
    ),
    _m(
        "a lock line asks for a range instead of one version",
        "requirements.txt",
        "\ntorch==2.13.0\n",
        "\ntorch>=2.4\n",
        "tests/unit/test_locks.py",
    ),
    _m(
        "the lock leaves out a package the app needs",
        "requirements-test.txt",
        "regex==",
        "# regex==",
        "tests/unit/test_locks.py",
    ),
    _m(
        "the upgrade report shows a failure's traceback start instead of its error line",
        "scripts/upgrade_report.py",
        '        if line.startswith("E "):',
        "        if False:",
        "tests/unit/test_locks.py",
    ),
    # --- safe on a public Space, second pass (issue 26)
    _m(
        "a visitor's preview reads the Hub with the Space's token (None, which the libraries read as HF_TOKEN)",
        "trainer/ui/train_tab.py",
        "        p = data.preview(cfg.data, tokenizer, cfg.training.max_length, token=hub_token(who))",
        "        p = data.preview(cfg.data, tokenizer, cfg.training.max_length, token=who.token)",
        "tests/hub/test_space_tokens.py",
    ),
    _m(
        "Start checks a user without an OAuth token with the Space's token",
        "trainer/ui/train_tab.py",
        "check_before_queueing(run_cfg, ctx.on_gpu or flavor is not None, hub_token(who))",
        "check_before_queueing(run_cfg, ctx.on_gpu or flavor is not None, who.token)",
        "tests/security/test_users.py -k oauth_token",
    ),
    _m(
        "Resume from the Runs tab drops the owner's token",
        "trainer/ui/runs_tab.py",
        "                if action == manager.resume:",
        "                if action is manager.resume:",
        "tests/security/test_users.py -k resumes_their_own",
    ),
    _m(
        "continuing from a Hub adapter reads PEFT's enum as its str()",
        "trainer/modeling.py",
        '    kind = str(getattr(kind, "value", kind)).upper()',
        "    kind = str(kind).upper()",
        "tests/hub/test_hub.py -k pushed_adapter_loads",
    ),
    _m(
        "a run folder's JSON of another shape is read as it is (a list status.json stops the app)",
        "trainer/runfolder.py",
        "    if default is not None and not isinstance(value, type(default)):",
        "    if False:",
        "tests/unit/test_jobs.py tests/unit/test_runfolder.py",
    ),
    _m(
        "a worker inherits the server's whole environment (the session-signing OAUTH_CLIENT_SECRET, HF_TOKEN)",
        "trainer/jobs.py",
        "            **worker_environment(os.environ),",
        "            **os.environ,",
        "tests/security/test_users.py -k oauth_token",
    ),
    _m(
        "Compare loads a Hub adapter's base without the checks Start makes",
        "trainer/chat.py",
        "            if found := model_problems(",
        "            if found := [] and model_problems(",
        "tests/security/test_users.py -k base_before",
    ),
    _m(
        "resume sidesteps the active-run limit",
        "trainer/jobs.py",
        "        self._check_active_runs(job.owner)\n",
        "",
        "tests/security/test_users.py -k resume_counts",
    ),
    _m(
        "each resume restarts the time limit",
        "trainer/workers.py",
        "    return limit_s - (time.time() - started if resumed and isinstance(started, (int, float)) else 0.0)",
        "    return limit_s",
        "tests/security/test_users.py -k resume_counts",
    ),
    _m(
        "Retry push of a user without an OAuth token pushes with the Space's token",
        "trainer/ui/runs_tab.py",
        "manager.retry_push(find_job(manager.store, who, job_id).id, hub_token(who))",
        "manager.retry_push(find_job(manager.store, who, job_id).id, who.token)",
        "tests/security/test_users.py -k retry_push tests/security/test_token_paths.py",
    ),
    _m(
        "a text setting takes any length (a 200,000-character dataset name, a 30 MB system prompt)",
        "trainer/config/rules.py",
        "    if longest > max_chars:",
        "    if False:",
        "tests/unit/test_config.py tests/security/test_visitor.py -k 'bounded or oversized'",
    ),
    _m(
        "placeholders grow a row without bound",
        "trainer/data/shapes.py",
        "        if grown > FILLED_LIMIT:",
        "        if False:",
        "tests/unit/test_shapes.py -k without_bound",
    ),
    _m(
        "a preview unpacks a Parquet file without a budget (a few KB becoming gigabytes)",
        "trainer/data/load.py",
        "            if unpacked > PREVIEW_BYTES:",
        "            if False:",
        "tests/unit/test_data.py -k parquet_bomb",
    ),
    _m(
        "a preview of a sliced Hub split downloads the whole split",
        "trainer/data/load.py",
        "        if limit is None:\n"
        "            return datasets.load_dataset(name, cfg.dataset_config, split=split, token=token)",
        '        if limit is None or "[" in split:\n'
        "            return datasets.load_dataset(name, cfg.dataset_config, split=split, token=token)",
        "tests/hub/test_streaming.py -k preview_streams",
    ),
    _m(
        "a rebuilt table turns a running Hugging Face Job into an interrupted local run",
        "trainer/jobstore.py",
        '            remote = isinstance(status.get("hf_job"), dict) and state not in FINISHED  # runs on at the Hub',
        "            remote = False",
        "tests/unit/test_jobs.py -k rebuilt_table",
    ),
    _m(
        "a preview reads a local file whole",
        "trainer/data/preview.py",
        "    table, lines = read_split(cfg, cfg.dataset_train_split, token, limit=rows)",
        "    table, lines = read_split(cfg, cfg.dataset_train_split, token, limit=None if path else rows)",
        "tests/unit/test_data.py -k big_local",
    ),
    _m(
        "a user's uploads together have no limit",
        "trainer/ui/train_tab.py",
        "    if limits is not None and limits.uploads_mb is not None and kept_mb + size_mb > limits.uploads_mb:",
        "    if False:",
        "tests/security/test_users.py -k uploads_together",
    ),
    _m(
        "Gradio's temporary files (anyone's uploads) are kept for ever",
        "trainer/ui/app.py",
        '    with gr.Blocks(title="Phi-3 Fine-Tune Studio", delete_cache=GRADIO_CACHE_S) as app:',
        '    with gr.Blocks(title="Phi-3 Fine-Tune Studio") as app:',
        "tests/security/test_modes.py -k loopback",
    ),
    _m(
        "the Runs tab shows the server's paths in a run's log",
        "trainer/ui/runs_tab.py",
        "            rf.without_server_paths(for_people(log_tail(run_dir))),",
        "            for_people(log_tail(run_dir)),",
        "tests/security/test_users.py -k without_the_servers_paths",
    ),
    _m(
        "a dataset's own text in a preview problem renders as Markdown",
        "trainer/ui/train_tab.py",
        "{labelled(str(exc))}",
        "{labelled(str(exc), plain=False)}",
        "tests/security/test_visitor.py -k not_markdown",
    ),
    _m(
        "every download click leaves a temporary folder for ever",
        "trainer/ui/context.py",
        "            if time.time() - old.stat().st_mtime > DOWNLOADS_KEPT_S:",
        "            if False:",
        "tests/security/test_users.py -k pile_up",
    ),
    _m(
        "one session queues previews without end (no per-session limit)",
        "trainer/ui/context.py",
        "            free = key is None or key not in self._busy",
        "            free = True",
        "tests/security/test_visitor.py -k one_preview_at_a_time",
    ),
    _m(
        "Compare takes a prompt or a token count of any size",
        "trainer/ui/compare_tab.py",
        "            if problem := request_problem(prompt, system, max_new):",
        "            if problem := None:",
        "tests/security/test_users.py -k oversized_request",
    ),
    _m(
        "a request body of any size reaches the app",
        "trainer/ui/app.py",
        "        if declared.isdigit() and int(declared) > self.max_bytes:",
        "        if False:",
        "tests/security/test_http.py -k size_limit",
    ),
    # --- issue 27: a newcomer's first hour, second pass
    _m(
        "Start builds the demo model in its handler (item 1)",
        "trainer/modeling.py",
        "        return Phi3Config(**TINY_CONFIG)\n",
        "        name = resolve_model_path(name)\n",
        "tests/unit/test_tiny_build.py",
    ),
    _m(
        "a run on a machine without the demo model shows no build phase and cannot be cancelled in it (item 1)",
        "trainer/callbacks.py",
        "        if stop_requested():\n            raise RunCancelled(",
        "        if False:\n            raise RunCancelled(",
        "tests/unit/test_tiny_build.py",
    ),
    _m(
        "two processes build the demo model at once, neither waiting for the other (item 1)",
        "trainer/tiny.py",
        "                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)\n",
        "                pass\n",
        "tests/unit/test_tiny_build.py",
    ),
    _m(
        "one line of a JSON Lines file that is not JSON sinks the whole file (item 2)",
        "trainer/data/load.py",
        "            source, lines = readable_rows(path, start + limit if limit else None, Path(tmp))\n",
        "            pass\n",
        "tests/unit/test_data.py -k 'jsonl or json_lines'",
    ),
    _m(
        "a bad JSON Lines line is not counted by the 5 % gate (item 2)",
        "trainer/data/formats.py",
        "    n_input += len(lines.unreadable) if lines else 0\n",
        "",
        "tests/unit/test_data.py -k jsonl",
    ),
    _m(
        "the rows of a JSON Lines file with a bad line are numbered from 0, not by their line (item 2)",
        "trainer/data/formats.py",
        "        number = lines.numbers[n_input - 1] if lines else n_input\n",
        "        number = n_input - 1\n",
        "tests/unit/test_data.py -k jsonl",
    ),
    _m(
        "a field's problem from Start stays on the page after the field changed (item 3)",
        "trainer/ui/train_tab.py",
        "            left = without(problems, {spec.key})\n",
        "            left = problems\n",
        "tests/unit/test_ui_handlers.py -k leave_the_page",
    ),
    _m(
        "a preview that passes leaves the data problems of Start on the page (item 3)",
        "trainer/ui/train_tab.py",
        "        left = without(problems, {key for key in fields if key.startswith(\"data.\")})\n",
        "        left = problems\n",
        "tests/unit/test_ui_handlers.py -k leave_the_page",
    ),
    _m(
        "a failed push of a run that never asked to push marks it push_failed (item 6)",
        "trainer/hub/push.py",
        "    asked = asked_to_push(run_dir, status)\n",
        "    asked = True\n",
        "tests/hub/test_cli_push.py",
    ),
    _m(
        "the printed push retry leaves out the --repo-id the push was given (item 6)",
        "trainer/__main__.py",
        '    if repo_id != hub.repo_id:\n        argv += ["--repo-id", repo_id]\n',
        '    if False:\n        argv += ["--repo-id", repo_id]\n',
        "tests/hub/test_cli_push.py",
    ),
    _m(
        "a Cancel while the worker starts kills it with the signal's default action (item 11)",
        "trainer/jobs.py",
        '            with open(run_dir / rf.LOG_FILE, "ab") as log, term_held():\n',
        '            with open(run_dir / rf.LOG_FILE, "ab") as log:\n',
        "tests/unit/test_jobs.py -k while_the_worker",
    ),
    _m(
        "a demo estimate ignores the method (item 7)",
        "trainer/estimate/plan.py",
        '    return "qlora" if cfg.model.load_in_4bit else "lora"\n',
        '    return "lora"\n',
        "tests/unit/test_estimate.py -k per_method",
    ),
    # --- issue 28: the Cookbook presets reproduce their recipes (tests/parity trains each beside its recipe)
    _m(
        "the LoRA notebook preset learns the replies only, not every token",
        "examples/cookbook-lora-notebook.yaml",
        "  assistant_only_loss: false\n",
        "",
        "tests/parity -k lora_notebook",
    ),
    _m(
        "the LoRA notebook preset trains the fused projections its code never reaches",
        "examples/cookbook-lora-notebook.yaml",
        "  target_modules:\n  - o_proj\n  - down_proj\n",
        "  target_modules:\n  - qkv_proj\n  - o_proj\n  - gate_up_proj\n  - down_proj\n",
        "tests/parity -k lora_notebook",
    ),
    _m(
        "the QLoRA notebook preset learns the replies only, not every token",
        "examples/cookbook-qlora-notebook.yaml",
        "  assistant_only_loss: false\n",
        "",
        "tests/parity -k qlora_notebook",
    ),
    _m(
        "the Cookbook's Alpaca prompt is the studio's (the input after a blank line, none when empty)",
        "trainer/data/formats.py",
        '    if template == "cookbook":',
        '    if template == "cookbook" and False:',
        "tests/parity -k lora_notebook",
    ),
    _m(
        "the held-out split ignores its own seed (the training seed instead)",
        "trainer/data/load.py",
        "        eval_seed = seed if cfg.eval_seed is None else cfg.eval_seed\n",
        "        eval_seed = seed\n",
        "tests/parity -k lora_notebook",
    ),
    _m(
        "the train_test_split hold-out keeps the input order",
        "trainer/data/holdout.py",
        "        order = np.random.default_rng(seed).permutation(n).tolist()\n",
        "        order = sorted(np.random.default_rng(seed).permutation(n).tolist())\n",
        "tests/unit/test_recipe_settings.py",
    ),
    _m(
        "sample_finetune.py's empty system turn is not added",
        "trainer/data/formats.py",
        '    if style.empty_system_turn and messages[0]["role"] != "system":',
        '    if False and messages[0]["role"] != "system":',
        "tests/parity -k sample_finetune",
    ),
    _m(
        "a Hugging Face Job found again in the run folders is watched as a local pid and marked failed",
        "trainer/jobs.py",
        '            if job.status == "running" and job.backend == "local":',
        '            if job.status == "running":',
        "tests/unit/test_jobs.py -k rebuilt_table",
    ),
]


def project_files() -> list[str]:
    """What git tracks, plus the untracked files it does not ignore (the working tree as it is)."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted({name for name in out.split("\0") if name and (ROOT / name).is_file()})


def check(mutation: Mutation, copy: Path) -> str:
    """CAUGHT, SURVIVED or DOES NOT APPLY (with the tests' last lines when it survived)."""
    path = copy / mutation.file
    text = path.read_text(encoding="utf-8")
    if text.count(mutation.old) != 1:
        return f"DOES NOT APPLY ({text.count(mutation.old)} matches in {mutation.file}): update this mutation"
    path.write_text(text.replace(mutation.old, mutation.new), encoding="utf-8")
    try:
        proc = subprocess.run(
            f"{sys.executable} -m pytest -q -x -p no:cacheprovider {mutation.tests}",
            shell=True,  # the tests string is ours (this file), never user input
            cwd=copy,
            capture_output=True,
            text=True,
            timeout=900,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
    finally:
        path.write_text(text, encoding="utf-8")
    if proc.returncode == 5:
        return "DOES NOT APPLY (no test collected): update the test selection"
    if proc.returncode == 0:
        return "SURVIVED\n" + "\n".join(proc.stdout.splitlines()[-3:])
    return "CAUGHT"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("-k", dest="keyword", default="", help="only mutations whose name contains this")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if args.keyword.lower() in m.name.lower()]
    if args.list:
        for m in chosen:
            print(f"{m.name}  [{m.file}; {m.tests}]")
        return 0
    failures = 0
    with tempfile.TemporaryDirectory(prefix="mutation-check-") as tmp:
        copy = Path(tmp) / "project"
        for name in project_files():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
        for number, mutation in enumerate(chosen, start=1):
            start = time.time()
            outcome = check(mutation, copy)
            failures += not outcome.startswith("CAUGHT")
            print(
                f"[{number}/{len(chosen)}] {outcome.split(chr(10))[0]:9} {mutation.name} ({time.time() - start:.0f} s)"
            )
            if not outcome.startswith("CAUGHT"):
                print("    " + outcome.replace("\n", "\n    "), flush=True)
    print(f"{len(chosen) - failures} of {len(chosen)} mutations caught")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
