"""Publishing a run to the Hugging Face Hub: the token, a fail-fast permission check, the model card and the push.

`check_push_access` runs before any training: it validates the repo ID, asks the Hub who the token belongs to
(`whoami`) and checks that the namespace is the user's own or an organisation where they can write, so a typo or a
read-only token costs seconds, not a finished GPU run. After training, `push_run` writes `README.md` (the model card
from `model_card`) and `loss.png` (`loss_curve_png`) into the run folder, then uploads the adapter (weights, config,
tokenizer files), `config.yaml`, `events.jsonl`, `README.md` and `loss.png` to the repo root in ONE commit, retrying
network errors and 5xx answers with exponential backoff (never 4xx). It deletes nothing locally and records the
outcome in `status.json` (`push_state`, `repo_url`, `push_error`) without touching the run's `state`.

The token is a runtime secret: it is never logged, written to the run folder or put in an error message.
`huggingface_hub` talks to ``$HF_ENDPOINT`` (read when it is imported), which is how the tests point it at a local
Hub-protocol server.

Example:
    >>> from trainer.hub import check_push_access, push_run, resolve_token
    >>> token = resolve_token()                       # HF_TOKEN or the stored `hf auth login`
    >>> check_push_access("alice/phi3-pirate-lora", token)
    'alice'
    >>> push_run(Path("runs/20250101-120000-run"), "alice/phi3-pirate-lora", token)
    'https://huggingface.co/alice/phi3-pirate-lora'
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from trainer import runfolder as rf
from trainer.config import REPO_ID_RE
from trainer.modeling import TINY_MODEL_NAME

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)

T = TypeVar("T")

MODEL_CARD_FILE = "README.md"
LOSS_CURVE_FILE = "loss.png"
RUN_FILES_PUSHED = (rf.CONFIG_FILE, rf.EVENTS_FILE, MODEL_CARD_FILE, LOSS_CURVE_FILE)
"""Run-folder files uploaded beside the adapter files (which go to the repo root, where PEFT looks for them)."""
ADAPTER_REQUIRED = ("adapter_config.json", "adapter_model.safetensors")
ADAPTER_SKIPPED = ("README.md",)  # PEFT's template card; ours replaces it
WRITE_ROLES = ("admin", "write", "contributor")
"""Organisation roles (`roleInOrg` in whoami) that may create and push repos."""
TRANSIENT_STATUS = (408, 429)  # plus every 5xx
HUB_URL = "https://huggingface.co"
MIT_BASES = re.compile(r"phi-?3|phi-?4", re.IGNORECASE)  # Microsoft publishes Phi-3, Phi-3.5 and Phi-4-mini as MIT

TOKEN_INVALID = "Hugging Face token: invalid or expired. Sign in again or set HF_TOKEN."
TOKEN_MISSING = (
    "Hugging Face token: missing. Sign in with Hugging Face, or set HF_TOKEN to a token with write access "
    "(https://huggingface.co/settings/tokens)."
)


class HubError(ValueError):
    """A Hub problem worded for the user ("<what>: <problem>. <fix>"); never contains the token."""


# --------------------------------------------------------------------------- token and permission check


def resolve_token(explicit: str | None = None) -> str | None:
    """The Hugging Face token to use: the explicit one (e.g. from OAuth sign-in), else HF_TOKEN, else the stored login.

    Args:
        explicit: a token given directly (the web app's OAuth token, a CLI flag); blank counts as none.

    Returns:
        The token, or None when there is none.
    """
    if explicit and explicit.strip():
        return explicit.strip()
    if env := os.environ.get("HF_TOKEN", "").strip():
        return env
    from huggingface_hub import get_token

    return get_token()  # the stored `hf auth login` token (also HUGGING_FACE_HUB_TOKEN, Colab secrets)


def check_repo_id(repo_id: str) -> None:
    """Check that repo_id is a valid `namespace/name` model repo ID (our rule and huggingface_hub's validator).

    Args:
        repo_id: the repo to push to.

    Raises:
        HubError: the ID is empty, has no namespace, or breaks the Hub's naming rules.
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    fix = "Use namespace/name with letters, digits, '-', '_' or '.' (e.g. alice/phi3-pirate-lora)."
    if not repo_id or not repo_id.strip():
        raise HubError(f"hub.repo_id: empty. {fix}")
    if "/" not in repo_id:
        raise HubError(f"hub.repo_id: {repo_id!r} has no namespace. Use <your user name>/{repo_id}.")
    reason = None
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        reason = str(exc).split(":")[0].rstrip(".")
    if reason is None and not REPO_ID_RE.match(repo_id):
        reason = "Repo id must use alphanumeric chars, '-', '_' or '.'"
    if reason:
        raise HubError(f"hub.repo_id: {repo_id!r} is not a valid repo ID ({reason}). {fix}")


def check_push_access(repo_id: str, token: str | None) -> str:
    """Fail fast, before any GPU time: can this token create and push `repo_id`?

    Checks the repo ID, that there is a token, that the Hub accepts it (whoami), that it is not read-only, and that
    the namespace is the user's own or an organisation where whoami says they can write.

    Args:
        repo_id: the model repo to push the adapter to (namespace/name).
        token: the Hugging Face token (see `resolve_token`).

    Returns:
        The user name the token belongs to.

    Raises:
        HubError: with what is wrong and how to fix it (never with the token in it).
    """
    return _check_push_access(repo_id, token, retries=2, backoff_s=1.0)


def _check_push_access(repo_id: str, token: str | None, retries: int, backoff_s: float) -> str:
    check_repo_id(repo_id)
    if not token:
        raise HubError(TOKEN_MISSING)
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        info = _with_retries("whoami", lambda: api.whoami(token=token), retries, backoff_s)
    except Exception as exc:
        raise _hub_error(exc, token, f"checking the token for {repo_id!r}") from None
    user = str(info.get("name") or "")
    namespace, name = repo_id.split("/")
    access = (info.get("auth") or {}).get("accessToken") or {}
    if access.get("role") == "read":
        raise HubError(
            f"Hugging Face token: read-only, so it cannot push to {repo_id!r}. Create a token with write access "
            "at https://huggingface.co/settings/tokens and sign in again (or set HF_TOKEN)."
        )
    # Fine-grained tokens ("fineGrained") carry per-namespace scopes; they are left to the Hub to judge at push time.
    if namespace == user:
        logger.info("Hub: signed in as %s; can push to %s", user, repo_id)
        return user
    role = {org.get("name"): org.get("roleInOrg") for org in info.get("orgs") or []}.get(namespace, "")
    if role in WRITE_ROLES:
        logger.info("Hub: signed in as %s (%s in %s); can push to %s", user, role, namespace, repo_id)
        return user
    if role:
        raise HubError(
            f"hub.repo_id: you cannot write to {repo_id!r}: you have {role}-only access to the organization "
            f"{namespace!r}. Ask an admin of {namespace} for write access, or use {user}/{name}."
        )
    raise HubError(
        f"hub.repo_id: you cannot write to {repo_id!r}: it is another user's namespace (or an organization you are "
        f"not a member of). Use {user}/{name}."
    )


# --------------------------------------------------------------------------- retries and error messages


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Network-level exceptions worth a retry (those huggingface_hub itself retries, for httpx and httpx2)."""
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module_name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        errors += [module.TimeoutException, module.NetworkError, module.RemoteProtocolError]
    return tuple(errors)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _status(exc: BaseException) -> int | None:
    """The HTTP status of the first Hub HTTP error in the exception chain."""
    from huggingface_hub.errors import HfHubHTTPError

    for item in _chain(exc):
        if isinstance(item, HfHubHTTPError) and item.response is not None:
            return item.response.status_code
    return None


def is_transient(exc: BaseException) -> bool:
    """Whether a failed Hub call is worth retrying: network errors, 5xx, 408 and 429; never other 4xx.

    Args:
        exc: the exception (its whole cause chain is inspected: the client wraps upload errors).

    Returns:
        True for a transient failure.
    """
    from huggingface_hub.errors import OfflineModeIsEnabled

    status = _status(exc)
    if status is not None:
        return status >= 500 or status in TRANSIENT_STATUS
    if any(isinstance(item, OfflineModeIsEnabled) for item in _chain(exc)):
        return False  # a ConnectionError subclass, but no retry turns HF_HUB_OFFLINE off
    transport = _transport_errors()
    return any(isinstance(item, transport) for item in _chain(exc))


def _with_retries(what: str, call: Callable[[], T], retries: int, backoff_s: float) -> T:
    """call(), retried up to `retries` times on transient failures, waiting backoff_s, 2x, 4x ... in between."""
    for attempt in range(retries + 1):
        try:
            return call()
        except Exception as exc:
            if attempt >= retries or not is_transient(exc):
                raise
            delay = backoff_s * 2**attempt
            logger.warning(
                "%s failed (%s); retry %d of %d in %.1f s", what, _describe(exc), attempt + 1, retries, delay
            )
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _describe(exc: BaseException, limit: int = 200) -> str:
    """A short, token-free description of a Hub failure ("HTTP 503: Service Unavailable")."""
    from huggingface_hub.errors import HfHubHTTPError

    for item in _chain(exc):
        if isinstance(item, HfHubHTTPError) and item.response is not None:
            detail = item.server_message or item.response.reason_phrase or ""
            return f"HTTP {item.response.status_code}: {' '.join(str(detail).split())[:limit]}".rstrip(": ")
    transport = _transport_errors()
    cause = next((item for item in _chain(exc) if isinstance(item, transport)), exc)
    return f"{type(cause).__name__}: {' '.join(str(cause).split())[:limit]}".rstrip(": ")


def _redact(text: str, token: str | None) -> str:
    return text.replace(token, "hf_***") if token else text


def _hub_error(exc: BaseException, token: str | None, doing: str, keep: str = "") -> HubError:
    """Turn a huggingface_hub / network exception into a HubError that says what to do."""
    from huggingface_hub.errors import OfflineModeIsEnabled

    if isinstance(exc, HubError):
        return HubError(_redact(str(exc), token))
    status = _status(exc)
    detail = _describe(exc)
    keep = f" {keep}" if keep else ""
    if any(isinstance(item, OfflineModeIsEnabled) for item in _chain(exc)):
        message = f"Hugging Face Hub: offline mode is on (HF_HUB_OFFLINE), so {doing} is impossible. Unset it."
    elif status == 401:
        message = TOKEN_INVALID
    elif status == 403:
        message = (
            f"Hugging Face Hub: refused while {doing} ({detail}). Use a token with write access to that "
            f"namespace, or push to your own.{keep}"
        )
    elif status is not None and status < 500 and status not in TRANSIENT_STATUS:
        message = f"Hugging Face Hub: {doing} failed ({detail}). Check the repo ID and the run folder.{keep}"
    elif is_transient(exc):
        message = (
            f"Hugging Face Hub: {doing} failed after retries ({detail}). The Hub or the network is down; "
            f"try again later.{keep}"
        )
    else:
        message = f"Hugging Face Hub: {doing} failed ({detail}). Fix the cause and try again.{keep}"
    return HubError(_redact(message, token))


# --------------------------------------------------------------------------- the run folder as a model card


@dataclass
class RunRecord:
    """What a finished run folder says about itself (the inputs of the model card)."""

    config: dict[str, Any]
    config_text: str
    status: dict[str, Any] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)


def read_run(run_dir: Path) -> RunRecord:
    """Read the run folder's config.yaml, status.json, samples.json, versions.json and events.jsonl.

    Args:
        run_dir: the run folder.

    Returns:
        The run's record (missing optional files read as empty).

    Raises:
        HubError: config.yaml is missing (not a run folder).
    """
    run_dir = Path(run_dir)
    try:
        config_text = (run_dir / rf.CONFIG_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HubError(f"run folder: {run_dir} has no {rf.CONFIG_FILE}. Point to a run folder under runs/.") from None
    return RunRecord(
        config=yaml.safe_load(config_text) or {},
        config_text=config_text,
        status=rf.read_json(run_dir / rf.STATUS_FILE, {}) or {},
        samples=rf.read_json(run_dir / rf.SAMPLES_FILE, []) or [],
        versions=rf.read_json(run_dir / rf.VERSIONS_FILE, {}) or {},
        events=rf.read_events(run_dir),
    )


def base_model_id(model_name_or_path: str) -> str:
    """The base model as the card names it: the Hub ID when it is one, else the configured name.

    A Hub ID (``microsoft/Phi-3-mini-4k-instruct``) is kept, so the Hub links the adapter to its base. The offline
    tiny model keeps its configured name ``tiny-phi3`` (it is built locally by `trainer.tiny`, there is no Hub repo
    to point at), and a local folder is named by its last path part, never by a machine-specific absolute path.

    Args:
        model_name_or_path: `model.model_name_or_path` of the run config.

    Returns:
        The name for the card's `base_model`.
    """
    name = model_name_or_path.strip()
    if name == TINY_MODEL_NAME or (REPO_ID_RE.match(name) and not Path(name).expanduser().is_absolute()):
        return name
    return Path(name).expanduser().name or name


def hub_dataset_id(dataset_name: str) -> str | None:
    """The dataset's Hub ID, or None when the run trained on a local file."""
    from trainer.data import resolve_local_path

    try:
        return None if resolve_local_path(dataset_name) is not None else dataset_name.strip()
    except ValueError:  # a file name that is not (or no longer) there: not a Hub ID either
        return None


def card_metadata(config: dict[str, Any]) -> dict[str, Any]:
    """The model card's YAML metadata for a run config (as read from config.yaml).

    Args:
        config: the run config as a nested dict.

    Returns:
        `base_model`, `library_name`, `pipeline_tag`, `license` (for Phi-3-family bases), `tags` and, when the
        data came from the Hub, `datasets`.
    """
    model, data = config.get("model", {}), config.get("data", {})
    base = base_model_id(str(model.get("model_name_or_path", "")))
    tags = ["trl", "sft", "qlora" if model.get("load_in_4bit") else "lora", "phi3", "generated_from_trainer"]
    meta: dict[str, Any] = {"base_model": base, "library_name": "peft", "pipeline_tag": "text-generation"}
    if MIT_BASES.search(base):
        meta["license"] = "mit"
    meta["tags"] = tags
    if dataset := hub_dataset_id(str(data.get("dataset_name", ""))):
        meta["datasets"] = [dataset]
    return meta


def model_card(run_dir: Path, repo_id: str | None = None) -> str:
    """The README.md model card of a finished run: Hub metadata, data, results, samples, usage, settings, versions.

    Reads only the run folder (config.yaml, status.json, samples.json, versions.json, events.jsonl); no network.

    Args:
        run_dir: the run folder.
        repo_id: the repo the card will live in (for the usage snippet); defaults to `hub.repo_id` of the config.

    Returns:
        The card text: a YAML front matter block that `huggingface_hub.ModelCard` parses, then Markdown.

    Raises:
        HubError: run_dir is not a run folder.
    """
    from huggingface_hub import ModelCardData

    run = read_run(run_dir)
    cfg = run.config
    model, data, lora, training = (cfg.get(k, {}) for k in ("model", "data", "lora", "training"))
    repo_id = repo_id or (cfg.get("hub", {}) or {}).get("repo_id") or "<user>/<adapter-repo>"
    meta = card_metadata(cfg)
    base = meta["base_model"]
    method = "QLoRA (4-bit NF4 base)" if model.get("load_in_4bit") else "LoRA"
    base_link = f"`{base}` (the tiny offline Phi-3 of `trainer.tiny`)" if base == TINY_MODEL_NAME else _hub_link(base)
    parts = [
        f"---\n{ModelCardData(**meta).to_yaml()}\n---\n",
        f"# {repo_id.split('/')[-1]}\n",
        f"A {method} adapter for {base_link}, fine-tuned with TRL's `SFTTrainer` and PEFT by Phi-3 Fine-Tune Studio. "
        "Only the adapter weights are here: load them on top of the base model (see Usage).\n",
        _data_section(data),
        _results_section(run),
        _samples_section(run.samples),
        _usage_section(base, repo_id, run.samples),
        _settings_section(run, lora, training),
        _versions_section(run.versions),
    ]
    return "\n".join(part for part in parts if part)


def _hub_link(repo_id: str, kind: str = "") -> str:
    if REPO_ID_RE.match(repo_id):
        return f"[{repo_id}]({HUB_URL}/{kind}{repo_id})"
    return f"`{repo_id}`"


def _fence(text: str, lang: str = "text") -> str:
    """text in a code block whose fence is longer than any backtick run inside it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text.rstrip()}\n{fence}\n"


def _data_section(data: dict[str, Any]) -> str:
    name = str(data.get("dataset_name", ""))
    hub_id = hub_dataset_id(name)
    source = f"the Hub dataset {_hub_link(hub_id, 'datasets/')}" if hub_id else f"the local file `{Path(name).name}`"
    lines = ["## Training data\n", f"- Data: {source}"]
    if data.get("dataset_config"):
        lines.append(f"- Config: `{data['dataset_config']}`")
    lines.append(f"- Train split: `{data.get('dataset_train_split', 'train')}`, row format: `{data.get('format')}`")
    if data.get("dataset_test_split"):
        lines.append(f"- Evaluation split: `{data['dataset_test_split']}`")
    elif data.get("eval_fraction"):
        lines.append(f"- Evaluation: {100 * float(data['eval_fraction']):.0f} % of the train rows held out (seeded)")
    if data.get("max_rows"):
        lines.append(f"- Rows used: the first {data['max_rows']}")
    if data.get("system_prompt"):
        lines.append(f"- System prompt added to every row: {data['system_prompt']!r}")
    return "\n".join(lines) + "\n"


def _fmt_loss(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) and math.isfinite(value) else "n/a"


def _results_section(run: RunRecord) -> str:
    from trainer.training import loss_drop

    before, after = run.status.get("eval_loss_before"), run.status.get("eval_loss_after")
    drop = loss_drop(before, after)
    train = [e["loss"] for e in run.events if isinstance(e.get("loss"), (int, float))]
    lines = [
        "## Results\n",
        "| | eval loss |",
        "|---|---|",
        f"| base model (before training) | {_fmt_loss(before)} |",
        f"| with this adapter (after) | {_fmt_loss(after)} |",
        "",
    ]
    if drop is not None:
        lines.append(f"Eval loss {'fell' if drop >= 0 else 'rose'} by {abs(100 * drop):.1f} %.")
    if run.status.get("step") is not None:
        last = _fmt_loss(train[-1] if train else None)
        lines.append(f"Trained for {run.status['step']} optimiser steps; last train loss {last}.")
    lines += ["", f"![Train and eval loss]({LOSS_CURVE_FILE})", ""]
    return "\n".join(lines)


def _samples_section(samples: list[dict[str, Any]]) -> str:
    if not samples:
        return ""
    lines = ["## Sample generations\n", "Held-out prompts answered greedily by the base model and by the adapter.\n"]
    for index, sample in enumerate(samples, start=1):
        lines.append(f"### Sample {index}\n")
        lines += ["**Prompt**\n", _fence(str(sample.get("prompt", "")))]
        lines += ["**Before (base model)**\n", _fence(str(sample.get("before") or ""))]
        lines += ["**After (with the adapter)**\n", _fence(str(sample.get("after") or ""))]
        if sample.get("reference"):
            lines += ["**Reference answer**\n", _fence(str(sample["reference"]))]
    return "\n".join(lines)


def usage_snippet(base: str, repo_id: str, prompt: str = "Tell me about the sea.") -> str:
    """Copy-paste Python that loads the base model + this adapter by repo ID and chats with the Phi-3 template.

    Args:
        base: the base model as named in the card (`base_model_id`).
        repo_id: the adapter's repo ID.
        prompt: the user message of the example.

    Returns:
        Python source (stops generating at `<|end|>` as well as `<|endoftext|>`).
    """
    if base == TINY_MODEL_NAME:
        base_line = "from trainer.tiny import ensure_tiny_model  # Phi-3 Fine-Tune Studio's tiny offline Phi-3\n\n"
        base_line += "base_id = str(ensure_tiny_model())"
    else:
        base_line = f"base_id = {json.dumps(base)}"
    return f"""import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

{base_line}
adapter_id = {json.dumps(repo_id)}
device = "cuda" if torch.cuda.is_available() else "cpu"

tokenizer = AutoTokenizer.from_pretrained(adapter_id)
model = AutoModelForCausalLM.from_pretrained(base_id, dtype="auto").to(device)
model = PeftModel.from_pretrained(model, adapter_id).eval()

messages = [{{"role": "user", "content": {json.dumps(prompt, ensure_ascii=False)}}}]
inputs = tokenizer.apply_chat_template(
    messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
).to(device)
stop_ids = [tokenizer.convert_tokens_to_ids("<|end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")]
with torch.no_grad():
    output = model.generate(**inputs, max_new_tokens=128, do_sample=False, eos_token_id=stop_ids)
print(tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True))
"""


def _usage_section(base: str, repo_id: str, samples: list[dict[str, Any]]) -> str:
    prompt = str(samples[0].get("prompt") or "") if samples else ""
    snippet = usage_snippet(base, repo_id, prompt) if prompt else usage_snippet(base, repo_id)
    intro = "Load the base model, put the adapter on top, and chat with the Phi-3 chat template:\n"
    return "## Usage\n\n" + intro + "\n" + _fence(snippet, "python")


def _settings_section(run: RunRecord, lora: dict[str, Any], training: dict[str, Any]) -> str:
    targets = ", ".join(lora.get("target_modules") or [])
    batch = training.get("per_device_train_batch_size", 0) * training.get("gradient_accumulation_steps", 0)
    summary = (
        f"LoRA r={lora.get('r')}, alpha={lora.get('lora_alpha')}, dropout={lora.get('lora_dropout')} on {targets}; "
        f"learning rate {training.get('learning_rate')} ({training.get('lr_scheduler_type')}), effective batch "
        f"{batch} rows, max length {training.get('max_length')} tokens."
    )
    return (
        "## Training hyper-parameters\n\n"
        + summary
        + "\n\nThe full run config (`config.yaml`):\n\n"
        + _fence(run.config_text, "yaml")
    )


def _versions_section(versions: dict[str, str]) -> str:
    if not versions:
        return ""
    lines = ["## Framework versions\n"] + [f"- {name}: {version}" for name, version in versions.items()]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the loss curve


@dataclass
class Series:
    """One line of the chart."""

    label: str
    points: list[tuple[float, float]]
    color: tuple[int, int, int]


TRAIN_COLOR = (31, 119, 180)
EVAL_COLOR = (255, 127, 14)


def loss_series(events: Sequence[dict[str, Any]]) -> list[Series]:
    """Train and eval loss against the step, from run events (non-finite values are left out).

    Args:
        events: the run's events (events.jsonl).

    Returns:
        The train-loss and eval-loss series (either may be empty).
    """

    def points(key: str) -> list[tuple[float, float]]:
        out = {}
        for event in events:
            value = event.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value) and isinstance(event.get("step"), int):
                out[event["step"]] = float(value)  # a repeated step (resume) keeps its last value
        return sorted(out.items())

    return [Series("train loss", points("loss"), TRAIN_COLOR), Series("eval loss", points("eval_loss"), EVAL_COLOR)]


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering [low, high].

    Args:
        low: the smallest value shown.
        high: the largest value shown (> low).
        count: about how many ticks.

    Returns:
        Increasing tick values within [low, high].
    """
    raw = (high - low) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = min((m * power for m in (1, 2, 5, 10)), key=lambda candidate: abs(math.log(candidate / raw)))
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def render_loss_chart(series: Sequence[Series], size: tuple[int, int] = (800, 450)) -> Image.Image:
    """A clean line chart of the loss series: axes, grid, tick labels, a legend and a title.

    Args:
        series: the lines to draw (empty ones are skipped).
        size: the image size in pixels.

    Returns:
        An RGB Pillow image.
    """
    from PIL import Image, ImageDraw

    width, height = size
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font, small = _font(15), _font(12)
    left, right, top, bottom = 72, width - 24, 44, height - 56
    draw.text((width // 2, 14), "Training loss", fill="black", font=font, anchor="mt")
    drawn = [s for s in series if s.points]
    if not drawn:
        draw.rectangle((left, top, right, bottom), outline=(200, 200, 200))
        draw.text(((left + right) // 2, (top + bottom) // 2), "no loss logged", fill="gray", font=font, anchor="mm")
        return image
    xs = [x for s in drawn for x, _ in s.points]
    ys = [y for s in drawn for _, y in s.points]
    x_low, x_high = min(xs), max(xs)
    if x_high == x_low:
        x_low, x_high = x_low - 1, x_high + 1
    pad = (max(ys) - min(ys)) * 0.08 or max(abs(max(ys)) * 0.05, 0.05)
    y_low, y_high = min(ys) - pad, max(ys) + pad

    def at(x: float, y: float) -> tuple[float, float]:
        return (
            left + (x - x_low) / (x_high - x_low) * (right - left),
            bottom - (y - y_low) / (y_high - y_low) * (bottom - top),
        )

    x_pad = (x_high - x_low) * 0.03
    x_low, x_high = x_low - x_pad, x_high + x_pad
    for tick in nice_ticks(y_low, y_high, count=6):
        y = at(x_low, tick)[1]
        draw.line((left, y, right, y), fill=(230, 230, 230))
        draw.text((left - 8, y), f"{tick:g}", fill="black", font=small, anchor="rm")
    for tick in nice_ticks(x_low, x_high, count=8):
        if float(tick).is_integer() and tick >= 0:
            x = at(tick, y_low)[0]
            draw.line((x, top, x, bottom), fill=(240, 240, 240))
            draw.text((x, bottom + 6), f"{tick:g}", fill="black", font=small, anchor="mt")
    draw.line((left, top, left, bottom), fill="black", width=1)
    draw.line((left, bottom, right, bottom), fill="black", width=1)
    draw.text(((left + right) // 2, height - 8), "step", fill="black", font=small, anchor="mb")
    draw.text((12, (top + bottom) // 2), "loss", fill="black", font=small, anchor="lm")
    for s in drawn:
        pixels = [at(x, y) for x, y in s.points]
        if len(pixels) > 1:
            draw.line(pixels, fill=s.color, width=3, joint="curve")
        for x, y in pixels:
            draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=s.color)
    legend_x, legend_y = right - 130, top + 8
    draw.rectangle(
        (legend_x - 8, legend_y - 6, right - 6, legend_y + 22 * len(drawn) - 2), fill="white", outline=(200,) * 3
    )
    for index, s in enumerate(drawn):
        y = legend_y + 8 + 22 * index
        draw.line((legend_x, y, legend_x + 24, y), fill=s.color, width=3)
        draw.text((legend_x + 32, y), s.label, fill="black", font=small, anchor="lm")
    return image


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
        return ImageFont.load_default()


def loss_curve_png(run_dir: Path, out: Path) -> Path:
    """Draw the run's train/eval loss (from events.jsonl) as a PNG line chart, written atomically.

    Args:
        run_dir: the run folder.
        out: where to write the PNG.

    Returns:
        out.
    """
    image = render_loss_chart(loss_series(rf.read_events(Path(run_dir))))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            image.save(f, format="PNG")
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


# --------------------------------------------------------------------------- the push


def files_to_push(run_dir: Path) -> list[tuple[str, Path]]:
    """(path in the repo, local file) for everything a push uploads: adapter files at the root, then run files.

    Args:
        run_dir: the run folder (README.md and loss.png are pushed when present).

    Returns:
        The files, adapter first.

    Raises:
        HubError: the adapter is missing (the run has not finished).
    """
    adapter = Path(run_dir) / rf.ADAPTER_DIR
    missing = [name for name in ADAPTER_REQUIRED if not (adapter / name).is_file()]
    if missing:
        raise HubError(
            f"run folder: {adapter} has no {', '.join(missing)}. Push a run that finished training "
            "(the adapter is saved at the end)."
        )
    files = [(p.name, p) for p in sorted(adapter.iterdir()) if p.is_file() and p.name not in ADAPTER_SKIPPED]
    files += [(name, Path(run_dir) / name) for name in RUN_FILES_PUSHED if (Path(run_dir) / name).is_file()]
    return files


def push_run(
    run_dir: Path,
    repo_id: str,
    token: str,
    private: bool = True,
    retries: int = 4,
    backoff_s: float = 1.0,
) -> str:
    """Publish a finished run: model card + loss curve + adapter + config + events, in one commit.

    Checks access first (`check_push_access`), writes README.md and loss.png into the run folder, creates the repo
    (existing is fine; its visibility is left as it is), then uploads in ONE commit. Network errors and 5xx answers
    are retried with exponential backoff (backoff_s, 2x, 4x ...); 4xx answers are not. Nothing local is deleted, and
    status.json gets `push_state` ("pushing", then "pushed" or "push_failed"), `repo_url` and `push_error`.

    Args:
        run_dir: the finished run folder.
        repo_id: the model repo (namespace/name).
        token: a Hugging Face token with write access (never logged or stored).
        private: create the repo as private.
        retries: retries after the first attempt, for each Hub call.
        backoff_s: the first wait between attempts (doubled each time).

    Returns:
        The repo URL.

    Raises:
        HubError: access refused, the adapter is missing, or the Hub kept failing (the run folder is untouched
            apart from README.md, loss.png and status.json).
    """
    run_dir = Path(run_dir)
    files_to_push(run_dir)  # fail before any network call when the adapter is missing
    state = (rf.read_json(run_dir / rf.STATUS_FILE, {}) or {}).get("state") or "unknown"
    if state != "succeeded":
        logger.warning("pushing run %s whose state is %s", run_dir.name, state)
    _record_push(run_dir, push_state="pushing", repo_id=repo_id, push_error=None)
    keep = f"The adapter is safe in {run_dir / rf.ADAPTER_DIR}; push again to retry."
    try:
        user = _check_push_access(repo_id, token, retries, backoff_s)
        rf.write_text_atomic(run_dir / MODEL_CARD_FILE, model_card(run_dir, repo_id=repo_id))
        loss_curve_png(run_dir, run_dir / LOSS_CURVE_FILE)
        files = files_to_push(run_dir)
        logger.info("pushing %d files of run %s to %s as %s", len(files), run_dir.name, repo_id, user)
        url, info = _create_and_commit(
            repo_id,
            files,
            token,
            private,
            f"Upload LoRA adapter from run {run_dir.name}",
            _commit_description(run_dir),
            retries,
            backoff_s,
        )
    except Exception as exc:
        error = _hub_error(exc, token, f"pushing to {repo_id!r}", keep)
        _record_push(run_dir, push_state="push_failed", repo_id=repo_id, push_error=str(error))
        logger.error("push to %s failed: %s", repo_id, error)
        logger.debug("push failure details", exc_info=True)
        raise error from None
    _record_push(
        run_dir,
        push_state="pushed",
        repo_id=repo_id,
        repo_url=url,
        push_error=None,
        push_commit=getattr(info, "oid", None),
        pushed_at=time.time(),
    )
    logger.info("pushed run %s to %s (commit %s)", run_dir.name, url, getattr(info, "oid", "?"))
    return url


def _create_and_commit(
    repo_id: str,
    files: list[tuple[str, Path]],
    token: str,
    private: bool,
    message: str,
    description: str,
    retries: int,
    backoff_s: float,
) -> tuple[str, Any]:
    """Create the model repo (existing is fine) and upload files in ONE commit, each call retried; (url, commit)."""
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi()

    def create() -> str:
        return str(api.create_repo(repo_id, token=token, private=private, exist_ok=True, repo_type="model"))

    def commit() -> Any:
        operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(path)) for name, path in files]
        return api.create_commit(
            repo_id, operations, commit_message=message, commit_description=description, token=token, repo_type="model"
        )

    url = _with_retries(f"creating {repo_id}", create, retries, backoff_s)
    return url, _with_retries(f"uploading to {repo_id}", commit, retries, backoff_s)


def merged_repo_id(repo_id: str) -> str:
    """Where the merged full model goes: the adapter repo's name + '-merged'."""
    return f"{repo_id}-merged"


def merge_adapter(run_dir: Path, out_dir: Path) -> Path:
    """Merge the run's adapter into an unquantised copy of its base (bf16 on a GPU, fp32 on a CPU) and save it.

    QLoRA runs merge into the full-precision base too: merging into 4-bit weights would round the update away.

    Args:
        run_dir: the finished run folder (its config.yaml and adapter/).
        out_dir: where the merged model and tokenizer are written.

    Returns:
        out_dir.
    """
    import dataclasses

    from peft import PeftModel
    from transformers import AutoTokenizer

    from trainer.config import load_yaml
    from trainer.modeling import cuda_available, load_base_model

    config = load_yaml(Path(run_dir) / rf.CONFIG_FILE)
    dtype = "bfloat16" if cuda_available() else "float32"
    base = load_base_model(dataclasses.replace(config.model, load_in_4bit=False, dtype=dtype), for_training=False)
    merged = PeftModel.from_pretrained(base, Path(run_dir) / rf.ADAPTER_DIR).merge_and_unload()
    merged.save_pretrained(out_dir, safe_serialization=True)
    AutoTokenizer.from_pretrained(Path(run_dir) / rf.ADAPTER_DIR).save_pretrained(out_dir)
    return Path(out_dir)


def merged_card(run_dir: Path, repo_id: str, adapter_repo_id: str) -> str:
    """The model card of the merged full model: metadata, where it comes from, and how to use it."""
    from huggingface_hub import ModelCardData

    run = read_run(run_dir)
    meta = card_metadata(run.config)
    meta.update(library_name="transformers", tags=[*meta["tags"], "merged"])
    prompt = str(run.samples[0].get("prompt") or "Tell me about the sea.") if run.samples else "Tell me about the sea."
    snippet = f"""import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

model_id = {json.dumps(repo_id)}
tokenizer = AutoTokenizer.from_pretrained(model_id)
model = AutoModelForCausalLM.from_pretrained(model_id, dtype="auto").eval()
inputs = tokenizer.apply_chat_template([{{"role": "user", "content": {json.dumps(prompt)}}}],
                                       add_generation_prompt=True, return_tensors="pt", return_dict=True)
stop_ids = [tokenizer.convert_tokens_to_ids("<|end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")]
output = model.generate(**inputs, max_new_tokens=128, do_sample=False, eos_token_id=stop_ids)
print(tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))
"""
    return "\n".join(
        [
            f"---\n{ModelCardData(**meta).to_yaml()}\n---\n",
            f"# {repo_id.split('/')[-1]}\n",
            f"`{meta['base_model']}` with the LoRA adapter {_hub_link(adapter_repo_id)} merged "
            "into its weights (`merge_and_unload`): a full model that needs no PEFT. The adapter's card has the "
            "data, the hyper-parameters and the evaluation.\n",
            _results_section(run),
            "## Usage\n\n" + _fence(snippet, "python"),
        ]
    )


def push_merged(
    run_dir: Path, repo_id: str, token: str, private: bool = True, retries: int = 4, backoff_s: float = 1.0
) -> str:
    """Merge the adapter into its base and push the full model to `<repo_id>-merged` with its own card.

    Args:
        run_dir: the finished run folder.
        repo_id: the ADAPTER's repo ID; the merged model goes to `merged_repo_id(repo_id)`.
        token: a write token (never logged or stored).
        private: create the repo as private.
        retries: retries per Hub call on network errors and 5xx.
        backoff_s: the first wait between attempts.

    Returns:
        The merged repo's URL.

    Raises:
        HubError: no access, or the Hub kept failing (the merged files stay in `run_dir/merged`).
    """
    run_dir = Path(run_dir)
    target = merged_repo_id(repo_id)
    try:
        _check_push_access(target, token, retries, backoff_s)
        out = merge_adapter(run_dir, run_dir / "merged")
        rf.write_text_atomic(out / MODEL_CARD_FILE, merged_card(run_dir, target, repo_id))
        files = [(p.name, p) for p in sorted(out.iterdir()) if p.is_file()]
        url, _ = _create_and_commit(
            target,
            files,
            token,
            private,
            f"Upload merged model from run {run_dir.name}",
            _commit_description(run_dir),
            retries,
            backoff_s,
        )
    except Exception as exc:
        error = _hub_error(exc, token, f"pushing the merged model to {target!r}")
        _record_push(run_dir, merged_push_error=str(error))
        raise error from None
    _record_push(run_dir, merged_repo_url=url, merged_push_error=None)
    return url


def push_checkpoint(
    checkpoint_dir: Path, repo_id: str, token: str, private: bool = True, retries: int = 4, backoff_s: float = 1.0
) -> str:
    """Upload one checkpoint's adapter files to `checkpoints/<checkpoint name>/` of the repo, in one commit.

    Returns:
        The repo URL.

    Raises:
        HubError: the Hub kept failing or refused (the checkpoint stays on disk either way).
    """
    checkpoint_dir = Path(checkpoint_dir)
    files = [
        (f"checkpoints/{checkpoint_dir.name}/{name}", checkpoint_dir / name)
        for name in ADAPTER_REQUIRED
        if (checkpoint_dir / name).is_file()
    ]
    if len(files) != len(ADAPTER_REQUIRED):
        raise HubError(f"{checkpoint_dir}: no adapter files in this checkpoint.")
    try:
        url, _ = _create_and_commit(
            repo_id,
            files,
            token,
            private,
            f"Upload {checkpoint_dir.name} adapter",
            "Pushed during training by Phi-3 Fine-Tune Studio.",
            retries,
            backoff_s,
        )
    except Exception as exc:
        raise _hub_error(exc, token, f"pushing {checkpoint_dir.name} to {repo_id!r}") from None
    return url


def _commit_description(run_dir: Path) -> str:
    status = rf.read_json(run_dir / rf.STATUS_FILE, {}) or {}
    before, after = status.get("eval_loss_before"), status.get("eval_loss_after")
    return f"Pushed by Phi-3 Fine-Tune Studio. Eval loss {_fmt_loss(before)} -> {_fmt_loss(after)}."


def _record_push(run_dir: Path, **fields: Any) -> None:
    """Merge push fields into status.json, keeping the run's `state` as it is."""
    status = rf.read_json(run_dir / rf.STATUS_FILE, {}) or {}
    rf.write_status(run_dir, status.get("state") or "unknown", **fields)
