"""Parse model output into canonical calls `{"name": str, "arguments": dict}`.

Formats:
- hermes (Qwen2.5): `<tool_call>\\n{json}\\n</tool_call>` blocks, one JSON object (or a JSON
  list of objects) per block, key "arguments".
- toolrl: `<think>..</think>\\n<tool_call>\\n{json}\\n{json}\\n</tool_call>\\n<response>..`,
  several JSON objects per block (one a line, or pretty-printed), key "parameters";
  `{"name": "None"}` means "no call" and is dropped.
- openai: an assistant message `{"content", "tool_calls": [{"function": {"name",
  "arguments": "<JSON string>"}}]}` (a chat-completion response or its JSON text also works).

Both text formats read either argument key. A *malformed entry* (a hermes block, a toolrl JSON
value or an OpenAI tool call that cannot be read, or a block left unclosed) is counted in
`malformed`; with `strict=True` it makes `ok` False, and with `strict=False` it is skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tooldiff.errors import UserError

FORMATS = ("hermes", "toolrl", "openai")
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
_ARGUMENT_KEYS = {"hermes": ("arguments", "parameters"), "toolrl": ("parameters", "arguments"),
                  "openai": ("arguments", "parameters")}
NO_CALL_NAME = "None"  # ToolRL's explicit "no tool" entry
_decoder = json.JSONDecoder()


@dataclass
class ParsedOutput:
    calls: list[dict] = field(default_factory=list)
    malformed: int = 0
    ok: bool = True
    text: str = ""


class _Malformed(Exception):
    """One call entry could not be read."""


# --- shared pieces -----------------------------------------------------------------------
def _arguments_from(raw: Any) -> dict:
    if raw is None:
        return {}
    if isinstance(raw, str):  # some models (and the OpenAI wire format) send a JSON string
        if not raw.strip():
            return {}
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as e:
            raise _Malformed(f"arguments are not JSON: {e}") from None
    if not isinstance(raw, dict):
        raise _Malformed(f"arguments are not an object: {raw!r}")
    return raw


def _call_from(entry: Any, fmt: str) -> dict | None:
    """A canonical call from one decoded JSON entry; None for ToolRL's explicit no-call."""
    if not isinstance(entry, dict):
        raise _Malformed(f"call is not an object: {entry!r}")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise _Malformed(f"call without a name: {entry!r}")
    if fmt == "toolrl" and name == NO_CALL_NAME:
        return None
    key = next((k for k in _ARGUMENT_KEYS[fmt] if k in entry), None)
    return {"name": name, "arguments": _arguments_from(entry.get(key) if key else None)}


def _split_blocks(text: str) -> tuple[list[tuple[str, bool]], str]:
    """(block content, closed?) for each `<tool_call>` block, and the text outside them."""
    blocks, outside, position = [], [], 0
    while True:
        start = text.find(CALL_OPEN, position)
        if start < 0:
            outside.append(text[position:])
            break
        outside.append(text[position:start])
        body_start = start + len(CALL_OPEN)
        end = text.find(CALL_CLOSE, body_start)
        if end < 0:  # unclosed: generation was cut or the model forgot the tag
            blocks.append((text[body_start:], False))
            break
        blocks.append((text[body_start:end], True))
        position = end + len(CALL_CLOSE)
    return blocks, "".join(outside)


def _next_entry_start(content: str, position: int) -> int:
    """Resume after a bad JSON value at the next line that opens an object."""
    while True:
        newline = content.find("\n", position)
        if newline < 0:
            return len(content)
        position = newline + 1
        if content[position:].lstrip(" \t").startswith("{"):
            return position


def _json_values(content: str) -> tuple[list[Any], int]:
    """Decode consecutive JSON values (one a line or pretty-printed); count the unreadable."""
    values, bad, position = [], 0, 0
    while True:
        while position < len(content) and content[position].isspace():
            position += 1
        if position >= len(content):
            return values, bad
        try:
            value, position = _decoder.raw_decode(content, position)
            values.append(value)
        except json.JSONDecodeError:
            bad += 1
            position = _next_entry_start(content, position)


