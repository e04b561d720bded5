"""Speed and memory benchmark: the stock TRL baseline against the project's optimised training path.

    python -m trainer bench --tiny --steps 12 --seq-lens 128                  # CPU, tiny Phi-3 (what the tests run)
    python -m trainer bench --methods lora,qlora --seq-lens 2048,1024 --liger  # GPU, Phi-3-mini architecture

Both variants train the same LoRA r=16 adapter on Phi-3's four fused projections over the same synthetic chat rows
(the real Phi-3 tokenizer and chat template; a long-tailed length distribution up to the sequence length), in one
process, one after the other, from the same seed:

- baseline: TRL SFTTrainer defaults: padded batches, gradient checkpointing on, SDPA attention.
- optimised: padding-free batches (per-sample position_ids, so no attention across samples; FlashAttention varlen
  when flash-attn is installed), gradient checkpointing only when the memory estimate says it is needed, pinned
  memory and two dataloader workers on a GPU. (Both variants use fused AdamW, transformers' default with
  torch >= 2.8, and TRL 1.16's loss, which never materialises the full logits.)
- dpo (`--methods dpo`): DPO with LoRA on pairs made from the same rows (chosen: the row's reply, rejected: another
  row's), the reference being the base with the adapter disabled: stock DPOTrainer defaults (gradient checkpointing
  on) against the studio's path (checkpointing only when needed, pinned memory and loader workers on a GPU); both
  pad (TRL 1.16's DPO has no padding-free batches). Tokens are both sequences of each pair; its model FLOPs take in the
  reference's forward too.
- optimised+liger (`--liger`, CUDA and the liger-kernel package): the optimised path with TRL's
  `use_liger_kernel=True` (Liger's Triton RMSNorm, SwiGLU, RoPE and fused linear cross-entropy), a measured option.

One base model per method serves every variant (each trains a fresh adapter, removed afterwards); the Liger variants
run last, since Liger patches the model in place. Results are written after each configuration, so a benchmark cut
short keeps what it measured.

Reported per configuration: non-padding tokens/s in steady state (warm-up steps excluded), step time, peak GPU
memory, model-FLOPs utilisation and the per-step loss; then optimised/baseline ratios. MFU counts model FLOPs only
(recomputation from checkpointing is not credited):

    per token: 4 * P_base              frozen base: forward (2P) + backward through activations (2P), no weight grads
             + 6 * P_lora              adapters: forward, input and weight gradients
             + 6 * L * d * s_i         causal attention scores and values (QK^T, AV), forward and backward (x3),
                                       s_i = the token's own sample length (no attention across samples)

The model is Phi-3-mini's architecture (microsoft/Phi-3-mini-4k-instruct config) randomly initialised, since no
weights can be downloaded here; speed and memory do not depend on the weight values.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainer.phi3 import PHI3_MINI_CONFIG, PHI3_PROJECTIONS
from trainer.tools.bench_data import synthetic_pairs, synthetic_rows, token_count
from trainer.versions import versions_line

logger = logging.getLogger(__name__)

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10G": 125.0, "L40S": 362.0}
METHODS = ("lora", "qlora", "dpo")
"""What can be benchmarked: SFT with LoRA on a 16-bit base (fp32 for the tiny model), SFT with QLoRA, DPO with LoRA."""
VARIANTS = ("baseline", "optimised")
LIGER = "optimised+liger"


@dataclass
class Result:
    """One benchmark configuration's figures."""

    method: str
    seq_len: int
    variant: str
    batch_size: int
    gradient_checkpointing: bool
    padding_free: bool
    attn_implementation: str
    steps: int
    warmup_steps: int
    tokens_per_s: float
    step_time_s: float
    peak_mem_gb: float | None
    mfu: float | None
    losses: list[float] = field(default_factory=list)
    error: str | None = None  # the configuration failed; its figures are zero


