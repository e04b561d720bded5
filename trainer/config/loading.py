"""Reading and writing RunConfig: nested dicts, YAML files, `key=value` overrides, and the named presets.

The presets ARE the YAML files in `examples/`: each `examples/<name>.yaml` whose first line is
``# preset <name>: <description>`` holds the keys of that preset that differ from the defaults, and nothing else
(a test keeps it so). The CLI's `--preset`, the web form's preset picker and `--config examples/<name>.yaml` all read
the same file.

Example:
    >>> from trainer.config import load_config
    >>> cfg = load_config(preset="tiny-demo", overrides=["training.max_steps=10"])
    >>> cfg.training.max_steps
    10
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from trainer.config.schema import ConfigError, FieldSpec, RunConfig, find_field, iter_fields
from trainer.paths import EXAMPLES_DIR
from trainer.runs.folder import write_text_atomic

PRESET_HEADER = re.compile(r"^# preset (?P<name>[\w.-]+): (?P<description>.+)$")
"""The first line of a preset file: its name (the file's stem) and a one-line description."""


# --------------------------------------------------------------------------- values, dicts and YAML


def _coerce(spec: FieldSpec, value: Any) -> Any:
    """Turn a YAML or command-line value into the field's type; raise ValueError with a clear reason."""
    typ = spec.type
    if spec.optional:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
            return None
        typ = next(t for t in typing.get_args(typ) if t is not type(None))
    if typing.get_origin(typ) is Literal:
        return str(value)  # membership is checked by validation, so every bad choice is reported together
    if typ is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "on", "1"):
            return True
        if text in ("false", "no", "off", "0"):
            return False
        raise ValueError(f"expected true or false, got {value!r}")
    if typ is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"expected a whole number, got {value!r}")
        try:
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        except (TypeError, ValueError, OverflowError):  # OverflowError: "1e400", inf
            raise ValueError(f"expected a whole number, got {value!r}") from None
    if typ is float:
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        try:
            return float(value)  # also parses "1e-4", which YAML 1.1 leaves as a string
        except (TypeError, ValueError):
            raise ValueError(f"expected a number, got {value!r}") from None
    if typ is str:
        if isinstance(value, (dict, list)):
            raise ValueError(f"expected text, got {type(value).__name__}")
        return str(value)
    origin = typing.get_origin(typ)
    if origin is list:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise ValueError(f"expected a list, got {value!r}")
        return [str(v).strip() for v in items if str(v).strip()]
    if origin is dict:
        if isinstance(value, str):
            pairs = [p for p in value.split(",") if p.strip()]
            if any("=" not in p for p in pairs):
                raise ValueError(f"expected key=value pairs separated by commas, got {value!r}")
            value = dict(p.split("=", 1) for p in pairs)
        if not isinstance(value, dict):
            raise ValueError(f"expected a mapping, got {value!r}")
        return {str(k).strip(): str(v).strip() for k, v in value.items()}
    raise TypeError(f"unsupported field type {typ!r}")  # pragma: no cover - a programming error


def apply_dict(cfg: RunConfig, data: dict[str, Any], errors: list[str]) -> None:
    """Apply a nested {section: {key: value}} mapping onto cfg, collecting (not raising) every error."""
    sections = {f.name for f in dataclasses.fields(RunConfig)}
    for section, values in (data or {}).items():
        if section not in sections:
            hint = difflib.get_close_matches(str(section), sections, n=1)
            fix = f"Did you mean {hint[0]}?" if hint else f"Sections are: {', '.join(sorted(sections))}."
            errors.append(f"{section}: unknown section. {fix}")
            continue
        if not isinstance(values, dict):
            errors.append(f"{section}: expected a mapping of settings, got {values!r}.")
            continue
        for name, value in values.items():
            apply_value(cfg, f"{section}.{name}", value, errors)


def apply_value(cfg: RunConfig, key: str, value: Any, errors: list[str]) -> None:
    """Set one setting by key, collecting an error instead of raising."""
    try:
        spec = find_field(key)
    except ConfigError as exc:
        errors.extend(exc.problems)
        return
    try:
        spec.set(cfg, _coerce(spec, value))
    except ValueError as exc:
        errors.append(f"{spec.key}: {exc}. Fix the value in the config or in --set.")


def from_dict(data: dict[str, Any], base: RunConfig | None = None) -> RunConfig:
    """Build a RunConfig from a (possibly partial) nested dict on top of base (defaults when None).

    Raises:
        ConfigError: unknown keys or values of the wrong type (all of them).
    """
    cfg = copy.deepcopy(base) if base is not None else RunConfig()
    errors: list[str] = []
    apply_dict(cfg, data, errors)
    if errors:
        raise ConfigError(errors)
    return cfg


def diff_dict(cfg: RunConfig, base: RunConfig | None = None) -> dict[str, dict[str, Any]]:
    """Only the settings of cfg that differ from base (defaults when None), as a nested dict."""
    base = base or RunConfig()
    out: dict[str, dict[str, Any]] = {}
    for spec in iter_fields():
        if spec.get(cfg) != spec.get(base):
            out.setdefault(spec.section, {})[spec.name] = spec.get(cfg)
    return out


