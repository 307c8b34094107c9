"""The server as a client sees it: the real `openai` client against `tooldiff serve` running in
a subprocess on a free loopback port, serving the organism's RL model (tiny preset).

One server for the whole module. Covers: parsed tool calls, a steering dial that moves the
tool-call rate in the asked direction, streaming, tool_choice "none" and a named function,
the feature listing, and malformed requests (4xx with a message, the server healthy after).
"""

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
import torch

from tooldiff.crosscoder import CheckpointInfo, Crosscoder, CrosscoderConfig
from tooldiff.evaluation import parse_calls
from tooldiff.features import diff_of_means
from tooldiff.hf import decoder_layers, layer_hidden, render_prompt
from tooldiff.organism import load_organism
from tooldiff.organism.generate import generate_for_records

pytestmark = pytest.mark.slow
torch.set_num_threads(1)
NAME = "rl"
MAX_TOKENS_CAP = 48
MAX_BODY = 60_000
N_PROMPTS = 16


@pytest.fixture(scope="module")
def organism(tiny_organism):
    return load_organism(tiny_organism)


def random_crosscoder(directory: Path, d_model: int, layer: int, models: list[str]) -> Path:
    cfg = CrosscoderConfig(d_model=d_model, dict_size=64, excl_a=0.1, excl_b=0.1, k=4, seed=0)
    Crosscoder.initialized(cfg, CheckpointInfo(layer=layer, models=models)).save(directory)
    return directory


@pytest.fixture(scope="module")
def server(organism, serve_cli, tmp_path_factory):
    """`tooldiff serve` in a subprocess; yields its base URL; stopped (SIGINT) at the end."""
    tmp = tmp_path_factory.mktemp("serve")
    width = organism.rl.config.hidden_size
    cc = random_crosscoder(tmp / "cc", width, organism.layer, [str(organism.rl_path), str(organism.base_path)])
    args = ["--model", organism.rl_path, "--model-name", NAME, "--prompt-format", "organism", "--crosscoder", cc,
            "--threads", "1", "--max-tokens-cap", MAX_TOKENS_CAP, "--default-max-tokens", "40", "--max-body-bytes",
            MAX_BODY, "--batch-wait-ms", "20"]
    with serve_cli(args, tmp / "server.log") as base:
        yield base


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def call_prompts(organism):
    """The fixed prompt set: should-call requests of the TEST split."""
    return [r for r in organism.records("test") if r["kind"] == "call"][:N_PROMPTS]


def ask(client, record, **kwargs):
    return client.chat.completions.create(model=NAME, messages=record["messages"], tools=record["tools"],
                                          temperature=0, max_tokens=40, **kwargs)


