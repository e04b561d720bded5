"""Training data: load a dataset, detect its format, normalise every row to chat `messages`, preview it, split it.

- `trainer.data.formats`: detect the row format and normalise rows to messages (pure functions).
- `trainer.data.load`: read a local file or a Hub dataset (streaming the first rows when only a few are needed),
  then `prepare` the train and eval datasets.
- `trainer.data.preview`: what training would see: counts, problems, token lengths, rendered rows.
- `trainer.data.shapes`: tool calls, content parts, media, template slots (pure).
- `trainer.data.quality`: the data-quality report, and the malformed-share gate (pure).

Example:
    >>> from trainer.config import DataConfig
    >>> from trainer.data import prepare
    >>> prepared = prepare(DataConfig(dataset_name="examples/pirate_alpaca.json"))
    >>> prepared.format, len(prepared.train), len(prepared.eval)
    ('alpaca', 216, 24)
"""

from trainer.data.formats import (
    FORMAT_COLUMNS,
    FORMATS,
    SHAREGPT_ROLES,
    DataError,
    Message,
    Normalised,
    RowError,
    RowStyle,
    choose_format,
    detect_format,
    normalise,
    required_columns,
    to_messages,
)
from trainer.data.holdout import HOLDOUT_METHODS, split_eval
from trainer.data.load import (
    SUPPORTED_SUFFIXES,
    PreparedData,
    hub_row_count,
    load_table,
    prepare,
    resolve_local_path,
)
from trainer.data.preview import (
    PREVIEW_ROWS,
    Preview,
    format_preview,
    length_stats,
    preview,
    preview_tokenizer,
    reply_room_problem,
    token_lengths,
)
from trainer.data.quality import MAX_MALFORMED_SHARE, QualityReport, format_quality, malformed_problem, quality_report

__all__ = [
    "MAX_MALFORMED_SHARE",
    "QualityReport",
    "format_quality",
    "malformed_problem",
    "quality_report",
    "FORMATS",
    "FORMAT_COLUMNS",
    "PREVIEW_ROWS",
    "SHAREGPT_ROLES",
    "SUPPORTED_SUFFIXES",
    "DataError",
    "Message",
    "Normalised",
    "PreparedData",
    "Preview",
    "RowError",
    "RowStyle",
    "choose_format",
    "detect_format",
    "format_preview",
    "hub_row_count",
    "length_stats",
    "load_table",
    "normalise",
    "prepare",
    "preview",
    "preview_tokenizer",
    "reply_room_problem",
    "required_columns",
    "resolve_local_path",
    "split_eval",
    "HOLDOUT_METHODS",
    "to_messages",
    "token_lengths",
]
