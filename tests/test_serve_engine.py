"""The server in-process (tiny random Qwen2): dynamic batching with per-row steering, per-row
caps and stops, the queue cap, timeouts, the API key and tool_choice "none"."""

import asyncio
import json

import httpx
import pytest
import torch

from tooldiff.serve import Engine, ServedModel, ServerSettings, create_app

torch.set_num_threads(1)
NAME = "tiny"
PROMPTS = ["the weather in paris is", "call the calculator", "tools: get_weather", "a quick brown fox", "12 and 30"]


@pytest.fixture(scope="module")
def served(tiny):
    tok = tiny.tokenizer()
    cc = tiny.crosscoder()
    with torch.no_grad():
        cc.b_enc_L[[3, 5]] = 50.0  # latents that always fire, so steering them acts
    return ServedModel(tiny.model("qwen2", len(tok)), tok, NAME, cc, None, 0)


def make_app(tiny, served, **caps):
    settings = ServerSettings(model="unused", layer=tiny.LAYER, **caps)
    engine = Engine(served, settings.max_batch_size, settings.batch_wait_ms, settings.max_queue)
    return create_app(settings, engine), engine


def body(prompt: str, **fields) -> dict:
    return {"model": NAME, "messages": [{"role": "user", "content": prompt}], "temperature": 0, "max_tokens": 8, **fields}


async def post_all(app, bodies, headers=None, start=True):
    """Send every body at once (so the engine can batch them); returns the responses in order."""
    engine = app.state.engine
    if start:
        engine.start()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as client:
            return await asyncio.gather(*[client.post("/v1/chat/completions", json=b) for b in bodies])
    finally:
        if start:
            engine.stop()


def run(app, bodies, **kwargs):
    return asyncio.run(post_all(app, bodies, **kwargs))


def content(response) -> str:
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"] or ""


STEERS = [
    [],
    [{"op": "steer", "feature": [3, 5], "alpha": 8.0}],
    [{"op": "add", "vector": [1.0] * 32, "dose": -2.0, "positions": "all"}],
    [{"op": "ablate", "feature": 3, "positions": "prompt"}, {"op": "add", "vector": [0.5, -1.0] * 16, "dose": 1.5}],
    [],
]


def test_concurrent_requests_share_a_batch_and_each_keeps_its_own_steering(tiny, served):
    app, engine = make_app(tiny, served, max_batch_size=len(PROMPTS), batch_wait_ms=2000)  # full at 5: no wait
    bodies = [body(p, steering=s) for p, s in zip(PROMPTS, STEERS)]
    together = run(app, bodies)
    assert engine.stats["largest_batch"] == len(PROMPTS)  # one forward pass carried all five
    alone = []
    for b in bodies:
        solo_app, solo_engine = make_app(tiny, served, max_batch_size=1)
        alone += run(solo_app, [b])
        assert solo_engine.stats["largest_batch"] == 1
    assert [content(r) for r in together] == [content(r) for r in alone]
    plain = run(make_app(tiny, served)[0], [body(p) for p in PROMPTS])
    changed = [content(a) != content(b) for a, b in zip(together, plain)]
    assert changed == [False, True, True, True, False]  # steering acted on exactly its own rows
    echoed = [r.json()["steering"] for r in together]
    assert echoed[1] == [{"op": "steer", "layer": tiny.LAYER, "feature": [3, 5], "alpha": 8.0}] and echoed[0] == []


def test_max_tokens_and_stop_are_per_row_inside_one_batch(tiny, served):
    reference = content(run(make_app(tiny, served)[0], [body(PROMPTS[0], max_tokens=12)])[0])
    stop = reference[3:6]
    app, engine = make_app(tiny, served, max_batch_size=3, batch_wait_ms=2000)
    caps = run(app, [body(PROMPTS[0], max_tokens=12), body(PROMPTS[1], max_tokens=3), body(PROMPTS[0], max_tokens=12, stop=[stop])])
    assert engine.stats["largest_batch"] == 3
    usage = [r.json()["usage"]["completion_tokens"] for r in caps]
    assert usage[1] <= 3 and usage[0] > 3
    assert content(caps[2]) == reference[: reference.find(stop)]
    assert caps[2].json()["choices"][0]["finish_reason"] == "stop"
    assert content(caps[0]) == reference


def test_full_queue_is_refused_and_a_stuck_request_times_out(tiny, served):
    app, engine = make_app(tiny, served, max_queue=1, request_timeout_s=1.5)

    async def scenario():
        # The engine is not running yet: the first request waits in the queue, the second
        # finds the queue full; then the first times out.
        first = asyncio.ensure_future(post_all(app, [body("a")], start=False))
        await asyncio.sleep(0.3)
        second = await post_all(app, [body("b")], start=False)
        return (await first)[0], second[0]

    stuck, refused = asyncio.run(scenario())
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "busy" in refused.json()["error"]["message"]
    assert stuck.status_code == 504 and "timed out" in stuck.json()["error"]["message"]
    assert engine.stats["rejected"] == 1
    assert content(run(app, [body("c")])[0]) is not None  # and it serves again once running


