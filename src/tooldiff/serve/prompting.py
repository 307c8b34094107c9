"""Messages + tools -> prompt text, in one of three prompt formats.

- `chat-template`: the tokenizer's own chat template with its `tools=` argument (Qwen2.5 and
  most tool-tuned HF models); output in hermes `<tool_call>{json}</tool_call>` blocks.
- `organism`: the same path for the embedded organism, whose template lists tools compactly
  and whose calls are compact JSON (this only changes the forced prefix below).
- `toolrl`: ToolRL's prompt protocol (tools and instructions in the system turn, the dialogue
  as `<user>`/`<obs>` records), then the chat template without `tools=`; output in ToolRL
  blocks (several JSON lines, key "parameters").

`tool_choice`:
- "none": tools are left out of the prompt (the model sees a conversation without tools, as
  it was trained for) and the engine also bans the call-opening token, so no call can come back;
- a named function or "required": the assistant turn is opened with the start of that call
  (prompt-side forcing), and the forced text counts as part of the output that is parsed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tooldiff.evaluation.parsing import CALL_OPEN
from tooldiff.hf import render_prompt
from tooldiff.prompts import FORCED_CALL_START, PARSE_FORMAT, render_toolrl
from tooldiff.serve.schemas import ChatRequest, Message, Tool


@dataclass(frozen=True)
class RenderedPrompt:
    text: str  # the full model input, forced prefix included
    forced: str  # assistant text forced by tool_choice: part of the prompt, and of the output
    parse_format: str  # hermes | toolrl
    calls_allowed: bool


def render_request(tokenizer: Any, request: ChatRequest, prompt_format: str) -> RenderedPrompt:
    calls_allowed = request.tool_choice != "none"
    tools = request.tools if calls_allowed else None
    messages = [_template_message(m) for m in request.messages]
    tool_dicts = [_template_tool(t) for t in tools or []]
    if prompt_format == "toolrl":  # shared with the bench and the study: tooldiff.prompts
        base = render_toolrl(tokenizer, messages, tool_dicts or None)
    else:
        base = render_prompt(tokenizer, {"messages": messages, "tools": tool_dicts})
    forced = _forced_prefix(request, prompt_format) if calls_allowed else ""
    return RenderedPrompt(base + forced, forced, PARSE_FORMAT[prompt_format], calls_allowed)


def _forced_prefix(request: ChatRequest, prompt_format: str) -> str:
    name = request.forced_function
    if name is not None:
        return f"{CALL_OPEN}\n" + FORCED_CALL_START[prompt_format].format(name=json.dumps(name))
    return f"{CALL_OPEN}\n" if request.tool_choice == "required" else ""


def _template_tool(tool: Tool) -> dict:
    """A tool as HF chat templates expect it; a missing schema is an empty object schema."""
    out = tool.model_dump(exclude_none=True)
    out["function"].setdefault("parameters", {"type": "object", "properties": {}})
    return out


def _template_message(message: Message) -> dict:
    """A message as HF chat templates expect it (developer -> system, arguments as a dict)."""
    out: dict[str, Any] = {"role": "system" if message.role == "developer" else message.role,
                           "content": message.text()}
    if message.tool_calls:
        out["tool_calls"] = [
            {"type": "function", "id": c.id, "function": {"name": c.function.name, "arguments": _arguments(c.function.arguments)}}
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        out["name"] = message.name
    return out


def _arguments(raw: str) -> Any:
    # HF templates render a dict with `tojson`; a string would come out double-encoded.
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return raw
    return value if isinstance(value, dict) else raw
