"""Our BFCL-AST checker against the OFFICIAL bfcl_eval checker, case by case.

Cases: every ground truth of the five core categories (and the live ones, which cost little),
plus systematic perturbations. The official checker is loaded through the stub of SPEC §4.
Agreement must be exact on validity and on the error type; the one case where we differ on
purpose (the official checker raises) is listed in docs/scoring.md and checked separately.
"""

from __future__ import annotations

import collections
import copy
import importlib
import sys
import types

import pytest

from tooldiff.evaluation import check_ast, load_bfcl, load_bfcl_raw

CORE = {"simple": "simple_python", "multiple": "multiple", "parallel": "parallel",
        "parallel_multiple": "parallel_multiple", "irrelevance": "irrelevance"}
LIVE = {"live_simple": "live_simple", "live_multiple": "live_multiple",
        "live_parallel": "live_parallel", "live_parallel_multiple": "live_parallel_multiple",
        "live_irrelevance": "live_irrelevance"}


# --- the official oracle -----------------------------------------------------------------
class _NoUnderscoreToDot:
    underscore_to_dot = False


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """(ast_checker, Language, is_empty_output) from bfcl_eval, with sys.modules restored."""
    saved_modules = set(sys.modules)
    stub = types.ModuleType("bfcl_eval.constants.model_config")
    stub.MODEL_CONFIG_MAPPING = collections.defaultdict(_NoUnderscoreToDot)
    sys.modules["bfcl_eval.constants.model_config"] = stub
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BFCL_PROJECT_ROOT", str(tmp_path_factory.mktemp("bfcl_root")))
        checker = importlib.import_module("bfcl_eval.eval_checker.ast_eval.ast_checker")
        enums = importlib.import_module("bfcl_eval.constants.enums")
        utils = importlib.import_module("bfcl_eval.utils")
        yield checker.ast_checker, enums.Language, utils.is_empty_output
    for name in set(sys.modules) - saved_modules:
        if name.startswith("bfcl_eval"):  # the stub must not leak into other tests
            del sys.modules[name]


def official_verdict(official, calls, gold, functions, bfcl_category):
    ast_checker, language, is_empty_output = official
    decoded = [{c["name"]: copy.deepcopy(c["arguments"])} for c in calls]
    if "irrelevance" in bfcl_category:  # eval_runner's relevance logic
        if is_empty_output(decoded):
            return True, None
        return False, "irrelevance_error:decoder_success"
    result = ast_checker(copy.deepcopy(functions), decoded, copy.deepcopy(gold),
                         language.PYTHON, bfcl_category, "tooldiff_oracle")
    return result["valid"], (None if result["valid"] else result["error_type"])


# --- case generation ---------------------------------------------------------------------
def _pick(accepted: list, which: str):
    """An accepted value ("first"/"last" that is not the omit marker), or KeyError to omit."""
    values = [v for v in accepted if v != ""]
    if not values or (which == "omit" and "" in accepted):
        raise KeyError
    return values[0] if which in ("first", "omit") else values[-1]


def answer_calls(gold: list, which: str) -> list[dict]:
    calls = []
    for gold_call in gold:
        (name, accepted), = gold_call.items()
        arguments = {}
        for param, values in accepted.items():
            try:
                arguments[param] = _pick(values, which)
            except KeyError:
                pass
        calls.append({"name": name, "arguments": arguments})
    return calls


def _schema_of(functions, name):
    return next((f for f in functions if f["name"] == name), functions[0])


def _default_value(schema: dict):
    return {"integer": 1, "float": 1.5, "boolean": True, "array": ["a"], "tuple": ["a"],
            "dict": {"k": "v"}}.get(schema.get("type"), "value")


