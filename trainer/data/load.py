"""Loading training data: a Hub dataset ID or a local file, one split, then normalised and split for training.

A dataset is a Hub dataset ID (``user/name``, optionally a config and split names) or a local ``.jsonl``, ``.json``,
``.csv`` or ``.parquet`` file. `load_table` reads one split (streaming only the first rows of a Hub dataset when a
`limit` is given, so a preview or a pre-queue check never downloads a whole split), and `prepare` turns the rows into
what training consumes: `datasets.Dataset` objects with one ``messages`` column.

Example:
    >>> from trainer.data.load import load_table
    >>> load_table(DataConfig(dataset_name="alice/big-chat"), "train", limit=100)   # streams 100 rows, no more
"""

from __future__ import annotations

import csv
import itertools
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.config import DataConfig, hint
from trainer.data.formats import DataError, Message, RowStyle, choose_format, normalise
from trainer.data.holdout import split_eval
from trainer.data.jsonlines import Lines, readable_rows
from trainer.data.quality import malformed_problem
from trainer.errors import exception_chain
from trainer.online import hub_unreachable
from trainer.paths import PROJECT_ROOT

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger(__name__)

SUPPORTED_SUFFIXES: dict[str, str] = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
"""Local file suffix -> the `datasets` packaged builder that reads it."""

# Suffixes that mark a name as a (wrong kind of) file rather than a Hub ID such as "teknium/OpenHermes-2.5".
_OTHER_FILE_SUFFIXES = frozenset(
    ".txt .tsv .xlsx .xls .ods .xml .html .htm .md .yaml .yml .arrow .feather .pkl .pickle .npy .npz .zip .gz .bz2 "
    ".xz .zst .tar .tgz .7z .rar .pdf .doc .docx .ndjson .jsonlines .pq .db .sqlite .h5 .hdf5 .avro .orc".split()
)
_SUFFIX_LIST = ", ".join(SUPPORTED_SUFFIXES)


@dataclass
class PreparedData:
    """What training consumes: `datasets.Dataset` objects with a single ``messages`` column.

    Attributes:
        train: rows to train on.
        eval: held-out rows (the test split, or `eval_fraction` of the train rows); None when there are none.
        format: the row format used.
        n_input: rows read from the train split (before malformed rows were set aside).
        problems: one line per malformed row (train and eval).
    """

    train: datasets.Dataset
    eval: datasets.Dataset | None
    format: str
    n_input: int
    problems: list[str] = field(default_factory=list)


def resolve_local_path(name: str) -> Path | None:
    """Tell a local data file from a Hub dataset ID.

    A name is looked up as given (relative to the working directory) and then relative to the repository root,
    so ``examples/pirate_chat.jsonl`` works from any directory. Directories are left to `datasets` (None).

    Args:
        name: `DataConfig.dataset_name`.

    Returns:
        The path of an existing supported file, or None when the name looks like a Hub ID (``user/name``).

    Raises:
        DataError: the name is a file path, but the file is missing or its suffix is not supported.
    """
    name = name.strip()
    if not name:
        raise DataError("data.dataset_name: empty. Give a Hub dataset ID (user/name) or a local file path.")
    given = Path(name).expanduser()
    candidates = [given] if given.is_absolute() else [given, PROJECT_ROOT / given]
    suffix = given.suffix.lower()
    for path in candidates:
        if path.is_file():
            if suffix in SUPPORTED_SUFFIXES:
                return path
            raise DataError(
                f"data.dataset_name: {name} is a {suffix or 'suffix-less'} file, which cannot be read. "
                f"Supported local files are {_SUFFIX_LIST}; convert it (e.g. one JSON object per line in a .jsonl)."
            )
        if path.is_dir():
            return None
    if suffix in SUPPORTED_SUFFIXES:
        raise DataError(
            f"data.dataset_name: file {name} not found (looked in {_places(candidates)}). "
            f"Check the path; supported local files are {_SUFFIX_LIST}."
        )
    if suffix in _OTHER_FILE_SUFFIXES or _looks_like_path(name):
        raise DataError(
            f"data.dataset_name: {name} is not a supported data file. "
            f"Use a local {_SUFFIX_LIST} file that exists, or a Hub dataset ID such as user/name."
        )
    return None


