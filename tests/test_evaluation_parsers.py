"""Parsers: hermes, ToolRL, OpenAI, and strict vs lenient handling of malformed entries."""

import json

import pytest

from tooldiff.errors import UserError
from tooldiff.evaluation import parse_calls

HERMES_TWO_BLOCKS = (
    "I will look both up.\n"
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}\n</tool_call>\n'
    '<tool_call>\n{"name": "get_time", "arguments": {"tz": "CET"}}\n</tool_call>'
)

TOOLRL_OUTPUT = (
    "<think>The user wants two things.</think>\n<tool_call>\n"
    '{"name": "get_weather", "parameters": {"city": "Paris", "unit": "celsius"}}\n'
    '{"name": "convert", "parameters": {"value": 2.5,\n   "to": "km"}}\n'
    "</tool_call>\n<response>Here you go.</response>"
)


def test_hermes_reads_every_block_in_order():
    parsed = parse_calls(HERMES_TWO_BLOCKS, fmt="hermes")
    assert parsed.calls == [
        {"name": "get_weather", "arguments": {"city": "Paris", "days": 3}},
        {"name": "get_time", "arguments": {"tz": "CET"}},
    ]
    assert parsed.ok and parsed.malformed == 0
    assert parsed.text.strip() == "I will look both up."
    assert type(parsed.calls[0]["arguments"]["days"]) is int  # int vs float survives parsing


def test_hermes_without_blocks_is_no_call():
    parsed = parse_calls("The capital of France is Paris.", fmt="hermes")
    assert parsed.calls == [] and parsed.ok and parsed.text == "The capital of France is Paris."


def test_hermes_pretty_printed_block_and_string_arguments():
    output = '<tool_call>\n{\n  "name": "f",\n  "arguments": "{\\"x\\": 1.0}"\n}\n</tool_call>'
    parsed = parse_calls(output, fmt="hermes")
    assert parsed.calls == [{"name": "f", "arguments": {"x": 1.0}}]
    assert type(parsed.calls[0]["arguments"]["x"]) is float


def test_toolrl_several_json_values_with_parameters_key():
    parsed = parse_calls(TOOLRL_OUTPUT, fmt="toolrl")
    assert parsed.calls == [
        {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}},
        {"name": "convert", "arguments": {"value": 2.5, "to": "km"}},
    ]
    assert parsed.ok
    assert "<think>" in parsed.text and "<response>Here you go.</response>" in parsed.text


def test_toolrl_none_means_no_call():
    output = '<think>nothing fits</think>\n<tool_call>\n{"name": "None", "parameters": {}}\n</tool_call>'
    parsed = parse_calls(output, fmt="toolrl")
    assert parsed.calls == [] and parsed.malformed == 0 and parsed.ok


def test_toolrl_bad_line_is_skipped_in_lenient_and_fails_strict():
    output = ('<tool_call>\n{"name": "a", "parameters": {"x": 1}}\n{"name": "b", "parameters": {\n'
              '{"name": "c", "parameters": {"y": 2}}\n</tool_call>')
    lenient = parse_calls(output, fmt="toolrl", strict=False)
    assert [c["name"] for c in lenient.calls] == ["a", "c"]
    assert lenient.malformed == 1 and lenient.ok
    strict = parse_calls(output, fmt="toolrl", strict=True)
    assert strict.malformed == 1 and not strict.ok
    assert [c["name"] for c in strict.calls] == ["a", "c"]  # still reported, but not ok


def test_hermes_parses_toolrl_multiline_block_as_malformed():
    """A block with two JSON lines is not one JSON value: the wrong format for hermes."""
    output = TOOLRL_OUTPUT.replace("parameters", "arguments")
    hermes = parse_calls(output, fmt="hermes", strict=False)
    assert hermes.calls == [] and hermes.malformed == 1


@pytest.mark.parametrize("bad_block", [
    "{not json}",
    '{"arguments": {"x": 1}}',                    # no name
    '{"name": "f", "arguments": [1, 2]}',          # arguments not an object
    '{"name": "f", "arguments": "{broken"}',       # arguments string not JSON
    '"just a string"',
])
def test_malformed_hermes_block_strict_vs_lenient(bad_block):
    output = f"<tool_call>\n{bad_block}\n</tool_call>\n" + HERMES_TWO_BLOCKS
    strict = parse_calls(output, fmt="hermes", strict=True)
    lenient = parse_calls(output, fmt="hermes", strict=False)
    assert strict.malformed == lenient.malformed == 1
    assert not strict.ok and lenient.ok
    assert [c["name"] for c in lenient.calls] == ["get_weather", "get_time"]


def test_unclosed_block_counts_as_malformed():
    parsed = parse_calls('<tool_call>\n{"name": "f", "arguments": {"x": 1', fmt="hermes")
    assert parsed.malformed == 1 and not parsed.ok and parsed.calls == []
    complete_but_unclosed = parse_calls('<tool_call>\n{"name": "f", "arguments": {}}',
                                        fmt="hermes", strict=False)
    assert complete_but_unclosed.calls == [{"name": "f", "arguments": {}}]
    assert complete_but_unclosed.malformed == 1


def test_openai_tool_calls_with_json_string_arguments():
    message = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris", "days": 2})}},
        {"id": "call_2", "type": "function", "function": {"name": "ping", "arguments": ""}},
    ]}
    parsed = parse_calls(message, fmt="openai")
    assert parsed.calls == [{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}},
                            {"name": "ping", "arguments": {}}]
    assert parsed.ok and parsed.text == ""
    # the same message as JSON text, and wrapped in a chat-completion response
    assert parse_calls(json.dumps(message), fmt="openai").calls == parsed.calls
    response = {"choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]}
    assert parse_calls(response, fmt="openai").calls == parsed.calls


def test_openai_malformed_arguments_strict_vs_lenient():
    message = {"role": "assistant", "content": "ok", "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": "{\"x\": "}},
        {"type": "function", "function": {"name": "g", "arguments": "{\"y\": 1}"}},
    ]}
    assert not parse_calls(message, fmt="openai", strict=True).ok
    lenient = parse_calls(message, fmt="openai", strict=False)
    assert lenient.calls == [{"name": "g", "arguments": {"y": 1}}] and lenient.malformed == 1
    assert lenient.text == "ok"


def test_openai_plain_text_is_no_call():
    parsed = parse_calls("Sorry, I cannot help with that.", fmt="openai")
    assert parsed.calls == [] and parsed.ok


def test_message_dict_in_hermes_mode_reads_content_blocks_too():
    message = {"role": "assistant", "content": HERMES_TWO_BLOCKS}
    assert len(parse_calls(message, fmt="hermes").calls) == 2


def test_unknown_format_is_a_user_error():
    with pytest.raises(UserError, match="hermes, toolrl, openai"):
        parse_calls("x", fmt="xml")
