"""Peak accelerator memory of a LoRA / QLoRA run, from the model's shape and the RunConfig (pure arithmetic).

    peak     = overhead + max(training, evaluation)
    training = weights + adapter + activations + max(loss_head, backward)
    evaluation = weights + adapter + eval_head

In bytes, with N tokens in the largest micro-batch, hidden h, intermediate i, L layers, a query / kv heads of
width d, vocabulary V, LoRA rank r, P parameters (P_lin of them in the decoder's linear layers):

- weights: 2·P on a 16-bit base, 4·P in fp32; QLoRA: P_lin·(0.5 + q) + 4·(P − P_lin). bitsandbytes NF4 stores
  blocks of 64 values with one absmax each: q = 4/64 (fp32 absmax), or 1/64 + 4/(64·256) with nested quantisation;
  `prepare_model_for_kbit_training` turns the unquantised embeddings, norms and lm_head into fp32.
- adapter: 16·P_lora: fp32 weights (PEFT keeps adapters in fp32), fp32 grads, AdamW's exp_avg and exp_avg_sq;
  + 2·P_lora under bf16 autocast (16-bit and 4-bit bases), whose 16-bit copies of the adapter weights autograd keeps.
- activations: what autograd saves, per token and decoder layer, × L × N (`layer_activation_bytes`):

      2·(4h + 4)                                 two RMSNorms: an fp32 copy of the input, 1/rms
    + E_a·((a + 2kv)·d + a·d + kv·d + a·d) + 4a  fused qkv output (the v view keeps it), rotated q and k, attention
                                                 output, log-sum-exp (4-bit: E_a·(2a + 2kv)·d + 4a, SDPA's copies)
    + E_m·3i                                     gate_up output (SiLU keeps it), SiLU(gate)
    + Σ over adapted linears of f·(E_l + M) + r·E_l   the adapter's input f wide, its dropout mask (M = 0 without
                                                 dropout; 1 byte on CUDA, 4 on a CPU), lora_A's output

  with E = 2 bytes on a 16-bit base (bf16 autocast), 4 in fp32, and on a 4-bit base E_a = E_l = 2, E_m = 4 (its
  residual stream is fp32). With gradient checkpointing only each layer's input is kept: E_r·h. Plus the final
  norm and the LM head's input, 4h + 4 + E_r·h (on CUDA another E_r·h: the copy of the scored positions).
  A measured-structure model: every term is a tensor seen with `torch.autograd.graph.saved_tensors_hooks`
  (torch 2.13, transformers 5.24, peft 0.21), and the sum equals what autograd saves, byte for byte, in fp32, under
  bf16 autocast and on a 4-bit base (tests/integration/test_estimate_memory.py). It is Korthikanti et al. 2022
  ("Reducing Activation Recomputation", s·b·h·(34 + 5·a·s/h) per layer) redone for LoRA on a frozen base: frozen
  linears keep no input, SDPA/flash attention keeps no s×s scores, the adapters keep their inputs.
- loss_head: TRL 1.16's fused LM head (`trl.kernels.chunked_logprob`) never builds the N×V logits: one tile of
  min(N, 4096)×32768 in the compute dtype, the fp32 gradient of its N×h input, and on a CPU (torch fallback, no
  Triton) 7 fp32 V-wide temporaries and a bool mask per tiled token (measured). Without it (`fused_loss=False`,
  the plain transformers loss): N·V·(E_c + 4 + 4) for the logits, their fp32 upcast and the fp32 log-softmax/grad.
- backward: gradients in flight through one layer, N·(h + i)·E_m; with checkpointing plus that layer's recomputed
  activations; QLoRA plus one dequantised weight (the largest 4-bit linear, 2 bytes per value).
- eval_head: forward only (no activations kept): the head tile for an eval batch (+ 3 fp32 V-wide temporaries on a
  CPU).
- overhead: CUDA context, cuBLAS workspaces and allocator slack, 1 GiB (an assumption); 0 on a CPU.
- generation (GRPO): the completions of one generation batch are sampled before they are trained on: the KV cache
  of R rows of T tokens (longest prompt + max_completion_length), R·T·2·L·kv·d·E_a, and each decode step's fp32
  logits, R·V·4. Training's activations are then those of B completions of T tokens each (padded batches).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from trainer.config import LoraSettings, RunConfig, TrainingSettings
from trainer.family import family_member
from trainer.phi3 import BUNDLED_TOKENIZER_MODELS, PHI3_MINI_CONFIG, TINY_CONFIG, TINY_MODEL_NAME

GIB = 1024**3
CUDA_OVERHEAD = 1 * GIB
HEAD_TOKEN_CHUNK = 4096  # trl.kernels.chunked_logprob.TOKEN_CHUNK_SIZE
HEAD_VOCAB_CHUNK = 32768  # trl.trainer.utils._CHUNKED_LOGPROB_CHUNK_SIZE (the tile's width, whatever the vocabulary)
CPU_HEAD_TILES_TRAIN = 7.25  # fp32 V-wide temporaries (+ a bool mask) of the torch fallback's backward, measured
CPU_HEAD_TILES_EVAL = 3.25  # the same for a forward without gradients, measured
NF4_BLOCK, NESTED_BLOCK = 64, 256
PHI3_LINEARS = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")
DeviceKind = Literal["cuda", "cpu"]


@dataclass(frozen=True)
class ModelShape:
    """The sizes of a Phi-3-family model that memory and FLOPs depend on (from a transformers config)."""

    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    tied: bool = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | Any) -> ModelShape:
        """From a `Phi3Config` (or any object with its attributes) or a config dict."""
        get = config.get if isinstance(config, Mapping) else lambda key, default=None: getattr(config, key, default)
        heads = int(get("num_attention_heads"))
        hidden = int(get("hidden_size"))
        return cls(
            vocab=int(get("vocab_size")),
            hidden=hidden,
            intermediate=int(get("intermediate_size")),
            layers=int(get("num_hidden_layers")),
            heads=heads,
            kv_heads=int(get("num_key_value_heads") or heads),
            head_dim=int(get("head_dim", None) or hidden // heads),
            tied=bool(get("tie_word_embeddings", False)),
        )

    def linears(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear layer of one decoder layer (Phi-3's fused projections)."""
        h, d = self.hidden, self.head_dim
        return {
            "qkv_proj": (h, (self.heads + 2 * self.kv_heads) * d),
            "o_proj": (self.heads * d, h),
            "gate_up_proj": (h, 2 * self.intermediate),
            "down_proj": (self.intermediate, h),
        }

    @property
    def linear_params(self) -> int:
        """Parameters in the decoder layers' linear layers (the ones QLoRA stores in 4 bits)."""
        return self.layers * sum(fin * fout for fin, fout in self.linears().values())

    @property
    def n_params(self) -> int:
        """All parameters: embeddings, lm_head (unless tied), linears, two RMSNorms per layer and the final one."""
        embeddings = self.vocab * self.hidden * (1 if self.tied else 2)
        return embeddings + self.linear_params + (2 * self.layers + 1) * self.hidden

    def targets(self, target_modules: Sequence[str]) -> list[str]:
        """The linear layers LoRA adapts ("all-linear" = all four; PEFT leaves lm_head out)."""
        names = list(PHI3_LINEARS) if list(target_modules) == ["all-linear"] else list(target_modules)
        if unknown := [name for name in names if name not in PHI3_LINEARS]:
            raise ValueError(f"lora.target_modules: {unknown} are not Phi-3 linear layers ({', '.join(PHI3_LINEARS)})")
        return names

    def lora_params(self, r: int, target_modules: Sequence[str]) -> int:
        """LoRA parameters: r·(in + out) per adapted linear per layer (A is r×in, B is out×r)."""
        shapes = self.linears()
        return self.layers * sum(r * sum(shapes[name]) for name in self.targets(target_modules))