def flops_per_step(
    params_base: int, params_lora: int, n_layers: int, hidden: int, lengths: list[int], reference: bool = False
) -> float:
    """Model FLOPs of one optimiser step over samples of the given token lengths (see the module docstring); with
    `reference` (DPO), the reference's forward of every token too: 2 * P_base + 2 * L * d * s_i more per token."""
    tokens = sum(lengths)
    attention = 6 * n_layers * hidden * sum(s * s for s in lengths)  # sum over tokens of s_i = sum of s_i^2
    flops = 4 * params_base * tokens + 6 * params_lora * tokens + attention
    if reference:
        flops += 2 * params_base * tokens + attention / 3
    return flops


def needs_checkpointing(params: int, n_layers: int, hidden: int, tokens_per_batch: int, free_bytes: int) -> bool:
    """Whether activations of one micro-batch would not fit beside the weights without checkpointing.

    Estimate: bf16 weights (2 bytes/param) plus ~34 * hidden bytes of saved activations per token and layer
    (attention and MLP inputs, the SwiGLU intermediates at 8/3 width, norms), with 20 % headroom.
    """
    activations = 34 * hidden * n_layers * tokens_per_batch
    return 1.2 * (2 * params + activations) > free_bytes


def common_args(on_gpu: bool) -> dict[str, Any]:
    """The trainer arguments every benchmark shares: log every step, save and report nothing, seed 0, bf16 on a GPU."""
    return dict(
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=0,
        bf16=on_gpu,
        use_cpu=not on_gpu,
    )


def peak_tflops(device_name: str) -> float | None:
    """Dense bf16 peak of a known GPU, or None."""
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in device_name), None)


def liger_problem() -> str | None:
    """Why the Liger variant cannot run here, or None."""
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        return "Liger kernels are Triton GPU kernels; this machine has no CUDA GPU"
    if importlib.util.find_spec("liger_kernel") is None:
        return "the liger-kernel package is not installed"
    return None


def plan(methods: list[str], seq_lens: list[int], liger: bool) -> list[tuple[str, int, str]]:
    """The (method, seq_len, variant) configurations in the order they run: per method the plain variants first,
    then the Liger ones (Liger patches the shared base model in place)."""
    order = []
    for method in methods:
        order += [(method, s, v) for s in seq_lens for v in VARIANTS]
        if liger:
            order += [(method, s, LIGER) for s in seq_lens]
    return order


def run_bench(
    tiny: bool,
    methods: list[str],
    seq_lens: list[int],
    steps: int,
    warmup_steps: int,
    batch_size: int,
    out_dir: Path,
    liger: bool = False,
) -> dict[str, Any]:
    """Run every (method, seq_len, variant), write bench.json and bench.md to out_dir, return the report.

    A configuration that fails is recorded with its error and the others still run; the files are rewritten after
    each configuration. `liger` adds the Liger variants where they can run (else the report says why not).
    """
    import torch

    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "environment": environment(),
        "tiny": tiny,
        "steps": steps,
        "warmup_steps": warmup_steps,
        "flops_formula": __doc__.split("MFU counts")[1].split("The model is")[0].strip(),
        "liger": (liger_problem() or "measured") if liger else "not asked for",
        "results": [],
        "ratios": [],
    }
    results: list[Result] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    model, loaded = None, None
    for method, seq_len, variant in plan(methods, seq_lens, liger and liger_problem() is None):
        if loaded != method:
            model, loaded = None, None
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            model, loaded = _model(tiny, method, torch.cuda.is_available()), method
        logger.info("bench %s seq %d %s", method, seq_len, variant)
        try:
            results.append(_run_one(model, method, seq_len, variant, steps, warmup_steps, batch_size))
        except Exception as exc:  # noqa: BLE001 - one failed configuration must not lose the others' figures
            logger.exception("bench %s seq %d %s failed", method, seq_len, variant)
            results.append(_failed(method, seq_len, variant, batch_size, steps, warmup_steps, exc))
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        report.update(results=[asdict(r) for r in results], ratios=ratios(results))
        (out_dir / "bench.json").write_text(json.dumps(report, indent=2))
        (out_dir / "bench.md").write_text(markdown_table(report))
    return report