def _places(candidates: list[Path]) -> str:
    """Where a file was looked for, each place once ("looked in X and X" helps nobody)."""
    places = dict.fromkeys(str(p if p.is_absolute() else Path.cwd() / p) for p in candidates)
    return " and ".join(places)


def _looks_like_path(name: str) -> bool:
    """Hub IDs are "name" or "user/name"; anything else with separators is a path."""
    separators = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
    if name.startswith((".", "~")) or Path(name).is_absolute():
        return True
    return sum(name.count(sep) for sep in separators) > 1


def load_table(
    cfg: DataConfig, split: str, token: str | bool | None = None, limit: int | None = None
) -> datasets.Dataset:
    """The rows of one split (see `read_split`, which also says where a JSON Lines file's rows came from)."""
    return read_split(cfg, split, token, limit)[0]


def read_split(
    cfg: DataConfig, split: str, token: str | bool | None = None, limit: int | None = None
) -> tuple[datasets.Dataset, Lines | None]:
    """Load one split of the configured dataset as a `datasets.Dataset` (the first `max_rows` rows).

    Local files go through `datasets.load_dataset` with the json/csv/parquet builder; they have one split,
    ``train`` (slices such as ``train[:100]`` work). CSV columns are read as text, so an answer "4" stays "4".
    Anything else is a Hub dataset ID (or a local dataset folder) loaded with `cfg.dataset_config`; with a `limit`
    its first rows are streamed (`streaming=True`), so the rest of the split is never downloaded.

    Args:
        cfg: the data settings.
        split: split name, usually `cfg.dataset_train_split` or `cfg.dataset_test_split`.
        token: Hugging Face token for private or gated datasets (never logged).
        limit: read only the first rows (a preview, a pre-queue check); None reads the whole split.

    Returns:
        The rows, with at least one row; and for a JSON Lines file with lines that are not rows, each row's line
        number and the bad lines (`jsonlines.Lines`, for `normalise`), else None.

    Raises:
        DataError: the file is missing, unsupported, unreadable or empty; the split does not exist; the Hub
            dataset cannot be found, read or reached.
    """
    import datasets

    path = resolve_local_path(cfg.dataset_name)
    field_name = _split_field(cfg, split)
    lines = None
    if path is not None:
        table, lines = _load_local(path, split, field_name, limit)  # streamed for a caller's limit, as a Hub split
        where = path.name  # the user's own file name, never a folder of the server
    else:
        table = _load_hub(cfg, split, field_name, token, limit)  # streamed only for a caller's limit, not max_rows
        where = f"{cfg.dataset_name} ({split})"
    caps = [n for n in (limit, cfg.max_rows) if n is not None]
    limit = max(min(caps), 1) if caps else None
    if not isinstance(table, datasets.Dataset):  # e.g. a folder loader that ignored split=
        raise DataError(f"{field_name}: {where} did not load as one split. Name the split to use.")
    if len(table) == 0:
        raise DataError(
            f"data.dataset_name: {where} has no rows. Check that the right file/split is named and that it holds data."
        )
    if limit is not None and limit < len(table):
        table = table.select(range(limit))
    logger.info("loaded %d rows with columns %s from %s", len(table), table.column_names, where)
    return table, lines.window(0, len(table)) if lines is not None else None


def _split_field(cfg: DataConfig, split: str) -> str:
    """The setting a split name came from, for error messages."""
    if cfg.dataset_test_split and split == cfg.dataset_test_split and split != cfg.dataset_train_split:
        return "data.dataset_test_split"
    return "data.dataset_train_split"


PREVIEW_BYTES = 256 * 2**20
"""The most a preview or a pre-queue check unpacks of a Parquet file (a few KB of Parquet can unpack to gigabytes,
by compression or by a dictionary of one repeated value: it is refused, with why, before the web server fills up)."""
PARQUET_BATCH_ROWS = 16
"""Rows of a Parquet file unpacked at a time by a preview."""
_SLICE = re.compile(r"^\s*(?P<base>[\w.-]+)\s*\[\s*(?P<start>\d*)\s*:\s*(?P<stop>\d*)\s*\]\s*$")