def _variants_of_value(value):
    """(label, replacement) perturbations of one argument value."""
    if type(value) is bool:
        yield "bool_as_int", int(value)
        yield "bool_flipped", not value
    elif type(value) is int:
        yield "int_as_float", float(value)
        yield "int_as_str", str(value)
        yield "int_off_by_one", value + 1
        yield "int_as_bool", bool(value)
    elif type(value) is float:
        yield "float_as_int", int(value)
        yield "float_as_str", str(value)
        yield "float_nudged", value + 0.5
    elif type(value) is str:
        yield "str_upper", value.upper()
        yield "str_punctuated", value.replace(" ", ", ") + "."
        yield "str_dashed", value.replace(" ", "-") + "_"
        yield "str_quoted", value.replace('"', "'") + "'"
        yield "str_changed", value + "zq"
        yield "str_as_list", [value]
    elif type(value) is list:
        if len(value) >= 2:
            yield "list_reversed", list(reversed(value))
        yield "list_truncated", value[:-1]
        yield "list_extended", value + value[-1:] if value else ["x"]
        yield "list_upper", [v.upper() if isinstance(v, str) else v for v in value]
        yield "list_ints_as_floats", [float(v) if type(v) is int else v for v in value]
        yield "list_as_tuple_str", str(tuple(value))
        if value and isinstance(value[0], dict):
            yield "list_dict_key_dropped", [dict(list(value[0].items())[1:])] + value[1:]
    elif type(value) is dict:
        if value:
            first = next(iter(value))
            yield "dict_key_dropped", {k: v for k, v in value.items() if k != first}
            yield "dict_value_changed", {**value, first: "zq"}
        yield "dict_key_added", {**value, "zz_extra": 1}
        yield "dict_as_str", str(value)
    yield "value_null", None


def perturbations(calls: list[dict], functions: list[dict], gold: list[dict]):
    """(label, calls) variants of a correct answer (`calls` follow `gold` in order)."""
    if not calls:
        return
    first = calls[0]
    rest = calls[1:]
    schema = _schema_of(functions, first["name"])["parameters"]
    yield "wrong_name", [{**first, "name": first["name"] + "_v2"}] + rest
    for param in schema.get("required", []):
        if param in first["arguments"]:
            arguments = {k: v for k, v in first["arguments"].items() if k != param}
            yield "missing_required", [{**first, "arguments": arguments}] + rest
            break
    for param, accepted in next(iter(gold[0].values())).items():
        if param not in schema.get("required", []) and "" not in accepted:
            arguments = {k: v for k, v in first["arguments"].items() if k != param}
            yield "missing_needed_optional", [{**first, "arguments": arguments}] + rest
            break
    yield "extra_param", [{**first, "arguments": {**first["arguments"], "zz_extra": 1}}] + rest
    for param, param_schema in schema["properties"].items():
        if param not in first["arguments"]:
            value = _default_value(param_schema)
            yield "schema_param_added", [{**first, "arguments": {**first["arguments"],
                                                                 param: value}}] + rest
            break
    for param, value in first["arguments"].items():
        for label, replacement in _variants_of_value(value):
            arguments = {**first["arguments"], param: replacement}
            yield label, [{**first, "arguments": arguments}] + rest
    if len(calls) >= 2:
        yield "parallel_swapped", list(reversed(calls))
        yield "parallel_rotated", calls[1:] + calls[:1]
        yield "parallel_dropped", calls[:-1]
        if len(calls) >= 3:
            yield "parallel_middle_wrong", calls[:1] + [{**calls[1], "name": "nope"}] + calls[2:]
    yield "duplicated_call", calls + calls[:1]
    yield "no_call", []


def irrelevance_calls(functions: list[dict]):
    yield "no_call", []
    if not functions:  # some live_irrelevance prompts offer no tool at all
        yield "call_unoffered_on_irrelevance", [{"name": "anything", "arguments": {}}]
        return
    function = functions[0]
    properties = function["parameters"]["properties"]
    required = {p: _default_value(properties[p]) for p in function["parameters"].get("required", [])}
    yield "call_on_irrelevance", [{"name": function["name"], "arguments": required}]
    yield "call_no_args_on_irrelevance", [{"name": function["name"], "arguments": {}}]
    yield "two_calls_on_irrelevance", [{"name": f["name"], "arguments": {}} for f in functions] * 2