def test_api_key_is_required_on_v1_but_not_on_health(tiny, served):
    app, _ = make_app(tiny, served, api_key="s3cret")

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return [await client.get("/health"), await client.get("/v1/models"),
                    await client.get("/v1/models", headers={"Authorization": "Bearer wrong"}),
                    await client.get("/v1/models", headers={"Authorization": "Bearer s3cret"})]

    app.state.engine.start()
    try:
        health, missing, wrong, good = asyncio.run(scenario())
    finally:
        app.state.engine.stop()
    assert health.status_code == 200 and missing.status_code == 401 and wrong.status_code == 401
    assert "API key" in missing.json()["error"]["message"]
    assert good.status_code == 200 and good.json()["data"][0]["id"] == NAME


def test_tool_choice_none_bans_the_call_token(tiny, served):
    """A model rigged to always open a call: it calls under "auto" and cannot under "none"."""
    call_id = served.tokenizer.convert_tokens_to_ids("<tool_call>")
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]

    def favour_call(module, args, logits):
        logits[..., call_id] += 1e4
        return logits

    handle = served.model.lm_head.register_forward_hook(favour_call)
    try:
        app, _ = make_app(tiny, served)
        auto, none = run(app, [body(PROMPTS[0], tools=tools), body(PROMPTS[0], tools=tools, tool_choice="none")])
    finally:
        handle.remove()
    assert auto.json()["choices"][0]["message"]["content"].startswith("<tool_call>")  # unparseable calls stay text
    assert "<tool_call>" not in content(none)
    assert none.json()["choices"][0]["message"].get("tool_calls") is None


def test_streamed_chunks_add_up_to_the_whole_answer(tiny, served):
    app, _ = make_app(tiny, served)
    whole, streamed = run(app, [body(PROMPTS[2], max_tokens=10), body(PROMPTS[2], max_tokens=10, stream=True,
                                                                     stream_options={"include_usage": True})])
    events = [line.removeprefix("data: ") for line in streamed.text.split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == content(whole)
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == whole.json()["choices"][0]["finish_reason"]
    assert chunks[-1]["usage"] == whole.json()["usage"]


# --- the openai client, in-process, on a model scripted to call a tool --------------------
SCRIPT = 'Sure.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}\n</tool_call>'
WEATHER = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}}}]


@pytest.fixture
def scripted(served, request):
    """The tiny model made to write a script (SCRIPT by default) then stop: its logits are
    overwritten step by step."""
    text = getattr(request, "param", SCRIPT)
    tok = served.tokenizer
    script = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert tok.decode(script, skip_special_tokens=True) == text
    step = {"n": 0}

    def restart_on_prefill(module, args, kwargs):
        if kwargs["input_ids"].shape[1] > 1:
            step["n"] = -1

    def force(module, args, logits):
        step["n"] += 1
        forced = torch.full_like(logits, -1e9)
        forced[..., script[min(step["n"], len(script) - 1)]] = 0.0
        return forced

    handles = [served.model.register_forward_pre_hook(restart_on_prefill, with_kwargs=True),
               served.model.lm_head.register_forward_hook(force)]
    yield served
    for handle in handles:
        handle.remove()


def with_openai(app, coroutine):
    import openai

    async def go():
        app.state.engine.start()
        try:
            http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t/v1")
            async with openai.AsyncOpenAI(base_url="http://t/v1", api_key="x", http_client=http, max_retries=0) as client:
                return await coroutine(client)
        finally:
            app.state.engine.stop()

    return asyncio.run(go())


def test_the_openai_client_reads_tool_calls_whole_and_streamed(tiny, scripted):
    app, _ = make_app(tiny, scripted)
    ask = dict(model=NAME, messages=[{"role": "user", "content": "weather?"}], tools=WEATHER, temperature=0, max_tokens=60)

    async def scenario(client):
        whole = await client.chat.completions.create(**ask)
        chunks = [c async for c in await client.chat.completions.create(**ask, stream=True)]
        async with client.beta.chat.completions.stream(**ask) as stream:
            final = await stream.get_final_completion()
        return whole, chunks, final

    whole, chunks, final = with_openai(app, scenario)
    choice = whole.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Sure."
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_") and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "days": 3}
    deltas = [c.choices[0].delta for c in chunks]
    assert "".join(d.content or "" for d in deltas) == "Sure."
    streamed_calls = [tc for d in deltas for tc in d.tool_calls or []]
    assert [(tc.index, tc.function.name, json.loads(tc.function.arguments)) for tc in streamed_calls] == [
        (0, "get_weather", {"city": "Paris", "days": 3})]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    (final_call,) = final.choices[0].message.tool_calls  # the client's own stream assembly agrees
    assert final_call.function.name == "get_weather" and json.loads(final_call.function.arguments)["days"] == 3