def _failed(method: str, seq_len: int, variant: str, batch: int, steps: int, warmup: int, exc: Exception) -> Result:
    """The record of a configuration that raised."""
    error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    zero = dict(tokens_per_s=0.0, step_time_s=0.0, peak_mem_gb=None, mfu=None, error=error)
    flags = dict(gradient_checkpointing=False, padding_free=False, attn_implementation="")
    return Result(method, seq_len, variant, batch, steps=steps, warmup_steps=warmup, **flags, **zero)


def ratios(results: list[Result]) -> list[dict[str, Any]]:
    """Each faster variant against the baseline of its (method, seq_len): speedup, memory ratio, and the largest
    per-step loss difference over the first 50 steps. Failed configurations are left out."""
    out = []
    ok = [r for r in results if r.error is None]
    for base in (r for r in ok if r.variant == "baseline"):
        for opt in (r for r in ok if r.variant != "baseline" and (r.method, r.seq_len) == (base.method, base.seq_len)):
            pairs = list(zip(base.losses[:50], opt.losses[:50], strict=False))
            out.append(
                {
                    "method": base.method,
                    "seq_len": base.seq_len,
                    "variant": opt.variant,
                    "speedup": round(opt.tokens_per_s / base.tokens_per_s, 3) if base.tokens_per_s else None,
                    "memory_ratio": round(opt.peak_mem_gb / base.peak_mem_gb, 3)
                    if base.peak_mem_gb and opt.peak_mem_gb
                    else None,
                    "max_loss_rel_diff": round(max(abs(o - b) / abs(b) for b, o in pairs), 5) if pairs else None,
                }
            )
    return out


