"""Sweeps, the pure part (trainer.sweeps): axes read, combinations drawn, one named config each, every problem at
once, and the best run chosen by what was measured."""

from __future__ import annotations

import pytest

from trainer.config import ConfigError, preset_config
from trainer.sweeps import MAX_SWEEP_RUNS, best_run, combinations, parse_grid, sweep_configs, sweep_id


def test_axes_name_settings_by_key_or_unique_name():
    grid = parse_grid(["learning_rate=1e-4,2e-4", "", "lora.r=8,16", "grpo_beta=0.0,0.04"])
    assert grid == {"training.learning_rate": ["1e-4", "2e-4"], "lora.r": [8, 16], "grpo.beta": [0.0, 0.04]}


@pytest.mark.parametrize(
    ("axes", "problem"),
    [
        (["learning_rate"], "is not setting=value,value"),
        (["learning_rate="], "is not setting=value,value"),
        (["no_such_setting=1,2"], "no_such_setting"),
        (["r=8,8"], "lora.r lists a value twice"),
        (["r=8", "lora.r=16"], "lora.r is given twice"),
        ([" ", ""], "give at least one setting=value,value line"),
    ],
)
def test_bad_axes_are_refused_with_the_fix(axes, problem):
    with pytest.raises(ConfigError) as caught:
        parse_grid(axes)
    assert any(problem in p for p in caught.value.problems), caught.value.problems


def test_the_grid_in_order_or_a_seeded_sample_of_it():
    grid = {"a": [1, 2, 3], "b": ["x", "y"]}
    every = combinations(grid)
    assert every[:3] == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}] and len(every) == 6
    sample = combinations(grid, sample=3, seed=7)
    assert len(sample) == 3 and all(s in every for s in sample) and sample == combinations(grid, 3, 7)
    assert combinations(grid, sample=3, seed=8) != sample or combinations(grid, 3, 9) != sample
    assert combinations(grid, sample=10) == every  # a budget above the grid: the whole grid


def test_each_run_is_the_base_with_its_values_and_named_after_them():
    base = preset_config("tiny-demo")
    configs = sweep_configs(base, parse_grid(["learning_rate=1e-4,2e-4", "r=8,16"]), "pirates")
    assert [(c.training.learning_rate, c.lora.r) for c in configs] == [(1e-4, 8), (1e-4, 16), (2e-4, 8), (2e-4, 16)]
    assert configs[1].run.name == "pirates · learning_rate=1e-4 r=16"
    assert configs[0].data == base.data and base.lora.r == preset_config("tiny-demo").lora.r  # the base untouched


def test_one_bad_value_refuses_the_sweep_naming_the_run():
    with pytest.raises(ConfigError) as caught:
        sweep_configs(preset_config("tiny-demo"), parse_grid(["learning_rate=1e-4,5", "r=8"]), "s")
    assert [p.split(": ", 1)[0] for p in caught.value.problems] == ["learning_rate=5 r=8"]
    assert "training.learning_rate" in caught.value.problems[0]


def test_a_sweep_is_at_most_so_many_runs_unless_sampled():
    grid = parse_grid(["learning_rate=1e-4,2e-4,3e-4,4e-4,5e-4", "r=4,8,16,32"])
    with pytest.raises(ConfigError, match=f"20 runs; at most {MAX_SWEEP_RUNS}"):
        sweep_configs(preset_config("tiny-demo"), grid, "big")
    assert len(sweep_configs(preset_config("tiny-demo"), grid, "big", sample=5)) == 5


def test_the_best_run_by_chrf_when_all_were_evaluated_else_by_eval_loss():
    losses = {"a": {"eval_loss_after": 1.2}, "b": {"eval_loss_after": 0.9}, "c": {}}
    assert best_run(["a", "b", "c"], losses) == ("b", "lowest eval loss")
    evaluated = {"a": {"tuned": {"chrf": 41.0}}, "b": {"tuned": {"chrf": 38.5}}}
    assert best_run(["a", "b"], losses, evaluated) == ("a", "highest chrF (evaluation)")
    assert best_run(["a", "b"], losses, {"a": evaluated["a"]}) == ("b", "lowest eval loss")  # not all evaluated
    assert best_run(["a", "c"], losses) is None  # one figure is no comparison


def test_a_sweep_id_is_its_name_and_start():
    assert sweep_id("pirates: lr × r", 1700000000.5) == "pirates-lr-r-1700000000"