def model_shape(name: str, token: str | bool | None = None) -> ModelShape:
    """The shape of a configured base model: known ones without I/O, others from their config.json.

    token: for the Hub (False: none at all, not even the machine's own).

    Raises:
        ValueError: the config cannot be read (offline, private, not a model).
    """
    if name == TINY_MODEL_NAME:
        return ModelShape.from_config(TINY_CONFIG)
    if name in BUNDLED_TOKENIZER_MODELS:  # Phi-3-mini 4k / 128k: the same sizes
        return ModelShape.from_config(PHI3_MINI_CONFIG)
    if (member := family_member(name)) is not None:  # Phi-3.5, Phi-3-medium, Phi-4-mini, Phi-4: their config.json
        return ModelShape.from_config(member.config)
    from transformers import AutoConfig

    try:
        return ModelShape.from_config(AutoConfig.from_pretrained(name, trust_remote_code=False, token=token))
    except Exception as exc:  # noqa: BLE001 - offline, private or not a model: one message
        raise ValueError(f"cannot read the config of {name!r} to estimate memory ({type(exc).__name__})") from exc


@dataclass(frozen=True)
class Precision:
    """Bytes per value of each kind of tensor a run keeps (see the module docstring)."""

    name: str  # "16-bit", "fp32" or "4-bit"
    attention: int  # E_a: attention tensors
    mlp: int  # E_m: MLP tensors and the gradients in flight
    adapter_input: int  # E_l: the saved input of a LoRA adapter
    residual: int  # E_r: the residual stream (what a checkpointed layer keeps)
    head: int  # E_c: the LM head's compute dtype
    mask: int  # M: a dropout mask value (a bool on CUDA; CPU dropout keeps an fp32 mask)


