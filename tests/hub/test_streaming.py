"""Preview and the pre-queue check stream the first rows of a Hub dataset; they never download the whole split."""

from __future__ import annotations

import pytest

from .conftest import ALICE_TOKEN, ClientRunner
from .server import HubServer
from .test_hub import CHAT_ROWS

pytestmark = pytest.mark.slow  # a client process each (seconds): the full suite, not the edit loop

CARD = """---
dataset_info:
  features:
  - name: messages
    list:
    - name: role
      dtype: string
    - name: content
      dtype: string
  splits:
  - name: train
    num_examples: 280
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
---
# pirates
"""


@pytest.fixture
def sharded(hub_server: HubServer) -> HubServer:
    """alice/pirates: 280 chat rows in two shards (240 + 40), with the row count in the dataset card's metadata."""
    shards = {
        "data/train-00000-of-00002.jsonl": "\n".join(CHAT_ROWS * 6).encode(),
        "data/train-00001-of-00002.jsonl": "\n".join(CHAT_ROWS).encode(),
        "README.md": CARD.encode(),
    }
    hub_server.add_repo("alice/pirates", shards, "dataset", private=True)
    return hub_server


def _downloaded(log: list[tuple[str, str, int]], shard: int) -> bool:
    return any(f"train-0000{shard}-of-00002" in path and method == "GET" for method, path, _ in log)


def test_preview_streams_the_first_rows_and_counts_from_the_metadata(sharded: HubServer, hub_client: ClientRunner):
    out = hub_client(f"""
    from trainer.config import DataConfig
    from trainer.data import format_preview, preview, preview_tokenizer

    p = preview(DataConfig(dataset_name="alice/pirates"), preview_tokenizer("tiny-phi3"), 128, token={ALICE_TOKEN!r},
                rows=5)
    emit(n_input=p.n_input, n_rows=p.n_rows, sampled=p.sampled, n_total=p.n_total, text=format_preview(p))
    sliced = DataConfig(dataset_name="alice/pirates", dataset_train_split="train[10:13]")
    emit(sliced=preview(sliced, preview_tokenizer("tiny-phi3"), 128, token={ALICE_TOKEN!r}, rows=5).n_input)
    """)
    assert (out["n_input"], out["n_rows"], out["sampled"], out["n_total"]) == (5, 5, True, 280)
    assert "the first 5 rows, streamed from the Hub; the split has 280 rows" in out["text"]
    assert out["sliced"] == 3  # a sliced split is streamed too: it downloaded the whole file before
    assert _downloaded(sharded.log, 0) and not _downloaded(sharded.log, 1)  # the second shard was never fetched


MARKER = "/api/test-marker/training-reads-next"
"""A request the client makes between the checks and the training read, so the server's log shows which did what."""


def test_the_pre_queue_check_streams_too_and_training_reads_everything(sharded: HubServer, hub_client: ClientRunner):
    out = hub_client(f"""
    import os
    import urllib.error
    import urllib.request
    from trainer.config import DataConfig, load_config
    from trainer.data import prepare
    from trainer.preflight import check_before_queueing

    cfg = load_config(preset="tiny-demo", overrides=["dataset_name=alice/pirates"])
    emit(problems=check_before_queueing(cfg, on_gpu=False, token={ALICE_TOKEN!r}))
    emit(first=len(prepare(DataConfig(dataset_name="alice/pirates"), token={ALICE_TOKEN!r}, limit=8).train))
    try:
        urllib.request.urlopen(os.environ["HF_ENDPOINT"] + {MARKER!r})  # logged by the server, then a 404
    except urllib.error.HTTPError:
        pass
    prepared = prepare(DataConfig(dataset_name="alice/pirates"), token={ALICE_TOKEN!r})
    emit(rows=len(prepared.train) + len(prepared.eval))
    """)
    marker = [path for _, path, _ in sharded.log].index(MARKER)
    checks, training = sharded.log[:marker], sharded.log[marker + 1 :]
    assert out["problems"] == [] and out["first"] + 1 == 8  # 8 rows read, one held out for eval
    assert not _downloaded(checks, 1)
    assert out["rows"] == 280 and _downloaded(training, 1)  # training itself reads the whole split
