"""Real memory of a CPU run, to hold the memory estimate against: torch's own allocation events and storage sizes."""

from __future__ import annotations

from collections.abc import Callable, Iterable


def allocation_peak(run: Callable[[], object]) -> int:
    """Highest running sum of torch CPU allocations minus frees while `run()` runs."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    events: list[tuple[int, int]] = []

    def walk(nodes: Iterable) -> None:  # children are in time order; a stable sort keeps ties in that order
        for node in nodes:
            fields = node.extra_fields
            if type(fields).__name__ == "_ExtraFields_Allocation" and str(fields.device) == "cpu":
                events.append((node.start_time_ns, fields.alloc_size))
            walk(node.children)

    walk(prof.profiler.kineto_results.experimental_event_tree())
    live = peak = 0
    for _, size in sorted(events, key=lambda event: event[0]):
        live += size
        peak = max(peak, live)
    return peak


def storage_bytes(tensors: Iterable) -> int:
    """Bytes of the tensors' storages, each storage once."""
    return sum({t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}.values())


def held_bytes(model) -> int:
    """Bytes of the model's parameter and buffer storages (each storage once)."""
    return storage_bytes([*model.parameters(), *model.buffers()])