def precision(cfg: RunConfig, device: DeviceKind) -> Precision:
    """How a run stores its tensors on a device: 4-bit base, 16-bit base under autocast, or fp32 throughout."""
    mask = 1 if device == "cuda" else 4
    if cfg.model.load_in_4bit:  # fp32 residual (prepare_model_for_kbit_training), bf16 autocast for matmuls
        return Precision("4-bit", attention=2, mlp=4, adapter_input=2, residual=4, head=2, mask=mask)
    dtype = cfg.model.dtype if cfg.model.dtype != "auto" else ("bfloat16" if device == "cuda" else "float32")
    if dtype == "float32":
        return Precision("fp32", 4, 4, 4, 4, 4, mask)
    return Precision("16-bit", 2, 2, 2, 2, 2, mask)


def layer_activation_bytes(shape: ModelShape, lora: LoraSettings, p: Precision) -> int:
    """Bytes autograd keeps per token for one decoder layer without checkpointing (see the module docstring)."""
    h, i, d, a, kv = shape.hidden, shape.intermediate, shape.head_dim, shape.heads, shape.kv_heads
    norms = 2 * (4 * h + 4)
    if p.name == "4-bit":  # SDPA keeps autocast copies of q, k, v and its output
        attention = p.attention * (2 * a + 2 * kv) * d + 4 * a
    else:  # the fused qkv output (kept by the v view), rotated q and k, the output
        attention = p.attention * ((a + 2 * kv) * d + a * d + kv * d + a * d) + 4 * a
    mlp = p.mlp * 3 * i
    widths = shape.linears()
    adapters = sum(
        widths[name][0] * (p.adapter_input + (p.mask if lora.lora_dropout > 0 else 0)) + lora.r * p.adapter_input
        for name in shape.targets(lora.target_modules)
    )
    return norms + attention + mlp + adapters


@dataclass(frozen=True)
class MethodCost:
    """What one training example costs a training method, against SFT's one sequence (TRL 1.16's trainers).

    Attributes:
        sequences: sequences per example that go through the policy with gradients, in one forward (DPO and ORPO:
            the chosen and the rejected reply, concatenated into a batch twice as many rows).
        forward_only: forward passes without gradients per such sequence: DPO's reference (the model with its
            adapter disabled, or the parent adapter); KTO's reference on the completion, and the policy's and the
            reference's on a mismatched completion (the KL term). They keep no activations.
    """

    sequences: int
    forward_only: int