# --- the three formats -------------------------------------------------------------------
def _hermes_block(content: str) -> list[dict]:
    try:
        value = json.loads(content)
    except json.JSONDecodeError as e:
        raise _Malformed(f"block is not one JSON value: {e}") from None
    entries = value if isinstance(value, list) else [value]
    return [call for call in (_call_from(entry, "hermes") for entry in entries) if call]


def _parse_hermes(text: str) -> tuple[list[dict], int, str]:
    blocks, outside = _split_blocks(text)
    calls, malformed = [], 0
    for content, closed in blocks:
        try:
            block_calls = _hermes_block(content)
        except _Malformed:
            malformed += 1
            continue
        if not closed:
            malformed += 1  # a complete JSON in an unclosed block: counted, but still read
        calls.extend(block_calls)
    return calls, malformed, outside


def _parse_toolrl(text: str) -> tuple[list[dict], int, str]:
    blocks, outside = _split_blocks(text)
    calls, malformed = [], 0
    for content, closed in blocks:
        values, bad = _json_values(content)
        malformed += bad + (0 if closed else 1)
        for value in values:
            for entry in value if isinstance(value, list) else [value]:
                try:
                    call = _call_from(entry, "toolrl")
                except _Malformed:
                    malformed += 1
                    continue
                if call is not None:
                    calls.append(call)
    return calls, malformed, outside


def _message_from(output: dict) -> dict:
    choices = output.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0].get("message") or choices[0].get("delta") or {}
    return output


def _parse_openai_calls(message: dict) -> tuple[list[dict], int]:
    raw_calls = list(message.get("tool_calls") or [])
    if isinstance(message.get("function_call"), dict):  # the legacy single-call field
        raw_calls.append({"function": message["function_call"]})
    calls, malformed = [], 0
    for raw in raw_calls:
        function = raw.get("function") if isinstance(raw, dict) else None
        try:
            calls.append(_call_from(function, "openai"))
        except _Malformed:
            malformed += 1
    return calls, malformed


def _openai_message(output: Any) -> dict:
    if isinstance(output, dict):
        return _message_from(output)
    if output.lstrip().startswith("{"):
        try:
            decoded = json.loads(output)
        except json.JSONDecodeError:
            decoded = None
        if isinstance(decoded, dict):
            return _message_from(decoded)
    return {"content": output}


def parse_calls(output: str | dict | None, fmt: str = "hermes",
                strict: bool = True) -> ParsedOutput:
    """Parse raw model text or an OpenAI message into canonical calls.

    A message dict is read for `tool_calls` in every format; with "hermes"/"toolrl" its text
    content is parsed for `<tool_call>` blocks as well (servers may leave them in the text).
    """
    if fmt not in FORMATS:
        raise UserError(f"unknown output format {fmt!r}; valid: {', '.join(FORMATS)}")
    if output is None:
        output = ""
    if not isinstance(output, (str, dict)):
        raise UserError(f"an output must be text or an OpenAI message, not {type(output).__name__}")

    calls, malformed, text = [], 0, output if isinstance(output, str) else ""
    if fmt == "openai" or isinstance(output, dict):
        message = _openai_message(output)
        calls, malformed = _parse_openai_calls(message)
        text = message.get("content") or ""
        if not isinstance(text, str):  # content given as parts: keep the text parts
            text = "".join(p.get("text", "") for p in text if isinstance(p, dict))
    if fmt != "openai":
        parse_text = _parse_hermes if fmt == "hermes" else _parse_toolrl
        text_calls, text_malformed, text = parse_text(text)
        calls, malformed = calls + text_calls, malformed + text_malformed
    return ParsedOutput(calls=calls, malformed=malformed, ok=not (strict and malformed), text=text)