def read_yaml_dict(path: str | Path) -> dict[str, Any]:
    """The raw nested mapping of a YAML config file.

    Raises:
        ConfigError: the file is missing, is not YAML, or is not a mapping of sections.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such config file. Check the path."]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML ({exc}). Fix the syntax."]) from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError([f"{path}: expected sections such as training: and lora:, got {type(data).__name__}."])
    return data or {}


def load_yaml(path: str | Path, base: RunConfig | None = None) -> RunConfig:
    """Read a (partial) YAML config file on top of base (defaults when None); unknown keys are errors.

    Raises:
        ConfigError: the file is unreadable or holds unknown keys / wrong types (all of them).
    """
    return from_dict(read_yaml_dict(path), base)


def save_yaml(cfg: RunConfig, path: str | Path) -> Path:
    """Write the full config as YAML atomically (temp file, then rename)."""
    return write_text_atomic(Path(path), cfg.to_yaml())


# --------------------------------------------------------------------------- presets


def read_presets(folder: Path = EXAMPLES_DIR) -> dict[str, tuple[str, dict[str, Any]]]:
    """The presets of a folder: {name: (description, the preset's keys as a nested dict)}.

    Listed as the form and `config list` show them: the general presets first (Phi-3-mini), then the other members of
    the family (``phi*``), then the Phi-3 Cookbook's recipes (``cookbook-*``), then the offline demo (``*-demo``),
    each group by name (the general ones: SFT, then the preference methods, then GRPO).

    Raises:
        ConfigError: a preset file is not YAML, or its header names another preset than its file name.
    """
    presets = {}

    def place(
        path: Path,
    ) -> tuple[int, str]:  # Phi-3-mini's (SFT, preference, GRPO), the family's, the Cookbook's, demos
        name = path.stem
        if name.startswith(("tiny-demo", "cookbook-", "phi")):
            return (5 if name.startswith("tiny-demo") else 4 if name.startswith("cookbook-") else 3, name)
        return (2 if "grpo" in name else int("dpo" in name), name)

    for path in sorted(Path(folder).glob("*.yaml"), key=place):
        header = PRESET_HEADER.match(path.read_text(encoding="utf-8").split("\n", 1)[0])
        if header is None:
            continue  # a YAML file that is not a preset
        if header["name"] != path.stem:
            raise ConfigError(
                [f"{path}: its header names preset {header['name']!r}. Name the file {header['name']}.yaml."]
            )
        presets[path.stem] = (header["description"].strip(), read_yaml_dict(path))
    return presets


PRESETS: dict[str, tuple[str, dict[str, Any]]] = read_presets()
"""{name: (description, keys that differ from the defaults)}, read once from `examples/*.yaml`."""


def preset_config(name: str) -> RunConfig:
    """The RunConfig of a named preset.

    Raises:
        ConfigError: the name is not a preset.
    """
    if name not in PRESETS:
        raise ConfigError([f"preset {name!r}: unknown. Use one of: {', '.join(PRESETS)}."])
    return from_dict(PRESETS[name][1])


STAGE_SECTIONS = ("data", "training", "preference")
"""What a new training stage takes from its method's preset (the data and the method's settings); the model, the
LoRA settings and the push settings stay the parent run's."""


def stage_config(parent: RunConfig, method: str) -> RunConfig:
    """The config to train a finished run's adapter further with another method (SFT, then DPO: the usual recipe).

    The parent's model and LoRA settings stay; the data, training and preference sections are the defaults with the
    method's preset for that model on top (``tiny-demo-<method>`` for the tiny offline model, else ``<method>``), so
    a DPO stage gets DPO's data and learning rate, not the SFT run's. Where no such preset exists, the parent's
    sections stay and only the method changes. A push goes to ``<parent repo>-<method>``, never over the parent's.
    """
    from trainer.phi3 import TINY_MODEL_NAME

    cfg = copy.deepcopy(parent)
    cfg.training.method = method
    name = f"tiny-demo-{method}" if cfg.model.model_name_or_path == TINY_MODEL_NAME else method
    if name in PRESETS:
        fresh = RunConfig()
        for section in STAGE_SECTIONS:
            setattr(cfg, section, getattr(fresh, section))
        apply_dict(cfg, {k: v for k, v in PRESETS[name][1].items() if k in STAGE_SECTIONS}, errors := [])
        if errors:
            raise ConfigError(errors)
    owner, _, repo = (cfg.hub.repo_id or "").rpartition("/")
    if repo and not repo.endswith(f"-{method}"):
        cfg.hub.repo_id = f"{owner}/{repo[: 95 - len(method)]}-{method}"
    return cfg


def load_config(
    path: str | Path | None = None,
    preset: str | None = None,
    overrides: list[str] = (),
    values: dict[str, Any] | None = None,
) -> RunConfig:
    """Resolve a run config: defaults, then the preset, the YAML file, `values`, then `key=value` overrides; and
    validate it, once.

    Args:
        path: a (partial) YAML config file.
        preset: a preset name from PRESETS.
        overrides: `section.key=value` or `key=value` strings (as from `--set`).
        values: settings by key, already read as values (the CLI's per-setting flags and --map).

    Raises:
        ConfigError: every unknown key, wrong type and invalid value, all at once.
    """
    cfg = preset_config(preset) if preset else RunConfig()
    errors: list[str] = []
    if path is not None:
        apply_dict(cfg, read_yaml_dict(path), errors)
    for key, value in (values or {}).items():
        apply_value(cfg, key, value, errors)
    for item in overrides:
        if "=" not in item:
            errors.append(f"--set {item}: expected key=value, e.g. --set learning_rate=1e-4.")
            continue
        key, value = item.split("=", 1)
        apply_value(cfg, key.strip(), parse_scalar(value), errors)
    bad_keys = {e.split(":", 1)[0] for e in errors}
    errors += [p for p in cfg.problems() if p.split(":", 1)[0] not in bad_keys]
    if errors:
        raise ConfigError(errors)
    return cfg


def parse_scalar(text: str) -> Any:
    """Read a `--set` value as YAML would (numbers, true/false, null, [lists]); fall back to the raw text."""
    try:
        return yaml.safe_load(text) if text.strip() else text
    except yaml.YAMLError:
        return text
