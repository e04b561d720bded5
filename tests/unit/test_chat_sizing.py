"""When chat loads the base in 4-bit: a QLoRA run's adapter, or too little free GPU memory for bf16 weights."""

from __future__ import annotations

import pytest

from trainer.chat import needs_4bit
from trainer.config import ModelConfig

GIB = 2**30
PHI3_MINI = 3_821_079_552


@pytest.mark.parametrize(
    ("qlora", "params", "free", "expected"),
    [
        (False, PHI3_MINI, None, False),  # CPU: the configured precision
        (True, PHI3_MINI, None, True),  # a QLoRA adapter on a CPU: its 4-bit base too (bitsandbytes' CPU backend)
        (True, PHI3_MINI, 70 * GIB, True),  # a QLoRA adapter runs on its 4-bit base
        (False, PHI3_MINI, 70 * GIB, False),  # plenty of memory: bf16
        (False, PHI3_MINI, 8 * GIB, True),  # 7.6 GB of bf16 weights + headroom do not fit in 8 GB
        (False, None, 8 * GIB, False),  # unknown size: keep the configured precision
    ],
)
def test_needs_4bit(qlora, params, free, expected):
    assert needs_4bit(ModelConfig(load_in_4bit=qlora), params, free) is expected