def markdown_table(report: dict[str, Any]) -> str:
    """The report as a Markdown table (README-ready)."""
    env = report["environment"]
    lines = [
        f"Device: {env['device']} · {versions_line(env)} · {report['date']}",
        "",
        "| method | seq len | variant | tokens/s | step s | peak GB | MFU | grad ckpt | padding-free |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for r in report["results"]:
        if r.get("error"):
            lines.append(f"| {r['method']} | {r['seq_len']} | {r['variant']} | failed: {r['error']} |||||||")
            continue
        mem = f"{r['peak_mem_gb']:.1f}" if r["peak_mem_gb"] is not None else "n/a"
        mfu = f"{100 * r['mfu']:.1f} %" if r["mfu"] is not None else "n/a"
        lines.append(
            f"| {r['method']} | {r['seq_len']} | {r['variant']} | {r['tokens_per_s']:.0f} | "
            f"{r['step_time_s']:.3f} | {mem} | {mfu} | {r['gradient_checkpointing']} | {r['padding_free']} |"
        )
    lines += [
        "",
        "Against the stock TRL baseline of the same method and length:",
        "",
        "| method | seq len | variant | speedup | memory ratio | max loss diff (first 50 steps) |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for q in report["ratios"]:
        mem = f"{q['memory_ratio']:.2f}" if q["memory_ratio"] is not None else "n/a"
        lines.append(
            f"| {q['method']} | {q['seq_len']} | {q['variant']} | {q['speedup']:.2f}x | {mem} | "
            f"{100 * q['max_loss_rel_diff']:.2f} % |"
        )
    if report.get("liger") not in (None, "measured", "not asked for"):
        lines += ["", f"Liger kernels not measured: {report['liger']}."]
    return "\n".join(lines) + "\n"


def environment() -> dict[str, Any]:
    """Device, driver/CUDA and library versions (every library of `trainer.versions.LIBRARIES` installed here)."""
    import torch

    from trainer.versions import library_versions

    env: dict[str, Any] = {"platform": platform.platform(), **library_versions()}
    if torch.cuda.is_available():
        env["device"] = torch.cuda.get_device_name(0)
        env["cuda"] = torch.version.cuda
        try:
            import subprocess

            env["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            env["driver"] = None
    else:
        env["device"] = f"cpu ({platform.processor() or platform.machine()})"
    return env


def _trainer(method: str, model, tokenizer, rows, args: dict[str, Any], optimised: bool, seq_len: int, variant: str):
    """The TRL trainer of a benchmark configuration: SFTTrainer on the rows (LoRA, QLoRA), DPOTrainer on pairs made
    from them (the reference: the base with the adapter disabled, as in the studio)."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    from trainer.config import LoraSettings
    from trainer.modeling import lora_config

    peft = lora_config(LoraSettings(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=list(PHI3_PROJECTIONS)))
    if method == "dpo":  # TRL 1.16's DPO has no padding-free batches: both variants pad
        config = DPOConfig(**args, max_length=seq_len, beta=0.1)
        data = Dataset.from_list(synthetic_pairs(rows))
        return DPOTrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer, peft_config=peft)
    config = SFTConfig(
        **args,
        padding_free=optimised,
        max_length=None if optimised else seq_len,  # rows are built to fit; padding-free does not truncate
        assistant_only_loss=True,
        use_liger_kernel=variant == LIGER,
    )
    data = Dataset.from_dict({"messages": rows})
    return SFTTrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer, peft_config=peft)


def _run_one(model, method: str, seq_len: int, variant: str, steps: int, warmup_steps: int, batch_size: int) -> Result:
    import torch
    from transformers import PrinterCallback, TrainerCallback, set_seed

    from trainer.config import ModelConfig
    from trainer.methods import checkpointing_settings
    from trainer.modeling import checkpointing_on, load_tokenizer, pick_attention, set_checkpointing
    from trainer.phi3 import TINY_MODEL_NAME
    from trainer.training import count_parameters

    on_gpu = torch.cuda.is_available()
    set_seed(0)
    tokenizer = load_tokenizer(ModelConfig(model_name_or_path=TINY_MODEL_NAME))  # the real Phi-3 tokenizer
    rows = synthetic_rows(steps * batch_size, seq_len, tokenizer)
    optimised = variant != "baseline"
    dtype = next(model.parameters()).dtype if not method == "qlora" else torch.bfloat16
    attn = pick_attention("auto" if optimised else "sdpa", dtype, on_gpu) or "sdpa"
    model.config._attn_implementation = attn  # noqa: SLF001 - switch the attention kernel of the loaded model
    params = count_parameters(model)[1]  # a 4-bit weight counts at its real size
    sequences = 2 if method == "dpo" else 1  # a DPO batch holds each pair's chosen and rejected sequences
    if optimised:
        free = torch.cuda.mem_get_info()[0] if on_gpu else 1 << 62
        checkpointing = needs_checkpointing(
            params, model.config.num_hidden_layers, model.config.hidden_size, sequences * batch_size * seq_len, free
        )
    else:
        checkpointing = True  # TRL's default
    if not checkpointing and checkpointing_on(model):
        set_checkpointing(model, False)  # left on by an earlier variant on this shared base
    args = dict(
        output_dir=str(Path("/tmp") / f"bench-{method}-{seq_len}-{variant}"),
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=1,
        max_steps=steps,
        learning_rate=1e-4,
        lr_scheduler_type="constant",
        **common_args(on_gpu),
        **checkpointing_settings(checkpointing),
        dataloader_pin_memory=on_gpu and optimised,
        dataloader_num_workers=2 if (on_gpu and optimised) else 0,
    )
    timer = _StepTimer(TrainerCallback)
    trainer = _trainer(method, model, tokenizer, rows, args, optimised, seq_len, variant)
    trainer.add_callback(timer.callback)
    trainer.remove_callback(PrinterCallback)
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    lora_params, params = count_parameters(trainer.model)
    lengths = [token_count(tokenizer, m) for m in rows]
    if method == "dpo":  # each pair: its chosen row and its prompt with another row's reply
        pairs = synthetic_pairs(rows)
        lengths = [
            token_count(tokenizer, p["prompt"] + p["chosen"]) + token_count(tokenizer, p["prompt"] + p["rejected"])
            for p in pairs
        ]
    steady = slice(warmup_steps, steps)
    step_times = timer.step_times[steady]
    step_tokens = [sum(lengths[i * batch_size : (i + 1) * batch_size]) for i in range(steps)][steady]
    seconds = sum(step_times)
    flops = sum(
        flops_per_step(
            params - lora_params,
            lora_params,
            model.config.num_hidden_layers,
            model.config.hidden_size,
            lengths[i * batch_size : (i + 1) * batch_size],
            reference=method == "dpo",
        )
        for i in range(warmup_steps, steps)
    )
    peak = peak_tflops(torch.cuda.get_device_name(0)) if on_gpu else None
    result = Result(
        method=method,
        seq_len=seq_len,
        variant=variant,
        batch_size=batch_size,
        gradient_checkpointing=checkpointing,
        padding_free=optimised and method != "dpo",
        attn_implementation=attn,
        steps=steps,
        warmup_steps=warmup_steps,
        tokens_per_s=round(sum(step_tokens) / seconds, 1),
        step_time_s=round(seconds / len(step_times), 4),
        peak_mem_gb=round(torch.cuda.max_memory_allocated() / 2**30, 2) if on_gpu else None,
        mfu=round(flops / seconds / (peak * 1e12), 4) if peak else None,
        losses=[round(x, 5) for x in timer.losses],
    )
    trainer.model.unload()  # the shared base without this variant's adapter
    del trainer
    return result


class _StepTimer:
    """Wall time per optimiser step (GPU-synchronised) and the logged loss per step."""

    def __init__(self, base):
        timer = self

        class Callback(base):
            def on_step_begin(self, args, state, control, **kwargs):
                _sync()
                timer.started = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                _sync()
                timer.step_times.append(time.perf_counter() - timer.started)

            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and "loss" in logs:
                    timer.losses.append(float(logs["loss"]))

        self.started = 0.0
        self.step_times: list[float] = []
        self.losses: list[float] = []
        self.callback = Callback()


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _model(tiny: bool, method: str, on_gpu: bool):
    """The tiny Phi-3 (CPU: fp32, or NF4 on bitsandbytes' CPU backend for QLoRA) or a random Phi-3-mini (GPU, bf16;
    4-bit NF4 for QLoRA via a saved random copy)."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, Phi3Config, Phi3ForCausalLM

    if tiny:
        from trainer.config import ModelConfig
        from trainer.modeling import load_base_model
        from trainer.phi3 import TINY_MODEL_NAME

        model_cfg = ModelConfig(model_name_or_path=TINY_MODEL_NAME, dtype="float32", load_in_4bit=method == "qlora")
        return load_base_model(model_cfg, for_training=True)
    if not on_gpu:
        raise ValueError("bench: the Phi-3-mini benchmark needs a CUDA GPU; use --tiny on a CPU.")
    torch.manual_seed(0)
    if method in ("lora", "dpo"):
        with torch.device("cuda"):
            return Phi3ForCausalLM(Phi3Config(**PHI3_MINI_CONFIG)).to(torch.bfloat16)
    path = random_phi3_mini()
    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    from peft import prepare_model_for_kbit_training

    from trainer.modeling import own_device

    model = AutoModelForCausalLM.from_pretrained(
        path, quantization_config=quant, device_map={"": own_device()}, dtype=torch.bfloat16
    )
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)


def random_phi3_mini() -> Path:
    """A random Phi-3-mini in bf16 with the real tokenizer, saved once to /tmp (what QLoRA and chat load)."""
    import torch
    from transformers import AutoTokenizer, Phi3Config, Phi3ForCausalLM

    from trainer.paths import TOKENIZER_DIR

    path = Path("/tmp/phi3-mini-random")
    if not (path / "config.json").exists():
        torch.manual_seed(0)
        with torch.device("cuda"):
            Phi3ForCausalLM(Phi3Config(**PHI3_MINI_CONFIG)).to(torch.bfloat16).save_pretrained(path)
        AutoTokenizer.from_pretrained(TOKENIZER_DIR).save_pretrained(path)
    return path
