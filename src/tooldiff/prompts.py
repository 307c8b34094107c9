"""Prompt formats: how a prompt record (messages + tools) becomes model input text.

- `chat-template`: the tokenizer's own chat template with its `tools=` argument (Qwen2.5's
  hermes template and most tool-tuned HF models); calls come back as hermes blocks.
- `organism`: the embedded organism's template, reached the same way (its tokenizer carries
  it); calls are compact hermes JSON.
- `toolrl`: ToolRL's protocol (Qian et al. 2025): the tools, listed as `N. Name / Description /
  Parameters`, and the output instructions in the system turn, the dialogue as `<user>`/`<obs>`
  records in one user turn, then the chat template *without* `tools=`; calls come back as a
  ToolRL block (one JSON a line, key "parameters"), read by `parse_calls(fmt="toolrl")`.

Messages are HF chat-template dicts (`role`, `content`, optional `tool_calls` whose
`function.arguments` is a dict or a JSON string, `name` on tool results). The bench, the study
and the server all render through here.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Optional

from pydantic import AfterValidator

from tooldiff.errors import UserError
from tooldiff.evaluation.parsing import CALL_CLOSE, CALL_OPEN

PROMPT_FORMATS: tuple[str, ...] = ("chat-template", "toolrl", "organism")
# A prompt record's "kind": it needs a call, it needs a tool that is not on offer, or it is chit-chat.
REQUEST_KINDS: tuple[str, ...] = ("call", "not_offered", "chitchat")
NO_CALL_KINDS: tuple[str, ...] = REQUEST_KINDS[1:]  # a call on these is a wrong call
# Which `evaluation.parse_calls` format reads the output of each prompt format.
PARSE_FORMAT: dict[str, str] = {"chat-template": "hermes", "organism": "hermes", "toolrl": "toolrl"}
# How a call to a named function starts inside <tool_call> in each format (a forced `tool_choice`).
FORCED_CALL_START: dict[str, str] = {
    "chat-template": '{{"name": {name}, "arguments": ',
    "organism": '{{"name":{name},"arguments":',
    "toolrl": '{{"name": {name}, "parameters": ',
}

# The instructions ToolRL models were trained with; the model expects them verbatim.
TOOLRL_SYSTEM = """You are a helpful multi-turn dialogue assistant capable of leveraging tool calls to solve user tasks and provide structured chat responses.

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
TOOLRL_USER_SUFFIX = (
    "If there's no appropriate tools to apply or required parameters are missing, please directly inform me "
    "in your response without any tool call, or call the tool with the name as 'None'. Otherwise, you should "
    "use one or more necessary tool calls to complete the given task in this turn."
)


def _unknown_format(name: str) -> str:
    return f"unknown prompt format {name!r}; choose one of {', '.join(PROMPT_FORMATS)}"


def check_prompt_format(name: str) -> str:
    if name not in PROMPT_FORMATS:
        raise UserError(_unknown_format(name))
    return name


def _valid_format(name: str) -> str:
    if name not in PROMPT_FORMATS:
        raise ValueError(_unknown_format(name))
    return name


# A config field holding a prompt format (serve settings, study TOML): the same check, as pydantic sees it.
PromptFormat = Annotated[str, AfterValidator(_valid_format)]


def render_record(tokenizer: Any, record: dict, prompt_format: str) -> str:
    """A prompt record (or a generic `text` record) as model input text in `prompt_format`."""
    check_prompt_format(prompt_format)
    if prompt_format == "toolrl" and "messages" in record:
        return render_toolrl(tokenizer, record["messages"], record.get("tools") or None)
    from tooldiff.hf import render_prompt

    return render_prompt(tokenizer, record)


def toolrl_tool_list(tools: Optional[list[dict]]) -> str:
    """`N. Name: ... / Description: ... / Parameters: {properties}`, one block per tool."""
    if not tools:
        return "(no tools are available in this turn)"
    lines = []
    for i, tool in enumerate(tools, 1):
        f = tool.get("function", tool)
        params = (f.get("parameters") or {}).get("properties", {})
        lines.append(f"{i}. Name: {f['name']}\nDescription: {f.get('description') or ''}\n"
                     f"Parameters: {json.dumps(params)}")
    return "\n".join(lines)


def _text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, list):  # OpenAI content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return (content or "").strip()


def _toolrl_call_line(call: dict) -> str:
    fn = call.get("function", call)
    args = fn.get("arguments", {})
    if isinstance(args, str):
        try:
            parsed = json.loads(args)
        except json.JSONDecodeError:
            parsed = None
        args = parsed if isinstance(parsed, dict) else args
    return json.dumps({"name": fn["name"], "parameters": args})


def _toolrl_turn(message: dict) -> str:
    role = message.get("role")
    if role == "user":
        return f"<user> {_text(message)}\n{TOOLRL_USER_SUFFIX} </user>"
    if role == "tool":
        return f"<obs> You have made the tool call {message.get('name') or ''}. Execution returns: {_text(message)} </obs>"
    text = _text(message)
    if message.get("tool_calls"):
        block = f"{CALL_OPEN}\n" + "\n".join(_toolrl_call_line(c) for c in message["tool_calls"]) + f"\n{CALL_CLOSE}"
        text = (text + "\n" if text else "") + block
    return text


def render_toolrl(tokenizer: Any, messages: list[dict], tools: Optional[list[dict]]) -> str:
    """ToolRL's prompt: tools + instructions as the system turn, the dialogue as one user turn."""
    system_roles = ("system", "developer")
    extra_system = [_text(m) for m in messages if m.get("role") in system_roles and _text(m)]
    system = TOOLRL_SYSTEM.format(tools=toolrl_tool_list(tools))
    if extra_system:
        system = "\n\n".join(extra_system) + "\n\n" + system
    turns = [_toolrl_turn(m) for m in messages if m.get("role") not in system_roles]
    user = "**Dialogue Records History**\n" + "\n".join(t for t in turns if t)
    from tooldiff.hf import render_prompt

    return render_prompt(tokenizer, {"messages": [{"role": "system", "content": system},
                                                  {"role": "user", "content": user}]})
