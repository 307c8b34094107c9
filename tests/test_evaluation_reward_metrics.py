"""ToolRL reward, the paper's lenient correctness, trigger metrics and OTC productivity."""

import pytest

from tooldiff.evaluation import (
    gold_to_calls, lenient_correct, tool_productivity, toolrl_reward, trigger_metrics,
)

GOLD = [{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}]


def test_exact_match_is_max_reward():
    reward = toolrl_reward(GOLD, GOLD, format_ok=True)
    assert reward.format == 1.0 and reward.correctness == 3.0


def test_partial_match_follows_the_formula():
    # name Jaccard 1 + key Jaccard 1 + one exact value (city) = 3 of S_max = 1 + (1 + 2) = 4
    calls = [{"name": "get_weather", "arguments": {"city": "Paris", "days": 4}}]
    reward = toolrl_reward(calls, GOLD, format_ok=False)
    assert reward.format == 0.0
    assert reward.correctness == pytest.approx(6 * 3 / 4 - 3)


def test_key_jaccard_and_extra_call():
    # produced names [get_weather, get_time] vs gold [get_weather]: Jaccard 1/2
    # keys {city, unit} vs {city, days}: 1/3; exact values: city -> 1
    calls = [{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}},
             {"name": "get_time", "arguments": {}}]
    expected_score = 0.5 + 1 / 3 + 1
    assert toolrl_reward(calls, GOLD, True).correctness == pytest.approx(6 * expected_score / 4 - 3)


def test_wrong_tool_and_no_call_are_min_reward():
    assert toolrl_reward([{"name": "other", "arguments": {}}], GOLD, True).correctness == -3.0
    assert toolrl_reward([], GOLD, True).correctness == -3.0


def test_no_call_wanted():
    assert toolrl_reward([], [], True).correctness == 3.0
    assert toolrl_reward([{"name": "f", "arguments": {}}], [], True).correctness == -3.0


def test_each_prediction_matches_one_gold_call_only():
    gold = [{"name": "f", "arguments": {"x": 1}}, {"name": "f", "arguments": {"x": 2}}]
    one = toolrl_reward([{"name": "f", "arguments": {"x": 1}}], gold, True).correctness
    two = toolrl_reward([{"name": "f", "arguments": {"x": 2}}, {"name": "f", "arguments": {"x": 1}}],
                        gold, True).correctness
    # one call: names 1/2, matches gold 0 (1 + 1); gold 1 unmatched -> (0.5 + 2) / 5
    assert one == pytest.approx(6 * 2.5 / 5 - 3)
    assert two == 3.0  # order does not matter


def test_bfcl_gold_takes_first_accepted_value_and_drops_omittable():
    bfcl = [{"get_weather": {"city": ["Paris", "paris"], "days": [3], "unit": ["", "celsius"]}}]
    assert gold_to_calls(bfcl) == GOLD
    assert toolrl_reward(GOLD, bfcl, True).correctness == 3.0


TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}},
         {"name": "get_time", "description": "", "parameters": {"type": "dict", "properties": {}}}]


def test_lenient_correct_only_looks_at_names():
    assert lenient_correct([{"name": "get_weather", "arguments": {"wrong": 1}}], TOOLS)
    assert lenient_correct([{"name": "nope", "arguments": {}},
                            {"name": "get_time", "arguments": {}}], TOOLS)
    assert not lenient_correct([{"name": "nope", "arguments": {}}], TOOLS)
    assert not lenient_correct([], TOOLS)


def test_trigger_metrics_by_hand():
    made = [True, True, False, True, False, False]
    needs = [True, False, True, True, False, False]
    # TP 2, FP 1, FN 1, TN 2
    metrics = trigger_metrics(made, needs)
    assert metrics["precision"] == pytest.approx(2 / 3)
    assert metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["f1"] == pytest.approx(2 / 3)
    assert metrics["fpr"] == pytest.approx(1 / 3)


def test_trigger_metrics_degenerate_cases_are_zero_not_nan():
    assert trigger_metrics([False, False], [True, False]) == {
        "precision": 0.0, "recall": 0.0, "f1": 0.0, "fpr": 0.0}
    with pytest.raises(ValueError):
        trigger_metrics([True], [True, False])


def test_tool_productivity():
    assert tool_productivity(3, 4) == 0.75
    assert tool_productivity(0, 0) == 0.0
    with pytest.raises(ValueError):
        tool_productivity(-1, 2)