def _first_rows(open_stream, split: str, limit: int, unreadable) -> datasets.Dataset:
    """The first `limit` rows of `split`, streamed: `open_stream(base split)` gives an IterableDataset. A slice of
    whole rows ("train[100:200]") is read row by row too; any other slice ("train[:10%]") previews the split's first
    rows (the whole split is read only when training)."""
    import datasets

    match = _SLICE.match(split)
    base = match["base"] if match else split.split("[", 1)[0].strip()
    start = int(match["start"] or 0) if match else 0
    stop = start + limit if not (match and match["stop"]) else min(int(match["stop"]), start + limit)
    stream = open_stream(base)
    try:  # islice, not stream.take(): with datasets 5.2, take() also opens the next shard
        rows = list(itertools.islice(stream, start, stop))
    except DataError:
        raise
    except Exception as exc:  # a file that does not parse (pyarrow's errors are ValueErrors, not split errors)
        raise unreadable(exc) from exc
    return datasets.Dataset.from_list(rows, features=stream.features)


def _parquet_rows(path: Path):
    """A Parquet file's rows as an IterableDataset, unpacked `PARQUET_BATCH_ROWS` at a time within `PREVIEW_BYTES`.

    Raises (when read):
        DataError: the first row group's pages unpack to more than the budget (its metadata says so before any is
            read), or the rows read so far do (a dictionary of one long value repeated).
    """
    import datasets
    import pyarrow.parquet as pq

    def too_big(what: str) -> DataError:
        return DataError(
            f"data.dataset_name: {path.name} unpacks to more than {PREVIEW_BYTES / 2**20:.0f} MB in {what}, more than "
            "a preview reads. Write it with fewer, shorter rows per row group (e.g. pandas' "
            "to_parquet(row_group_size=1000)), or as JSON Lines."
        )

    def rows():
        file = pq.ParquetFile(path)
        if file.metadata.num_row_groups and file.metadata.row_group(0).total_byte_size > PREVIEW_BYTES:
            raise too_big("its first row group")
        unpacked = 0
        for batch in file.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            unpacked += batch.nbytes
            if unpacked > PREVIEW_BYTES:
                raise too_big("its first rows")
            yield from batch.to_pylist()

    return datasets.IterableDataset.from_generator(rows)


def _load_local(
    path: Path, split: str, field_name: str, limit: int | None = None
) -> tuple[datasets.Dataset, Lines | None]:
    import datasets

    if split.split("[", 1)[0].strip() != "train":
        raise DataError(
            f"{field_name}: split {split!r} does not exist in {path.name}; a local file has one split, 'train'. "
            "Use train; to evaluate on a local file leave dataset_test_split empty and hold out eval_fraction "
            "of the rows (or put train/test files in a folder or a Hub dataset)."
        )
    if path.stat().st_size == 0 or (path.stat().st_size < 65536 and not path.read_bytes().strip()):
        raise DataError(f"data.dataset_name: {path.name} is empty (no rows). Add rows, or point to the right file.")
    builder = SUPPORTED_SUFFIXES[path.suffix.lower()]
    kwargs: dict[str, Any] = {}
    if builder == "csv":
        header = _csv_header(path)
        if header:
            kwargs["features"] = datasets.Features({name: datasets.Value("string") for name in header})
    match = _SLICE.match(split)
    start = int(match["start"] or 0) if match else 0  # the first row a limited read takes (as `_first_rows`)
    with tempfile.TemporaryDirectory(prefix="rows-") as tmp:
        source, lines = path, None
        if path.suffix.lower() == ".jsonl":  # line by line: a bad line is a malformed row, not a broken file
            source, lines = readable_rows(path, start + limit if limit else None, Path(tmp))
        try:
            if limit is None:
                table = datasets.load_dataset(builder, data_files=str(source), split=split, **kwargs)
                if lines is not None and "[" in split:  # the slice's first row as datasets reads it ("[:10%]" too)
                    start = datasets.ReadInstruction.from_spec(split).to_absolute({"train": len(lines.numbers)})
                    start = start[0].from_
            else:

                def open_stream(base: str):
                    if builder == "parquet":
                        return _parquet_rows(path)
                    return datasets.load_dataset(builder, data_files=str(source), split=base, streaming=True, **kwargs)

                table = _first_rows(open_stream, split, limit, lambda exc: _unreadable_file(path, exc))
        except DataError:
            raise
        except Exception as exc:  # any failure to parse a user's file is a problem with that file
            raise _unreadable_file(path, exc) from exc
    return table, lines.window(start, len(table)) if lines is not None else None