def ask_all(client, records, **kwargs):
    """Concurrently, so the server batches them."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda r: ask(client, r, **kwargs), records))


def call_rate(responses) -> float:
    return sum(bool(r.choices[0].message.tool_calls) for r in responses) / len(responses)


def in_process_calls(organism, records) -> list[list[tuple[str, dict]]]:
    """What the RL model writes for each record, greedy and in this process, parsed by the
    foundation parser: the server must hand back exactly these calls."""
    texts = generate_for_records(organism.rl, organism.tokenizer, records, max_new_tokens=40)
    return [[(c["name"], c["arguments"]) for c in parse_calls(t).calls] for t in texts]


def test_a_tool_needed_request_comes_back_as_parsed_tool_calls(client, call_prompts, server, organism):
    """The server reports the model's calls, parsed, exactly as the model wrote them. Whether the
    calls are *right* is the organism's business (issue 3: the tiny RL twin calls get_weather on
    almost every prompt); the server neither fixes nor runs them."""
    expected = in_process_calls(organism, call_prompts)
    assert sum(map(bool, expected)) >= len(expected) // 4, "the organism's RL model must call for this test"
    responses = ask_all(client, call_prompts)
    for want, r in zip(expected, responses):
        choice = r.choices[0]
        got = [(c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls or []]
        assert got == want
        assert choice.finish_reason == ("tool_calls" if want else "stop") or (not want and choice.finish_reason == "length")
        for call in choice.message.tool_calls or []:
            assert call.id.startswith("call_") and call.type == "function"
        assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    assert httpx.get(f"{server}/health").json()["largest_batch"] > 1  # the concurrent requests were batched


def decision_activations(organism, records) -> torch.Tensor:
    """Layer-L output at the last prompt token of each record, from the RL model."""
    captured = []
    hook = decoder_layers(organism.rl)[organism.layer].register_forward_hook(
        lambda module, args, out: captured.append(layer_hidden(out)[0, -1].detach().clone()))
    try:
        with torch.no_grad():
            for record in records:
                ids = organism.tokenizer(render_prompt(organism.tokenizer, record), return_tensors="pt",
                                         add_special_tokens=False)["input_ids"]
                organism.rl(input_ids=ids)
    finally:
        hook.remove()
    return torch.stack(captured)


def test_steering_in_extra_body_lowers_the_call_rate(client, organism, call_prompts):
    """A negative dose along the should-call minus no-call direction (difference of means on the
    CALIBRATION split, the ASA/CAA vector) must lower the tool-call rate on the TEST prompts."""
    calibration = organism.records("calibration")
    x_ND = decision_activations(organism, calibration)
    should_call_N = torch.tensor([r["kind"] == "call" for r in calibration])
    direction = diff_of_means(x_ND, should_call_N).tolist()
    steer = [{"op": "add", "vector": direction, "layer": organism.layer, "dose": -2.0, "positions": "all"}]
    plain = ask_all(client, call_prompts)
    steered = ask_all(client, call_prompts, extra_body={"steering": steer})
    assert steered[0].model_extra["steering"][0]["dose"] == -2.0  # the server says what it applied
    assert call_rate(plain) >= 0.25, "the RL model must call on its own for the dial to turn it down"
    assert call_rate(steered) <= call_rate(plain) - 0.25, (call_rate(plain), call_rate(steered))


def test_streaming_matches_the_whole_response(client, call_prompts):
    record = call_prompts[0]
    whole = ask(client, record)
    chunks = list(ask(client, record, stream=True, stream_options={"include_usage": True}))
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert content == (whole.choices[0].message.content or "")
    assert [(c.function.name, c.function.arguments) for c in calls] == [
        (c.function.name, c.function.arguments) for c in whole.choices[0].message.tool_calls or []]
    assert reasons == [whole.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_tool_choice_none_is_honoured(client, call_prompts):
    responses = ask_all(client, call_prompts, tool_choice="none")
    for r in responses:
        assert not r.choices[0].message.tool_calls and r.choices[0].finish_reason in ("stop", "length")
        assert "<tool_call>" not in (r.choices[0].message.content or "")


def test_a_named_function_is_called(client, call_prompts, organism):
    """The server starts the call to the named function; whether the tiny twin then writes valid
    arguments is the model's doing. So each answer is that call, or (arguments that do not parse)
    text that opens with the forced start of that call, never a call to another function."""
    for record in call_prompts[:4]:
        name = record["tools"][-1]["function"]["name"]
        r = ask(client, record, tool_choice={"type": "function", "function": {"name": name}})
        choice = r.choices[0]
        if choice.finish_reason == "tool_calls":
            assert [c.function.name for c in choice.message.tool_calls] == [name]
        else:
            assert choice.message.content.startswith(f'<tool_call>\n{{"name":"{name}"'), choice.message.content


def test_models_and_features_are_listed(client, server):
    assert [m.id for m in client.models.list().data] == [NAME]
    listing = httpx.get(f"{server}/v1/steering/features", params={"limit": 5}).json()
    assert listing["source"] == "decoder_norms" and len(listing["data"]) == 5 and listing["model_index"] == 0
    assert {row["group"] for row in listing["data"]} == {"a_excl"} and all(row["steerable"] for row in listing["data"])


def _body(**overrides) -> bytes:
    body = {"model": NAME, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, **overrides}
    return json.dumps(body).encode()


def _steer(**item) -> bytes:
    return _body(steering=[{"op": "steer", "feature": 1, "alpha": 4.0, **item}])


MALFORMED = {
    "bad JSON": (b'{"model": "rl", "messages": [{"role": "user", "content": "hi"}', 400, "not valid JSON"),
    "not an object": (b'[1, 2, 3]', 400, "must be a JSON object"),
    "wrong types": (_body(temperature="hot"), 400, "temperature: Input should be a valid number"),
    "wrong message type": (_body(messages="hi"), 400, "messages"),
    "unknown feature id": (_steer(feature=10 ** 6), 400, "latent 1000000 out of range"),
    "layer out of range": (_steer(layer=99), 400, "layer 99 is out of range"),
    "NaN alpha": (_steer().replace(b'"alpha": 4.0', b'"alpha": NaN'), 400, "alpha must be finite"),
    "huge alpha": (_steer(alpha=1e12), 400, "alpha"),
    "vector of the wrong width": (_body(steering=[{"op": "add", "vector": [1.0, 2.0], "dose": 1.0}]), 400, "vector has 2 entries"),
    "oversize body": (_body(messages=[{"role": "user", "content": "x" * MAX_BODY}]), 413, "cap"),
    "max_tokens over the cap": (_body(max_tokens=MAX_TOKENS_CAP + 1), 400, f"exceeds this server's cap of {MAX_TOKENS_CAP}"),
    "empty messages": (_body(messages=[]), 400, "messages: List should have at least 1 item"),
    "unknown model": (_body(model="gpt-4"), 404, "does not exist"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_requests_get_a_4xx_with_a_message_and_the_server_stays_healthy(server, case):
    raw, status, message = MALFORMED[case]
    r = httpx.post(f"{server}/v1/chat/completions", content=raw, headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]["message"]
    assert httpx.get(f"{server}/health", timeout=5).json()["status"] == "ok"
    ok = httpx.post(f"{server}/v1/chat/completions", content=_body(), headers={"Content-Type": "application/json"}, timeout=60)
    assert ok.status_code == 200 and ok.json()["choices"][0]["finish_reason"] in ("stop", "length", "tool_calls")


def test_the_openai_client_raises_a_readable_error(client):
    with pytest.raises(openai.BadRequestError, match="latent 1000000 out of range"):
        client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "hi"}],
                                       extra_body={"steering": [{"op": "steer", "feature": 10 ** 6, "alpha": 2.0}]})
