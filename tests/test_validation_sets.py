"""Validation-study training sets and effects."""
import numpy as np
import pandas as pd
import pytest

from swift_study.core.errors import DataError
from swift_study.data.study import Study
from swift_study.data.suite import build_suite
from swift_study.validation.trainsets import validation_training_set
from swift_study.validation.outcomes import significant, validation_effects


@pytest.fixture(scope="module")
def pools(tiny_config):
    _, records = build_suite(tiny_config)
    train = [r for r in records if r.split == "train"]
    qa = [r for r in train if r.format == "qa" and r.meta["pool"] == "base"]
    extra = [r for r in train if r.format == "qa" and r.meta["pool"] == "extra"]
    cot = [r for r in train if r.format == "cot"]
    return qa, extra, cot


def test_arms_add_the_same_number_of_in_task_examples(pools):
    qa, extra, cot = pools
    study = Study("cot", "cot", ("add", "sub"))
    b = validation_training_set("B", None, qa, extra, cot, seed=0)
    s = validation_training_set("B+S", study, qa, extra, cot, seed=0)
    c = validation_training_set("ctrl", study, qa, extra, cot, seed=0)
    assert b == qa
    added_s, added_c = s[len(qa):], c[len(qa):]
    assert len(added_s) == len(added_c) > 0
    assert {r.format for r in added_s} == {"cot"} and {r.format for r in added_c} == {"qa"}
    assert {r.task for r in added_s} == {r.task for r in added_c} == {"add", "sub"}
    assert not {r.query_id for r in added_c} & {r.query_id for r in qa}  # control adds NEW queries
    assert {r.query_id for r in added_s} <= {r.query_id for r in qa}     # strategy re-renders D_B queries
    assert s == validation_training_set("B+S", study, qa, extra, cot, seed=0)


def test_missing_extra_pool_is_a_clear_error(pools):
    qa, _, cot = pools
    with pytest.raises(DataError, match="suite.sizes.extra"):
        validation_training_set("ctrl", Study("cot", "cot", ("add",)), qa, [], cot, seed=0)


def test_validation_effects_by_context():
    tasks = ["add"] * 4 + ["sub"] * 4
    ids = [f"e{i}" for i in range(8)]

    def frame(em):
        return pd.DataFrame({"id": ids, "task": tasks, "em": em, "nll_per_token": 1.0 - 0.1 * np.array(em)})

    samples = {"B": [frame([0, 0, 0, 0, 1, 1, 0, 0])],
               "B+s": [frame([1, 1, 0, 0, 1, 1, 0, 0])],
               "ctrl+s": [frame([1, 0, 0, 0, 1, 1, 1, 0])]}
    df = validation_effects(samples, [{"name": "s", "strategy": "cot", "in_task": ["add"]}],
                            n_boot=200, confidence=0.9, seed=0).set_index("context")
    assert df.loc["in", "delta"] == pytest.approx(0.5)
    assert df.loc["in", "delta_ctrl"] == pytest.approx(0.25)
    assert df.loc["cross", "delta"] == pytest.approx(0.0)
    assert df.loc["cross", "delta_ctrl"] == pytest.approx(-0.25)
    assert df.loc["in", "delta_loss"] == pytest.approx(0.05)
    assert df.loc["in", "nll_S"] == pytest.approx(0.95)
    by_loss = validation_effects(samples, [{"name": "s", "strategy": "cot", "in_task": ["add"]}],
                                 n_boot=50, confidence=0.9, seed=0, metric="loss").set_index("context")
    assert by_loss.loc["in", "delta"] == pytest.approx(0.05)
    assert by_loss.loc["in", "delta_ctrl"] == pytest.approx(0.025)
    assert df.loc["in", "delta_lo"] <= 0.5 <= df.loc["in", "delta_hi"]
    # every eval task is a cell of its own, flagged in-task or not
    assert set(df.index) == {"in", "cross", "task:add", "task:sub"}
    assert df.loc["task:add", "delta_ctrl"] == pytest.approx(0.25) and df.loc["task:add", "in_task"]
    assert df.loc["task:sub", "delta"] == pytest.approx(0.0) and not df.loc["task:sub", "in_task"]


def test_significance_needs_the_whole_interval_on_one_side():
    rng = np.random.default_rng(0)
    ids = [f"e{i}" for i in range(200)]

    def frame(p):
        return pd.DataFrame({"id": ids, "task": ["add"] * 100 + ["sub"] * 100,
                             "em": (rng.random(200) < p).astype(float), "nll_per_token": 1.0})

    samples = {"B": [frame(0.5) for _ in range(3)], "B+s": [frame(0.1) for _ in range(3)],
               "ctrl+s": [frame(0.5) for _ in range(3)]}
    df = validation_effects(samples, [{"name": "s", "strategy": "corrupt", "in_task": ["add"]}],
                            n_boot=500, confidence=0.95, seed=1).set_index("context")
    assert df.loc["in", "n_seeds"] == 3
    assert df.loc["in", "delta_ctrl_hi"] < 0 and significant(df)["in"]
    assert df.loc["task:add", "delta_ctrl"] == pytest.approx(df.loc["in", "delta_ctrl"])
