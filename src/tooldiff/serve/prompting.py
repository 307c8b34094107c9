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
from typing import Any, Optional

from tooldiff.hf import render_prompt
from tooldiff.serve.schemas import ChatRequest, Message, Tool

PARSE_FORMAT = {"chat-template": "hermes", "organism": "hermes", "toolrl": "toolrl"}
CALL_OPEN = "<tool_call>"
_FORCED_CALL_START = {
    "chat-template": '{{"name": {name}, "arguments": ',
    "organism": '{{"name":{name},"arguments":',
    "toolrl": '{{"name": {name}, "parameters": ',
}


@dataclass(frozen=True)
class RenderedPrompt:
    text: str  # the full model input, forced prefix included
    forced: str  # assistant text forced by tool_choice: part of the prompt, and of the output
    parse_format: str  # hermes | toolrl
    calls_allowed: bool


def render_request(tokenizer: Any, request: ChatRequest, prompt_format: str) -> RenderedPrompt:
    calls_allowed = request.tool_choice != "none"
    tools = request.tools if calls_allowed else None
    if prompt_format == "toolrl":
        base = _render_toolrl(tokenizer, request.messages, tools)
    else:
        record = {"messages": [_template_message(m) for m in request.messages],
                  "tools": [_template_tool(t) for t in tools or []]}
        base = render_prompt(tokenizer, record)
    forced = _forced_prefix(request, prompt_format) if calls_allowed else ""
    return RenderedPrompt(base + forced, forced, PARSE_FORMAT[prompt_format], calls_allowed)


def _forced_prefix(request: ChatRequest, prompt_format: str) -> str:
    name = request.forced_function
    if name is not None:
        return f"{CALL_OPEN}\n" + _FORCED_CALL_START[prompt_format].format(name=json.dumps(name))
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


# --- ToolRL ------------------------------------------------------------------------------
# The instructions ToolRL models were trained with (Qian et al. 2025); the model expects them.
_TOOLRL_SYSTEM = """You are a helpful multi-turn dialogue assistant capable of leveraging tool calls to solve user tasks and provide structured chat responses.

**Available Tools**
In your response, you can use the following tools:
{tools}

**Steps for Each Turn**
1. **Think:** Recall relevant context and analyze the current user goal.
2. **Decide on Tool Usage:** If a tool is needed, specify the tool and its parameters.
3. **Respond Appropriately:** If a response is needed, generate one while maintaining consistency across user queries.

**Output Format**
```plaintext
<think> Your thoughts and reasoning </think>
<tool_call>
{{"name": "Tool name", "parameters": {{"Parameter name": "Parameter content", "... ...": "... ..."}}}}
{{"name": "... ...", "parameters": {{"... ...": "... ...", "... ...": "... ..."}}}}
...
</tool_call>
<response> AI's final response </response>
```

**Important Notes**
1. You must always include the `<think>` field to outline your reasoning. Provide at least one of `<tool_call>` or `<response>`. Decide whether to use `<tool_call>` (possibly multiple times), `<response>`, or both.
2. You can invoke multiple tool calls simultaneously in the `<tool_call>` fields. Each tool call should be a JSON object with a "name" field and an "parameters" field containing a dictionary of parameters. If no parameters are needed, leave the "parameters" field an empty dictionary.
3. Refer to the previous dialogue records in the history, including the user's queries, previous `<tool_call>`, `<response>`, and any tool feedback noted as `<obs>` (if exists)."""
_TOOLRL_USER_SUFFIX = (
    "If there's no appropriate tools to apply or required parameters are missing, please directly inform me "
    "in your response without any tool call, or call the tool with the name as 'None'. Otherwise, you should "
    "use one or more necessary tool calls to complete the given task in this turn."
)


def _toolrl_tool_list(tools: Optional[list[Tool]]) -> str:
    if not tools:
        return "(no tools are available in this turn)"
    lines = []
    for i, tool in enumerate(tools, 1):
        f = tool.function
        params = (f.parameters or {}).get("properties", {})
        lines.append(f"{i}. Name: {f.name}\nDescription: {f.description or ''}\nParameters: {json.dumps(params)}")
    return "\n".join(lines)


def _toolrl_record(message: Message) -> str:
    if message.role == "user":
        return f"<user> {message.text().strip()}\n{_TOOLRL_USER_SUFFIX} </user>"
    if message.role == "tool":
        return f"<obs> You have made the tool call {message.name or ''}. Execution returns: {message.text().strip()} </obs>"
    text = message.text().strip()
    if message.tool_calls:
        lines = [json.dumps({"name": c.function.name, "parameters": _arguments(c.function.arguments)})
                 for c in message.tool_calls]
        text = (text + "\n" if text else "") + "<tool_call>\n" + "\n".join(lines) + "\n</tool_call>"
    return text


def _render_toolrl(tokenizer: Any, messages: list[Message], tools: Optional[list[Tool]]) -> str:
    extra_system = [m.text().strip() for m in messages if m.role in ("system", "developer") and m.text().strip()]
    system = _TOOLRL_SYSTEM.format(tools=_toolrl_tool_list(tools))
    if extra_system:
        system = "\n\n".join(extra_system) + "\n\n" + system
    records = [_toolrl_record(m) for m in messages if m.role not in ("system", "developer")]
    user = "**Dialogue Records History**\n" + "\n".join(r for r in records if r)
    return render_prompt(tokenizer, {"messages": [{"role": "system", "content": system}, {"role": "user", "content": user}]})