METHOD_COSTS = {
    "sft": MethodCost(1, 0),
    "dpo": MethodCost(2, 1),
    "kto": MethodCost(1, 3),
    "orpo": MethodCost(2, 0),
    "grpo": MethodCost(1, 0),  # + the reference's forward pass when beta > 0 (`trainer.estimate.plan.compute_factor`)
}


def micro_batch_tokens(t: TrainingSettings, lengths: Sequence[int] | None = None, batch: int | None = None) -> int:
    """Tokens in the largest micro-batch: packed rows fill max_length; padding-free batches hold the `batch`
    longest rows (cut to max_length); padded batches are `batch` × the longest row. Unknown lengths: batch ×
    max_length. A DPO or ORPO batch of `batch` pairs holds twice as many sequences, padded (packing and
    padding-free batches are SFT's)."""
    batch = (batch or t.per_device_train_batch_size) * METHOD_COSTS[t.method].sequences
    if (t.packing and t.method == "sft") or not lengths:
        return batch * t.max_length
    longest = sorted((min(int(n), t.max_length) for n in lengths), reverse=True)[:batch]
    return sum(longest) if t.padding_free and t.method == "sft" else batch * longest[0]


@dataclass(frozen=True)
class MemoryBreakdown:
    """Estimated peak memory of a training run, by component (bytes).

    `total` is the peak: the loss head and the layer backward working sets do not coexist, and evaluation keeps
    no activations, so they enter through max() (see the module docstring).
    """

    weights: int
    adapter: int
    activations: int
    loss_head: int
    backward: int
    eval_head: int
    overhead: int
    tokens: int
    precision: str
    device: DeviceKind
    generation: int = 0  # GRPO: the KV cache and logits of a generation batch (0 for the other methods)

    @property
    def training(self) -> int:
        """Peak of a training step, without the overhead."""
        return self.weights + self.adapter + self.activations + max(self.loss_head, self.backward)

    @property
    def total(self) -> int:
        """Estimated peak memory (bytes)."""
        inference = self.weights + self.adapter + max(self.eval_head, self.generation)
        return self.overhead + max(self.training, inference)

    @property
    def peak_phase(self) -> str:
        """Where the peak happens."""
        if self.weights + self.adapter + max(self.eval_head, self.generation) > self.training:
            return "generation" if self.generation > self.eval_head else "evaluation"
        return "loss backward" if self.loss_head >= self.backward else "layer backward"


def _head_bytes(shape: ModelShape, p: Precision, device: DeviceKind, tokens: int, train: bool, fused: bool) -> int:
    """Working set of the LM head and the loss for `tokens` positions (see the module docstring)."""
    if not fused:
        return tokens * shape.vocab * (p.head + 8)
    chunk = min(tokens, HEAD_TOKEN_CHUNK)
    tile = chunk * HEAD_VOCAB_CHUNK * p.head
    if device == "cpu":
        tile += int((CPU_HEAD_TILES_TRAIN if train else CPU_HEAD_TILES_EVAL) * chunk * shape.vocab * 4)
    return tile + (tokens * shape.hidden * 4 if train else 0)


