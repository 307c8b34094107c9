"""Prompt formats (tooldiff.prompts): ToolRL's tool list and protocol, shared with the server."""

import pytest

from tooldiff.errors import UserError
from tooldiff.evaluation import parse_calls
from tooldiff.prompts import render_record
from tooldiff.serve.prompting import render_request
from tooldiff.serve.schemas import ChatRequest

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
         {"type": "function", "function": {"name": "add", "description": "Sum",
          "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}]
RECORD = {"id": "x", "messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": TOOLS, "gold": []}


def test_toolrl_lists_tools_as_numbered_name_description_parameters(tiny):
    text = render_record(tiny.tokenizer(), RECORD, "toolrl")
    assert "1. Name: get_weather\nDescription: Weather of a city\nParameters: {\"city\": {\"type\": \"string\"}}" in text
    assert "2. Name: add\nDescription: Sum" in text
    assert "<user> Weather in Paris?" in text and '"parameters"' in text
    # ToolRL's output parser reads what the prompt asks for.
    out = '<think>x</think>\n<tool_call>\n{"name": "get_weather", "parameters": {"city": "Paris"}}\n</tool_call>'
    assert parse_calls(out, fmt="toolrl").calls == [{"name": "get_weather", "arguments": {"city": "Paris"}}]


def test_server_and_bench_render_toolrl_identically(tiny):
    tok = tiny.tokenizer()
    request = ChatRequest(model="m", messages=RECORD["messages"], tools=TOOLS)
    assert render_request(tok, request, "toolrl").text == render_record(tok, RECORD, "toolrl")


def test_template_formats_use_the_chat_template_and_unknown_is_an_error(tiny):
    tok = tiny.tokenizer()
    assert render_record(tok, RECORD, "chat-template") == render_record(tok, RECORD, "organism")
    assert "Weather in Paris?" in render_record(tok, RECORD, "chat-template")
    with pytest.raises(UserError, match="unknown prompt format"):
        render_record(tok, RECORD, "xml")


def test_every_prompt_format_has_its_parser_and_forced_call_start():
    from tooldiff.prompts import FORCED_CALL_START, PARSE_FORMAT, PROMPT_FORMATS

    assert set(PARSE_FORMAT) == set(FORCED_CALL_START) == set(PROMPT_FORMATS)