def _unreadable_file(path: Path, exc: Exception) -> DataError:
    detail = _error_detail(exc)
    if "corresponds to no data" in detail:
        return DataError(f"data.dataset_name: {path.name} has no rows. Add rows, or point to the right file.")
    return DataError(
        f"data.dataset_name: cannot read {path.name} as {path.suffix.lower()} ({detail}). "
        f"Check that the file is valid {_FILE_SHAPES[path.suffix.lower()]} and not truncated."
    )


_FILE_SHAPES = {
    ".jsonl": "JSON Lines (one JSON object per line)",
    ".json": "JSON (an array of objects, or JSON Lines)",
    ".csv": "CSV with a header row",
    ".parquet": "Parquet",
}


def _csv_header(path: Path) -> list[str] | None:
    """The header row of a CSV file, or None when it cannot be read plainly (the loader then decides)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    if not header or any(not name for name in header) or len(set(header)) != len(header):
        return None
    return header


def _error_detail(exc: BaseException, limit: int = 300) -> str:
    """The most specific message in an exception chain ("JSON parse error: ..." rather than "An error occurred")."""
    from datasets.exceptions import DatasetGenerationError

    chain = exception_chain(exc)
    specific = [e for e in chain if str(e).strip() and not isinstance(e, DatasetGenerationError)]
    best = specific[0] if specific else exc
    text = " ".join(str(best).split()) or type(best).__name__
    return f"{type(best).__name__}: {text[:limit]}"


def _load_hub(
    cfg: DataConfig, split: str, field_name: str, token: str | bool | None, limit: int | None = None
) -> datasets.Dataset:
    import datasets
    from datasets.exceptions import DatasetGenerationError, DatasetNotFoundError
    from huggingface_hub.errors import HfHubHTTPError

    name = cfg.dataset_name.strip()
    if not Path(name).exists() and (problem := hub_unreachable()):  # say so now, not after half a minute
        raise DataError(f"data.dataset_name: cannot read {name!r}. {problem}")
    try:
        if limit is None:
            return datasets.load_dataset(name, cfg.dataset_config, split=split, token=token)

        def open_stream(base: str):
            return datasets.load_dataset(name, cfg.dataset_config, split=base, token=token, streaming=True)

        return _first_rows(
            open_stream,
            split,
            limit,
            lambda exc: DataError(
                f"data.dataset_name: cannot read the files of {name!r} ({_error_detail(exc)}). "
                "Check the dataset's files, or pick another config or split."
            ),
        )
    except DataError:
        raise
    except (DatasetNotFoundError, HfHubHTTPError, FileNotFoundError) as exc:
        raise DataError(
            f"data.dataset_name: dataset {name!r} not found or not readable ({_error_detail(exc)}). "
            "Check the ID and that your token can read it (private and gated datasets need a read token "
            "and, for gated ones, accepted terms)."
        ) from exc
    except (ConnectionError, TimeoutError) as exc:
        raise DataError(
            f"data.dataset_name: could not reach the Hub for {name!r} ({_error_detail(exc)}). Check the network "
            "(and that HF_HUB_OFFLINE is not set), check the ID and that your token can read it."
        ) from exc
    except DatasetGenerationError as exc:
        raise DataError(
            f"data.dataset_name: cannot read the files of {name!r} ({_error_detail(exc)}). "
            "Check the dataset's files, or pick another config or split."
        ) from exc
    except ValueError as exc:
        message = str(exc)
        if "split" in message.lower():
            available = _split_names(name, cfg.dataset_config, token)
            listing = ", ".join(available) if available else f"see the error: {_error_detail(exc)}"
            raise DataError(
                f"{field_name}: {name} has no split {split!r}. Available splits: {listing}. Use one of these."
            ) from exc
        if "config" in message.lower():
            raise DataError(
                f"data.dataset_config: {name} has no config {cfg.dataset_config!r} ({_error_detail(exc)}). "
                f"Use one of the available configs ({hint('data.dataset_config')})."
            ) from exc
        raise


def _split_names(name: str, config: str | None, token: str | bool | None) -> list[str]:
    """The split names of a dataset, or [] when they cannot be found (offline, no access ...)."""
    import datasets

    try:
        return list(datasets.get_dataset_split_names(name, config, token=token))
    except Exception as exc:  # only used to improve an error message; never let it replace the real one
        logger.debug("could not list the splits of %s: %s", name, exc)
        return []


def hub_row_count(cfg: DataConfig, split: str, token: str | bool | None = None) -> int | None:
    """Rows in a Hub dataset's split from the Hub's metadata (the dataset card), or None when it does not say.

    No data file is downloaded. A local file returns None (count its rows instead).
    """
    import datasets

    if resolve_local_path(cfg.dataset_name) is not None:
        return None
    try:
        splits = datasets.load_dataset_builder(cfg.dataset_name.strip(), cfg.dataset_config, token=token).info.splits
        return int(splits[split].num_examples) if splits and split in splits and splits[split].num_examples else None
    except Exception as exc:  # only a figure for the preview; never let it replace a real error
        logger.debug("no row count for %s: %s", cfg.dataset_name, exc)
        return None


def _messages_dataset(rows: list[list[Message]]) -> datasets.Dataset:
    import datasets

    return datasets.Dataset.from_dict({"messages": rows})


def prepare(
    cfg: DataConfig, token: str | bool | None = None, seed: int = 42, limit: int | None = None
) -> PreparedData:
    """Load, normalise and split the data for training.

    Args:
        cfg: the data settings.
        token: Hugging Face token for private or gated datasets (never logged).
        seed: seed of the held-out split (use the training seed).
        limit: use only the first rows of each split (streamed from the Hub): a quick check, not training.

    Returns:
        Train and eval datasets with one ``messages`` column. Eval is `cfg.dataset_test_split` normalised the
        same way when set, else a seeded `cfg.eval_fraction` of the train rows, None when that is 0 (or there
        is only one row).

    Raises:
        DataError: the data cannot be loaded, no row can be used (see `load_table`, `normalise`), or more than 5 %
            of the rows are malformed and `cfg.allow_malformed` is off.
    """
    table, lines = read_split(cfg, cfg.dataset_train_split, token, limit)
    fmt = choose_format(cfg, table.column_names, table[0] if len(table) else None)
    mapping = cfg.column_mapping or None
    style = RowStyle.of(cfg)
    train = normalise(table, fmt, mapping, cfg.system_prompt, cfg.placeholders, lines, style)
    if problem := malformed_problem(train, cfg.allow_malformed):
        raise DataError(problem)
    problems = list(train.problems)
    if cfg.dataset_test_split:
        split = cfg.dataset_test_split
        try:
            rows = load_table(cfg, split, token, limit)
            held = normalise(rows, fmt, mapping, cfg.system_prompt, cfg.placeholders, style=style)
            if problem := malformed_problem(held, cfg.allow_malformed):
                raise DataError(problem)
        except DataError as exc:
            raise DataError(f"{exc} (in the eval split {split!r})") from exc
        problems += [f"eval split {split!r}, {p}" for p in held.problems]
        train_rows, eval_rows = train.rows, held.rows
    else:
        eval_seed = seed if cfg.eval_seed is None else cfg.eval_seed
        train_rows, eval_rows = split_eval(train.rows, cfg.eval_fraction, eval_seed, cfg.eval_holdout)
        if cfg.eval_fraction > 0 and not eval_rows:
            logger.warning("only %d usable row: nothing held out for evaluation", len(train_rows))
    for note in train.notes:
        logger.info("data: %s", note)
    logger.info(
        "data: %s format, %d of %d rows usable, %d train / %d eval",
        fmt,
        len(train.rows),
        train.n_input,
        len(train_rows),
        len(eval_rows),
    )
    return PreparedData(
        train=_messages_dataset(train_rows),
        eval=_messages_dataset(eval_rows) if eval_rows else None,
        format=fmt,
        n_input=train.n_input,
        problems=problems,
    )