def estimate_memory(
    cfg: RunConfig,
    shape: ModelShape,
    device: DeviceKind = "cuda",
    lengths: Sequence[int] | None = None,
    fused_loss: bool = True,
) -> MemoryBreakdown:
    """Estimate the peak memory of training `cfg` on `device` (pure arithmetic, no torch).

    Args:
        cfg: the run config (model precision, LoRA, batch sizes, max_length, packing, padding-free, checkpointing).
        shape: the base model's sizes (`model_shape` or `ModelShape.from_config`).
        device: "cuda" (autocast bf16, Triton loss kernel) or "cpu" (the offline demo: fp32 unless set otherwise).
        lengths: token lengths of the rows, or of the sequences (a pair's chosen and rejected) for DPO, KTO and
            ORPO (sharpens the micro-batch size; batch × max_length without them).
        fused_loss: TRL >= 1.16's fused LM head (True, what SFTTrainer uses), or full logits.

    Returns:
        The MemoryBreakdown.
    """
    t, p = cfg.training, precision(cfg, device)
    if t.method == "grpo" and not lengths:  # prompts up to max_length, each with a whole completion
        lengths = [t.max_length + cfg.grpo.max_completion_length]
    n = micro_batch_tokens(t, lengths)
    h = shape.hidden
    if p.name == "4-bit":
        quant = 1 / NF4_BLOCK + 4 / (NF4_BLOCK * NESTED_BLOCK) if cfg.model.use_bnb_nested_quant else 4 / NF4_BLOCK
        weights = int(shape.linear_params * (0.5 + quant)) + 4 * (shape.n_params - shape.linear_params)
    else:
        weights = (4 if p.name == "fp32" else 2) * shape.n_params
    layer = layer_activation_bytes(shape, cfg.lora, p)
    head_input = (4 * h + 4) + p.residual * h * (2 if device == "cuda" else 1)  # final norm, head input (+ copy)
    if t.gradient_checkpointing:
        activations = n * (shape.layers * p.residual * h + head_input)
    else:
        activations = n * (shape.layers * layer + head_input)
    backward = n * (h + shape.intermediate) * p.mlp + (n * layer if t.gradient_checkpointing else 0)
    if p.name == "4-bit":
        backward += 2 * max(fin * fout for fin, fout in shape.linears().values())
    eval_tokens = micro_batch_tokens(t, lengths, batch=t.per_device_eval_batch_size)
    # PEFT's k-bit preparation upcasts lm_head to fp32; 16-bit autocast then holds a 16-bit copy of it in the head
    # (measured on the full-size Phi-3-mini, CPU: +192.8 MB against 2·V·h = 197.0 MB; tests/fullsize)
    head_copy = shape.vocab * h * p.head if p.name == "4-bit" and p.head == 2 else 0
    return MemoryBreakdown(
        weights=weights,
        adapter=(16 if p.name == "fp32" else 18) * shape.lora_params(cfg.lora.r, cfg.lora.target_modules),
        activations=activations,
        loss_head=_head_bytes(shape, p, device, n, train=True, fused=fused_loss) + head_copy,
        backward=backward,
        eval_head=_head_bytes(shape, p, device, eval_tokens, train=False, fused=fused_loss) + head_copy,
        overhead=CUDA_OVERHEAD if device == "cuda" else 0,
        tokens=n,
        precision=p.name,
        device=device,
        generation=generation_bytes(cfg, shape, p, max(lengths)) if t.method == "grpo" and lengths else 0,
    )


def generation_rows(cfg: RunConfig) -> int:
    """Completions one GRPO process generates at once: `grpo.generation_batch_size`, else TRL's default, batch size
    × gradient accumulation."""
    t = cfg.training
    return cfg.grpo.generation_batch_size or t.per_device_train_batch_size * t.gradient_accumulation_steps


def generation_bytes(cfg: RunConfig, shape: ModelShape, p: Precision, tokens: int) -> int:
    """GRPO's generation batch: its KV cache at `tokens` per row and a decode step's fp32 logits (module docstring)."""
    rows = generation_rows(cfg)
    return rows * tokens * 2 * shape.layers * shape.kv_heads * shape.head_dim * p.attention + rows * shape.vocab * 4


def with_changes(cfg: RunConfig, changes: Mapping[str, Any]) -> RunConfig:
    """A copy of cfg with dotted-key changes applied (``{"training.max_length": 512}``)."""
    sections = {}
    for key, value in changes.items():
        section, name = key.split(".")
        sections.setdefault(section, {})[name] = value
    return dataclasses.replace(
        cfg, **{s: dataclasses.replace(getattr(cfg, s), **fields) for s, fields in sections.items()}
    )
