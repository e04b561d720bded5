"""RunConfig, the one source of truth for a run: its schema and validation, YAML and presets, and hint rendering.

- `trainer.config.schema`: the dataclasses (model, data, lora, training, hub), field metadata and validation.
- `trainer.config.loading`: dicts, YAML files, `key=value` overrides, and the presets (`examples/*.yaml`).
- `trainer.config.hints`: fixes in messages written for a form field or a CLI flag.

Example:
    >>> from trainer.config import load_config
    >>> cfg = load_config(preset="tiny-demo", overrides=["training.max_steps=10"])
    >>> cfg.training.max_steps
    10
"""

from trainer.config.loading import (
    PRESETS,
    apply_dict,
    apply_value,
    diff_dict,
    from_dict,
    load_config,
    load_yaml,
    parse_scalar,
    preset_config,
    read_presets,
    read_yaml_dict,
    save_yaml,
    stage_config,
)
from trainer.config.rules import (
    CHAT_ROLES,
    CONVERSATION_ROLE,
    MAPPING_EXAMPLE,
    REPO_ID_RE,
    column_mapping_problems,
    hint,
    repo_id_problem,
    resolve_mapping,
    suggest_column_mapping,
)
from trainer.config.schema import (
    ConfigError,
    DataConfig,
    FieldSpec,
    HubConfig,
    LoraSettings,
    ModelConfig,
    RunConfig,
    TrainingSettings,
    find_field,
    iter_fields,
)

__all__ = [
    "CHAT_ROLES",
    "CONVERSATION_ROLE",
    "MAPPING_EXAMPLE",
    "PRESETS",
    "REPO_ID_RE",
    "ConfigError",
    "DataConfig",
    "FieldSpec",
    "HubConfig",
    "LoraSettings",
    "ModelConfig",
    "RunConfig",
    "TrainingSettings",
    "apply_dict",
    "apply_value",
    "column_mapping_problems",
    "diff_dict",
    "find_field",
    "from_dict",
    "hint",
    "iter_fields",
    "load_config",
    "parse_scalar",
    "load_yaml",
    "preset_config",
    "read_presets",
    "read_yaml_dict",
    "repo_id_problem",
    "resolve_mapping",
    "save_yaml",
    "stage_config",
    "suggest_column_mapping",
]
