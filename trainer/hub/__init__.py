"""Publishing to the Hugging Face Hub.

- `trainer.hub.auth`: the token (`resolve_token`), repo-ID checks and the fail-fast write check (`check_push_access`).
- `trainer.hub.retry`: which failures are retried, and how each is worded for the user (`HubError`).
- `trainer.hub.card`: the model card, rendered from the template `model_card.md` (adapter and merged model).
- `trainer.hub.chart`: the loss curve PNG that the card shows (matplotlib).
- `trainer.hub.push`: push a run, a merged model, and checkpoints in the background while training.

The token is a runtime secret: it is never logged, written to the run folder or put in an error message.
"""

from trainer.hub.auth import TOKEN_MISSING, WRITE_ROLES, check_push_access, check_repo_id, resolve_token
from trainer.hub.card import MODEL_CARD_FILE, base_model_id, card_metadata, hub_dataset_id, merged_card, model_card
from trainer.hub.chart import (
    EVAL_COLOR,
    LOSS_CURVE_FILE,
    TRAIN_COLOR,
    Series,
    loss_curve_png,
    loss_figure,
    loss_series,
    render_loss_chart,
)
from trainer.hub.push import (
    ADAPTER_REQUIRED,
    CheckpointUploader,
    files_to_push,
    merge_adapter,
    merged_repo_id,
    push_checkpoint,
    push_merged,
    push_run,
)
from trainer.hub.retry import TOKEN_INVALID, HubError, hub_error, is_transient, with_retries

__all__ = [
    "ADAPTER_REQUIRED",
    "EVAL_COLOR",
    "LOSS_CURVE_FILE",
    "MODEL_CARD_FILE",
    "TOKEN_INVALID",
    "TOKEN_MISSING",
    "TRAIN_COLOR",
    "WRITE_ROLES",
    "CheckpointUploader",
    "HubError",
    "Series",
    "base_model_id",
    "card_metadata",
    "check_push_access",
    "check_repo_id",
    "files_to_push",
    "hub_dataset_id",
    "hub_error",
    "is_transient",
    "loss_curve_png",
    "loss_figure",
    "loss_series",
    "merge_adapter",
    "merged_card",
    "merged_repo_id",
    "model_card",
    "push_checkpoint",
    "push_merged",
    "push_run",
    "render_loss_chart",
    "resolve_token",
    "with_retries",
]