def build_cases(category: str, bfcl_category: str):
    entries, answers = load_bfcl_raw(category)
    records = {r["id"]: r for r in load_bfcl(category)}
    for entry in entries:
        functions, record = entry["function"], records[entry["id"]]
        if "irrelevance" in category:
            variants = list(irrelevance_calls(functions))
        else:
            gold = answers[entry["id"]]
            variants = [(f"ground_truth_{which}", answer_calls(gold, which))
                        for which in ("first", "last", "omit")]
            variants += list(perturbations(answer_calls(gold, "first"), functions, gold))
        for label, calls in variants:
            yield {"id": entry["id"], "label": label, "calls": calls, "functions": functions,
                   "tools": record["tools"], "gold": record["gold"], "kind": record["kind"],
                   "bfcl_category": bfcl_category}


def _compare(official, categories: dict[str, str]):
    stats = collections.Counter()
    labels, error_types, disagreements = set(), set(), []
    for category, bfcl_category in categories.items():
        for case in build_cases(category, bfcl_category):
            stats[category] += 1
            labels.add(case["label"])
            expected = official_verdict(official, case["calls"], case["gold"],
                                        case["functions"], bfcl_category)
            stats["valid" if expected[0] else "invalid"] += 1
            error_types.add(expected[1])
            # ours on BFCL's raw docs and on the converted OpenAI tools that records carry
            for tools_form, tools in (("bfcl", case["functions"]), ("openai", case["tools"])):
                result = check_ast(case["calls"], case["gold"], tools, case["kind"])
                if (result.valid, result.error_type) != expected:
                    disagreements.append((case["id"], case["label"], tools_form,
                                          (result.valid, result.error_type), expected))
    return stats, labels, error_types, disagreements


def test_agrees_with_official_checker_on_core_categories(official):
    stats, labels, error_types, disagreements = _compare(official, CORE)
    assert not disagreements, f"{len(disagreements)} disagreements, e.g. {disagreements[:5]}"
    for category in CORE:
        assert stats[category] >= 400, stats
    compared = stats["valid"] + stats["invalid"]
    assert compared >= 2000 and stats["valid"] >= 1000 and stats["invalid"] >= 1000, stats
    for needed in ("wrong_name", "missing_required", "extra_param", "int_as_float", "float_as_int",
                   "list_reversed", "str_upper", "str_punctuated", "parallel_swapped",
                   "parallel_dropped", "duplicated_call", "call_on_irrelevance"):
        assert needed in labels
    # the perturbations reach every error type the checker can give on these categories
    for needed in ("simple_function_checker:wrong_func_name",
                   "simple_function_checker:missing_required",
                   "simple_function_checker:unexpected_param",
                   "simple_function_checker:missing_optional",
                   "simple_function_checker:wrong_count", "multiple_function_checker:wrong_count",
                   "parallel_function_checker_no_order:wrong_count",
                   "parallel_function_checker_no_order:cannot_find_match",
                   "type_error:simple", "type_error:nested", "value_error:string",
                   "value_error:list/tuple", "value_error:others", "value_error:dict_key",
                   "value_error:dict_value", "irrelevance_error:decoder_success"):
        assert needed in error_types, sorted(map(str, error_types))
    print(f"\ncompared {compared} cases: {dict(stats)}; error types {sorted(map(str, error_types))}")


def test_agrees_with_official_checker_on_live_categories(official):
    stats, _, _, disagreements = _compare(official, LIVE)
    assert not disagreements, f"{len(disagreements)} disagreements, e.g. {disagreements[:5]}"
    assert stats["valid"] + stats["invalid"] >= 2000, stats


def test_deliberate_difference_official_raises_we_fail(official):
    """docs/scoring.md: a non-dict element in a list-of-dicts parameter whose accepted answers
    hold strings makes the official checker raise; we fail the example instead."""
    function = {"name": "book", "description": "", "parameters": {
        "type": "dict", "required": ["rooms"],
        "properties": {"rooms": {"type": "array", "items": {"type": "dict"}}}}}
    gold = [{"book": {"rooms": [["single"]]}}]
    calls = [{"name": "book", "arguments": {"rooms": ["single"]}}]
    with pytest.raises(AttributeError):
        official_verdict(official, calls, gold, [function], "simple_python")
    result = check_ast(calls, gold, [function], "simple")
    assert (result.valid, result.error_type) == (False, "value_error:dict_value")
