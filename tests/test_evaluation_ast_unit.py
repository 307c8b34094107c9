"""Checker behaviour beyond BFCL's data: "auto" routing, OpenAI JSON-schema tools, data errors;
and the BFCL loader (conversion to OpenAI form, categories, error messages)."""

import pytest

from tooldiff.errors import UserError
from tooldiff.evaluation import check_ast, load_bfcl
from tooldiff.evaluation.bfcl_data import bfcl_categories
from tooldiff.evaluation.schema import bfcl_function_to_openai_tool, checker_type

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city.",
    "parameters": {"type": "object", "required": ["city"], "properties": {
        "city": {"type": "string"}, "days": {"type": "integer"}, "lat": {"type": "number"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "unit": {"type": ["string", "null"], "enum": ["c", "f"]}}}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}}
GOLD = [{"get_weather": {"city": ["Paris"], "days": [3, ""], "lat": [48.0, ""],
                         "tags": [["a", "b"], ""], "unit": ["c", ""]}}]


def call(name="get_weather", **arguments):
    return {"name": name, "arguments": arguments}


@pytest.mark.parametrize("calls, expected", [
    ([call(city="paris")], (True, None)),
    ([call(city="Paris", days=3, lat=48, tags=["A", "b"], unit="C")], (True, None)),
    ([call(city="Paris", days=3.0)], (False, "type_error:simple")),
    ([call(city="Paris", days=True)], (False, "type_error:simple")),
    ([call(city="Paris", tags=["b", "a"])], (False, "value_error:list/tuple")),
    # BFCL quirk: the "" (may omit) alternative waives the element type check
    ([call(city="Paris", tags=[1, 2])], (False, "value_error:list/tuple")),
    ([call(city="Lyon")], (False, "value_error:string")),
    ([call(days=3)], (False, "simple_function_checker:missing_required")),
    ([call(city="Paris", wind=1)], (False, "simple_function_checker:unexpected_param")),
    ([call("get_time", tz="CET")], (False, "simple_function_checker:wrong_func_name")),
    ([], (False, "multiple_function_checker:wrong_count")),
])
def test_auto_with_two_tools_uses_multiple_rules_on_openai_schemas(calls, expected):
    result = check_ast(calls, GOLD, [WEATHER, TIME], "auto")
    assert (result.valid, result.error_type) == expected, result.errors


def test_element_types_are_checked_one_level_deep():
    gold = [{"get_weather": {"city": ["Paris"], "tags": [["a", "b"]]}}]
    result = check_ast([call(city="Paris", tags=[1, 2])], gold, [WEATHER])
    assert (result.valid, result.error_type) == (False, "type_error:nested")
    gold = [{"get_weather": {"city": ["Paris"], "tags": [[["a"], ["b"]]]}}]
    nested = {**WEATHER["function"]["parameters"]["properties"],
              "tags": {"type": "array", "items": {"type": "array"}}}
    tool = {"name": "get_weather", "parameters": {"type": "object", "properties": nested}}
    assert check_ast([call(city="Paris", tags=[["A"], ["b"]])], gold, [tool]).valid is False
    assert check_ast([call(city="Paris", tags=[["a"], ["b"]])], gold, [tool]).valid


def test_auto_routes_by_gold_size():
    assert check_ast([], [], [WEATHER], "auto").valid  # no gold call: irrelevance
    result = check_ast([call(city="Paris")], [], [WEATHER], "auto")
    assert result.error_type == "irrelevance_error:decoder_success"
    assert check_ast([], GOLD, [WEATHER], "auto").error_type == "simple_function_checker:wrong_count"
    gold2 = GOLD + [{"get_time": {"tz": ["CET"]}}]
    both = [call("get_time", tz="cet"), call(city="Paris")]
    assert check_ast(both, gold2, [WEATHER, TIME], "auto").valid  # parallel: any order
    assert check_ast(both[:1], gold2, [WEATHER, TIME], "auto").error_type == \
        "parallel_function_checker_no_order:wrong_count"


def test_unknown_category_and_unknown_gold_function_are_user_errors():
    with pytest.raises(UserError, match="valid: simple"):
        check_ast([], GOLD, [WEATHER], "weird")
    with pytest.raises(UserError, match="not among the offered tools"):
        check_ast([call("x")], [{"x": {}}], [WEATHER, TIME], "multiple")


def test_a_call_without_dict_arguments_is_a_format_error():
    result = check_ast([{"name": "get_weather", "arguments": "city=Paris"}], GOLD, [WEATHER])
    assert result.error_type == "ast_decoder:decoder_wrong_output_format"


def test_checker_type_reads_both_dialects():
    assert [checker_type({"type": t}) for t in ("object", "dict", "number", "float", "tuple")] == \
        ["dict", "dict", "float", "float", "tuple"]
    assert checker_type({"type": ["null", "integer"]}) == "integer"
    assert checker_type({}) == checker_type({"type": "weird"}) == "any"


def test_bfcl_function_converts_to_openai_json_schema():
    function = {"name": "f", "description": "d", "parameters": {"type": "dict", "required": ["a"],
                "properties": {"a": {"type": "float"}, "b": {"type": "any"},
                               "c": {"type": "tuple", "items": {"type": "integer"}},
                               "d": {"type": "dict", "properties": {"e": {"type": "boolean"}}}}}}
    tool = bfcl_function_to_openai_tool(function)
    parameters = tool["function"]["parameters"]
    assert tool["type"] == "function" and tool["function"]["name"] == "f"
    assert parameters["type"] == "object" and parameters["required"] == ["a"]
    assert parameters["properties"]["a"] == {"type": "number"}
    assert "type" not in parameters["properties"]["b"]
    assert parameters["properties"]["c"] == {"type": "array", "items": {"type": "integer"}}
    assert parameters["properties"]["d"]["properties"]["e"] == {"type": "boolean"}
    assert function["parameters"]["type"] == "dict"  # the input is left untouched


def test_load_bfcl_gives_prompt_records_in_every_category():
    for category in ("simple", "multiple", "parallel", "parallel_multiple", "irrelevance"):
        records = load_bfcl(category)
        assert len(records) >= 200
        record = records[0]
        assert set(record) == {"id", "messages", "tools", "gold", "kind"}
        assert record["kind"] == category and record["messages"][0]["role"] in ("user", "system")
        assert all(t["function"]["parameters"]["type"] == "object" for t in record["tools"])
        assert bool(record["gold"]) == (category != "irrelevance")
    assert load_bfcl("simple_python")[0]["id"] == load_bfcl("simple")[0]["id"]


def test_load_bfcl_unknown_category_lists_valid_ones():
    with pytest.raises(UserError) as info:
        load_bfcl("simpel")
    for category in bfcl_categories():
        assert category in str(info.value)


def test_load_bfcl_missing_package_says_how_to_install(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match="pip install --no-deps bfcl-eval"):
        load_bfcl("simple")