def test_tool_choice_none_on_a_model_that_always_calls(tiny, scripted):
    app, _ = make_app(tiny, scripted)
    base = dict(model=NAME, messages=[{"role": "user", "content": "weather?"}], tools=WEATHER, temperature=0, max_tokens=60)
    none = with_openai(app, lambda client: client.chat.completions.create(**base, tool_choice="none"))
    assert none.choices[0].message.tool_calls is None and none.choices[0].finish_reason in ("stop", "length")
    assert "<tool_call>" not in (none.choices[0].message.content or "")


@pytest.mark.parametrize("scripted", ['{"city": "Rome"}}\n</tool_call>'], indirect=True)
def test_a_named_function_opens_the_call_and_the_model_completes_it(tiny, scripted):
    app, _ = make_app(tiny, scripted)
    named = {"type": "function", "function": {"name": "get_weather"}}
    r = with_openai(app, lambda client: client.chat.completions.create(
        model=NAME, messages=[{"role": "user", "content": "weather?"}], tools=WEATHER, tool_choice=named,
        temperature=0, max_tokens=30))
    (call,) = r.choices[0].message.tool_calls
    assert r.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Rome"}
    assert r.usage.completion_tokens < 30  # the forced prefix is prompt, not output tokens


def test_a_request_is_validated_once_and_bound_once(tiny, served, monkeypatch):
    """The server binds a request's steering when it admits it; the engine runs it as bound."""
    from tooldiff.interventions import hooks
    from tooldiff.serve import steering

    bound = []
    real_bind = steering.bind
    monkeypatch.setattr(steering, "bind", lambda *a: bound.append(a[0]) or real_bind(*a))
    monkeypatch.setattr(hooks, "bind", lambda *a: pytest.fail("the engine bound a spec again"))
    monkeypatch.setattr(hooks, "parse_intervention", lambda *a: pytest.fail("the engine parsed a spec again"))
    app, _ = make_app(tiny, served)
    response = run(app, [body(PROMPTS[1], steering=STEERS[3])])[0]
    assert response.status_code == 200, response.text  # a failure in the worker would be a 500
    assert [spec.op for spec in bound] == ["ablate", "add"]


def test_activations_are_read_on_the_worker_thread_at_every_prompt_token(tiny, served, monkeypatch, tmp_path):
    """`POST /v1/steering/activations`: the latents at every token of the rendered prompt, as
    `encode_single` reads them, computed where the model lives (the engine's thread); checked
    like a completion request (range, model name), and no generation batch."""
    import threading

    import tooldiff.serve.app as app_module
    from tooldiff.errors import UserError
    from tooldiff.hf import render_prompt
    from tooldiff.interventions.tokens import layer_hiddens

    threads = []
    real = app_module.read_prompt
    monkeypatch.setattr(app_module, "read_prompt", lambda *a: threads.append(threading.current_thread().name) or real(*a))
    app, engine = make_app(tiny, served)

    async def scenario():
        engine.start()
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
                ok = await client.post("/v1/steering/activations", json=body(PROMPTS[0], features=[3, 7]))
                out_of_range = await client.post("/v1/steering/activations", json=body(PROMPTS[0], features=[80]))
                wrong_model = await client.post("/v1/steering/activations", json={**body(PROMPTS[0], features=[3]),
                                                                                   "model": "other"})
                return ok, out_of_range, wrong_model
        finally:
            engine.stop()

    ok, out_of_range, wrong_model = asyncio.run(scenario())
    assert ok.status_code == 200, ok.text
    data = ok.json()
    text = render_prompt(served.tokenizer, {"messages": [{"role": "user", "content": PROMPTS[0]}]})
    ids = served.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert data["tokens"] == [served.tokenizer.decode([t]) for t in ids]
    h_TD = layer_hiddens(served.model, tiny.LAYER, [ids], pad_id=0)[0]
    want_TS = served.crosscoder.encode_single(h_TD, 0)[:, [3, 7]]
    got_TS = torch.tensor([f["activations"] for f in data["features"]]).T
    torch.testing.assert_close(got_TS, want_TS, atol=1e-5, rtol=1e-5)
    assert (got_TS[:, 0] > 0).all()  # latent 3 always fires here (its bias): not a test that zeros pass
    assert threads == ["tooldiff-engine"] and engine.stats["batches"] == 0
    assert out_of_range.status_code == 400 and "latent 80 out of range" in out_of_range.json()["error"]["message"]
    assert wrong_model.status_code == 404
    with pytest.raises(UserError, match="not a dashboard directory"):
        make_app(tiny, served, dashboard=str(tmp_path))
