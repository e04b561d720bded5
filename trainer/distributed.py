"""Several training processes on one machine (one per GPU, DDP or FSDP), launched by torchrun or accelerate launch.

`python -m trainer train` runs unchanged under `torchrun --nproc_per_node N` or `accelerate launch`: each process
learns its place from the launcher's environment (RANK, WORLD_SIZE, LOCAL_RANK). The main process (rank 0) names the
run folder and is the only one that writes to it (events, status, samples, the adapter) and pushes; the others train
their share of each batch. The Trainer's own process group is the one `start()` opens (accelerate reuses it), so the
run folder can be agreed on before the Trainer exists.

With one process (no launcher) every function here is a no-op that answers for that one process, so the rest of the
code never asks how it was started.

Example:
    >>> from trainer import distributed as dist
    >>> dist.start()
    >>> run_dir = dist.share(str(new_run_dir()) if dist.is_main() else None)
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from datetime import timedelta
from typing import Any

logger = logging.getLogger(__name__)

GROUP_TIMEOUT_S = 1800
"""How long a process waits for the others at a collective (transformers' `ddp_timeout` default; NCCL's own is 10
minutes, less than the main process may take to answer the held-out prompts while the others wait)."""
LAUNCHER = ("-m", "torch.distributed.run", "--standalone")
"""How the web app starts one worker per GPU: torchrun on a free local port (`--standalone`)."""


def rank() -> int:
    """This process's rank among all training processes (0 without a launcher)."""
    return int(os.environ.get("RANK", 0))


def world_size() -> int:
    """How many training processes run this run (1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", 1))


def is_main() -> bool:
    """True in the process that owns the run folder and the Hub push (rank 0, or the only process)."""
    return rank() == 0


def fsdp_launch() -> bool:
    """True under `accelerate launch` with an FSDP config (the model is sharded over the processes, not copied)."""
    return os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true"


def start() -> None:
    """Join the other training processes (the process group the Trainer will use); nothing with one process.

    On a GPU each process first takes its own GPU (LOCAL_RANK) and the group talks NCCL; on a CPU it talks gloo.
    """
    if world_size() == 1:
        return
    import torch
    import torch.distributed as tdist

    if tdist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    tdist.init_process_group(backend, timeout=timedelta(seconds=GROUP_TIMEOUT_S))


def stop() -> None:
    """Leave the process group (at the end of a run, so that no process exits while another still waits on it)."""
    import torch.distributed as tdist

    if world_size() > 1 and tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()


def _group_ready() -> bool:
    if world_size() == 1:
        return False
    import torch.distributed as tdist

    return tdist.is_available() and tdist.is_initialized()


def share(value: Any) -> Any:
    """The main process's `value`, in every process (e.g. the run folder it created)."""
    if not _group_ready():
        return value
    import torch.distributed as tdist

    box = [value]
    tdist.broadcast_object_list(box, src=0)
    return box[0]


def gather(value: Any) -> list[Any]:
    """Every process's `value`, in rank order, in every process (`[value]` with one process)."""
    if not _group_ready():
        return [value]
    import torch.distributed as tdist

    values: list[Any] = [None] * world_size()
    tdist.all_gather_object(values, value)
    return values


def any_rank(*flags: bool) -> tuple[bool, ...]:
    """Each flag, True when it is True in any process: one decision all processes take at the same step.

    (A Cancel's SIGTERM reaches the processes at slightly different moments; were each to stop on its own flag, one
    would wait for ever on a gradient the other never sends.)
    """
    if not _group_ready():
        return tuple(bool(flag) for flag in flags)
    import torch
    import torch.distributed as tdist

    device = "cuda" if tdist.get_backend() == "nccl" else "cpu"
    votes = torch.tensor([int(bool(flag)) for flag in flags], device=device)
    tdist.all_reduce(votes, op=tdist.ReduceOp.MAX)
    return tuple(bool(v) for v in votes.tolist())


def barrier() -> None:
    """Wait until every process gets here (e.g. while the main one writes the samples)."""
    if _group_ready():
        import torch.distributed as tdist

        tdist.barrier()


def ready_for_ddp(trainer) -> None:
    """Let `train()` wrap the model in DDP although `evaluate()` ran first (several processes only).

    With transformers 5.24 and accelerate 1.15, `evaluate()` before `train()` prepares the model for evaluation and
    marks it prepared; `train()` then leaves it out of DDP, so each process trains on its own shard of the data and
    the adapters drift apart without a word (measured on two CPU processes: lora_B differed after one step).
    """
    model = trainer.model
    if trainer.args.world_size == 1 or trainer.is_fsdp_enabled or not getattr(model, "_is_accelerate_prepared", 0):
        return
    trainer.accelerator.unwrap_model(model, keep_fp32_wrapper=False)  # undoes the evaluation's autocast forward
    model._is_accelerate_prepared = False
    if model in trainer.accelerator._models:
        trainer.accelerator._models.remove(model)


def check_same_adapter(trainer) -> None:
    """With several processes (DDP), check that all of them end with the same adapter before the main one saves it.

    DDP keeps the copies equal by averaging every gradient; copies that differ mean the processes trained apart.

    Raises:
        RuntimeError: the processes' adapters differ (named by their fingerprints).
    """
    if trainer.is_fsdp_enabled:  # each process holds a shard: there is no copy to compare
        logger.info("FSDP: the adapter is gathered whole from the shards of %d process(es)", world_size())
        return
    if world_size() == 1:
        return
    prints = gather(fingerprint(trainer.model))
    if len(set(prints)) > 1:
        raise RuntimeError(f"the {len(prints)} training processes ended with different adapters: {', '.join(prints)}")
    logger.info("the adapter is the same in all %d processes (fingerprint %s)", len(prints), prints[0])


def fingerprint(model) -> str:
    """A short hash of a model's trainable weights, to check that every process holds the same adapter."""
    digest = hashlib.sha256()
    for name, param in model.named_parameters():
        if param.requires_grad:
            digest.update(name.encode())
            digest.update(param.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def peak_memory_gb() -> float:
    """This process's peak memory in GB: allocated on its GPU, or its resident size on a CPU."""
    import torch

    if torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 2**30, 2)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30, 2)  # KiB on Linux


def worker_processes(gpus: str, visible_gpus: int) -> int:
    """How many training processes a run gets: one per visible GPU when the run asks for all of them, else one."""
    return max(visible_gpus, 1) if gpus == "all" else 1


def launch_argv(python: str = sys.executable, processes: int = 1) -> list[str]:
    """The start of a worker's argv: plain `python` for one process, torchrun over `processes` for several."""
    if processes <= 1:
        return [python]
    return [python, *LAUNCHER, "--nproc_per_node", str(processes)]


def visible_gpus() -> int:
    """How many CUDA GPUs this process can see (0 on a CPU machine)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
