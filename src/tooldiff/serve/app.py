"""The FastAPI app: `/health`, `/v1/models`, `/v1/steering/features`, `/v1/steering/activations`,
`/v1/chat/completions`, and with `--dashboard DIR` the dashboard's pages under `/dashboard/`.

Each request is checked completely before it is queued (body size, JSON, types, model name,
steering, prompt and output token caps), so malformed input costs a 4xx and nothing else.
Errors use OpenAI's shape `{"error": {"message", "type", "param", "code"}}`. `/health`
needs no key (liveness probes), nor do the dashboard's static pages (a browser cannot send the
key when it opens a page; the live panel sends it with each of its `/v1` calls); every `/v1`
route does when the server has one. `/v1/steering/activations` reads, it never steers: the
latents at every token of the prompt a chat request renders to, under the same body, token and
key checks as a completion.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from contextlib import asynccontextmanager
from typing import Optional

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from jinja2 import TemplateError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tooldiff.errors import UserError
from tooldiff.interventions.tokens import read_prompt
from tooldiff.serve.config import ServerSettings
from tooldiff.serve.engine import Engine, Job, JobResult, Probe, QueueFull
from tooldiff.serve.features import by_decoder_norms, list_features
from tooldiff.serve.output import assemble, OutputAssembler
from tooldiff.serve.prompting import RenderedPrompt, render_request
from tooldiff.serve.responses import completion_body, completion_id, error_body
from tooldiff.serve.schemas import ChatRequest, parse_activations_request, parse_chat_request
from tooldiff.serve.steering import Steering, SteeringBinder
from tooldiff.serve.streaming import failure_message, stream_job

log = logging.getLogger("tooldiff.serve")
MAX_FEATURES_LISTED = 10_000


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error",
                 code: Optional[str] = None, param: Optional[str] = None, headers: Optional[dict] = None):
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind
        self.code, self.param, self.headers = code, param, headers


def create_app(settings: ServerSettings, engine: Engine) -> FastAPI:
    """The app around a (not yet started) engine; the app's lifespan starts and stops it."""
    served = engine.served
    default_layer = settings.layer if settings.layer is not None else (
        served.crosscoder.info.layer if served.crosscoder is not None else None)
    steering_binder = SteeringBinder(served.model, served.crosscoder, served.model_index, settings.steering_policy,
                                     default_layer, settings.profile)
    banned = served.call_open_token_ids()
    started = int(time.time())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine.start()
        try:
            yield
        finally:
            engine.stop()

    app = FastAPI(title="tooldiff", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine = engine
    _install_error_handlers(app)

    def require_key(request: Request) -> None:
        if settings.api_key is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), settings.api_key.encode()):
            raise ApiError(401, "missing or wrong API key (send 'Authorization: Bearer KEY')", code="invalid_api_key")

    @app.get("/health")
    async def health() -> JSONResponse:
        body = {"status": "ok" if engine.alive else "down", "model": served.name, "queued": engine.queued,
                "running": engine.running_rows, **engine.stats}
        return JSONResponse(body, status_code=200 if engine.alive else 503)

    @app.get("/v1/models")
    async def models(request: Request) -> dict:
        require_key(request)
        return {"object": "list", "data": [{"id": served.name, "object": "model", "created": started, "owned_by": "tooldiff"}]}

    @app.get("/v1/steering/features")
    async def features(request: Request) -> dict:
        require_key(request)
        if served.crosscoder is None:
            raise ApiError(404, "no crosscoder is loaded: start the server with --crosscoder to steer by feature id")
        limit = _int_param(request, "limit", default=100, low=1, high=MAX_FEATURES_LISTED)
        features = served.features or by_decoder_norms(served.crosscoder, "no ranking was loaded with the model")
        name = served.crosscoder_dir.name if served.crosscoder_dir is not None else None
        return list_features(served.crosscoder, name, features, served.model_index, limit)

    @app.post("/v1/steering/activations")
    async def activations(request: Request) -> dict:
        require_key(request)
        if served.crosscoder is None:
            raise ApiError(404, "no crosscoder is loaded: start the server with --crosscoder to read features")
        req = parse_activations_request(await _read_body(request, settings.max_body_bytes))
        if req.model != served.name:
            raise ApiError(404, f"model {req.model!r} does not exist; this server serves {served.name!r}", code="model_not_found")
        if len(req.features) > settings.max_steering_items:
            raise ApiError(400, f"features: at most {settings.max_steering_items} latents, got {len(req.features)}", param="features")
        bad = [i for i in req.features if not 0 <= i < served.crosscoder.dict_size]
        if bad:
            raise ApiError(400, f"features: latent {bad[0]} out of range 0..{served.crosscoder.dict_size - 1}", param="features")
        token_ids = served.tokenizer(_render(served.tokenizer, req, settings.prompt_format).text,
                                     add_special_tokens=False)["input_ids"]
        if len(token_ids) > settings.max_prompt_tokens:
            raise ApiError(400, f"the prompt has {len(token_ids)} tokens; this server's cap is {settings.max_prompt_tokens}",
                           code="context_length_exceeded")
        f_TS = await _probe(lambda: read_prompt(served.model, served.crosscoder, served.model_index,
                                                served.crosscoder.info.layer, token_ids, list(req.features)))
        return {"object": "steering.activations", "model": served.name, "layer": served.crosscoder.info.layer,
                "model_index": served.model_index, "tokens": [served.tokenizer.decode([t]) for t in token_ids],
                "features": [{"feature": i, "activations": f_TS[:, s].tolist()} for s, i in enumerate(req.features)]}

    async def _probe(fn):
        probe = Probe(fn, time.monotonic() + settings.request_timeout_s, asyncio.get_running_loop())
        try:
            engine.submit(probe)
        except QueueFull as e:
            raise ApiError(503, str(e), kind="server_busy", headers={"Retry-After": "1"}) from None
        try:
            kind, payload = await asyncio.wait_for(probe.events.get(), timeout=settings.request_timeout_s)
        except asyncio.TimeoutError:
            probe.cancel()
            raise ApiError(504, f"the request timed out after {settings.request_timeout_s:g}s", kind="timeout") from None
        if kind == "error":
            raise payload
        if isinstance(payload, JobResult):  # dropped before it ran
            raise ApiError(504 if payload.finish_reason == "timeout" else 500, failure_message(payload, settings.request_timeout_s),
                           kind="timeout" if payload.finish_reason == "timeout" else "server_error")
        return payload

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        require_key(request)
        req = parse_chat_request(await _read_body(request, settings.max_body_bytes), default_layer)
        if req.model != served.name:
            raise ApiError(404, f"model {req.model!r} does not exist; this server serves {served.name!r}", code="model_not_found")
        steering = steering_binder.for_request(req.steering)
        rendered = _render(served.tokenizer, req, settings.prompt_format)
        job = _job(req, rendered, steering)
        try:
            engine.submit(job)
        except QueueFull as e:
            raise ApiError(503, str(e), kind="server_busy", headers={"Retry-After": "1"}) from None
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            events = stream_job(job, OutputAssembler(rendered.parse_format, rendered.calls_allowed), rendered.forced,
                                completion_id(), served.name, include_usage, settings.request_timeout_s)
            return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        result = await _wait(job, settings.request_timeout_s)
        assembler = assemble(rendered.forced + result.text, rendered.parse_format, rendered.calls_allowed)
        return completion_body(completion_id(), served.name, assembler, result.finish_reason, job.prompt_tokens,
                               result.completion_tokens, steering)

    def _job(req: ChatRequest, rendered: RenderedPrompt, steering: Steering) -> Job:
        prompt_tokens = served.count_tokens(rendered.text)
        if prompt_tokens > settings.max_prompt_tokens:
            raise ApiError(400, f"the prompt has {prompt_tokens} tokens; this server's cap is {settings.max_prompt_tokens}",
                           code="context_length_exceeded")
        room = served.context_length - prompt_tokens
        max_tokens = req.requested_max_tokens
        if max_tokens is not None and max_tokens > settings.max_tokens_cap:
            raise ApiError(400, f"max_tokens {max_tokens} exceeds this server's cap of {settings.max_tokens_cap}", param="max_tokens")
        if max_tokens is None:
            max_tokens = min(settings.default_max_tokens, room)
        if max_tokens < 1 or max_tokens > room:
            raise ApiError(400, f"the prompt ({prompt_tokens} tokens) plus max_tokens ({max_tokens}) exceeds the "
                                f"model's context of {served.context_length} tokens", code="context_length_exceeded")
        return Job(
            prompt=rendered.text, prompt_tokens=prompt_tokens, steering=steering, max_tokens=max_tokens,
            temperature=1.0 if req.temperature is None else req.temperature,
            top_p=1.0 if req.top_p is None else req.top_p, seed=req.seed,
            stop=tuple(s for s in req.stop_strings if s),
            banned_token_ids=() if rendered.calls_allowed else banned,
            deadline=time.monotonic() + settings.request_timeout_s, stream=req.stream,
            loop=asyncio.get_running_loop(),
        )

    if settings.dashboard is not None:
        mount_dashboard(app, settings.dashboard)
    return app


def mount_dashboard(app: FastAPI, directory: str) -> None:
    """The pages `tooldiff dashboard` wrote, read-only, under /dashboard/ (a wrong directory stops
    the server before it binds)."""
    from pathlib import Path

    from fastapi.staticfiles import StaticFiles

    from tooldiff.report.dashboard.site import INDEX, LIVE

    root = Path(directory)
    if not (root / INDEX).is_file() or not (root / LIVE).is_file():
        raise UserError(f"--dashboard {root} is not a dashboard directory (no {INDEX} and {LIVE}); "
                        "write one with `tooldiff dashboard EXPERIMENT_DIR --out DIR`")
    app.mount("/dashboard", StaticFiles(directory=root, html=True), name="dashboard")


def _render(tokenizer, req: ChatRequest, prompt_format: str) -> RenderedPrompt:
    try:
        return render_request(tokenizer, req, prompt_format)
    except (TemplateError, ValueError, TypeError, KeyError) as e:
        raise ApiError(400, f"cannot render the conversation with the {prompt_format} prompt format: {e}") from None


async def _wait(job: Job, timeout_s: float) -> JobResult:
    while True:
        remaining = job.deadline - time.monotonic()
        try:
            kind, payload = await asyncio.wait_for(job.events.get(), timeout=max(remaining, 0.0))
        except asyncio.TimeoutError:
            job.cancel()
            raise ApiError(504, f"the request timed out after {timeout_s:g}s", kind="timeout") from None
        if kind != "done":
            continue
        if payload.finish_reason == "timeout":
            raise ApiError(504, failure_message(payload, timeout_s), kind="timeout")
        if payload.finish_reason in ("error", "cancelled"):
            raise ApiError(500, failure_message(payload, timeout_s), kind="server_error")
        return payload


async def _read_body(request: Request, cap: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, f"bad Content-Length header {declared!r}")
        if int(declared) > cap:
            raise ApiError(413, f"the request body has {declared} bytes; this server's cap is {cap}", code="body_too_large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            raise ApiError(413, f"the request body exceeds this server's cap of {cap} bytes", code="body_too_large")
    return bytes(body)


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ApiError(400, f"query parameter {name} must be an integer in {low}..{high}, got {raw!r}", param=name)
    return int(raw)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError) -> JSONResponse:
        return JSONResponse(error_body(e.message, e.kind, e.code, e.param), status_code=e.status, headers=e.headers)

    @app.exception_handler(UserError)
    async def user_error(request: Request, e: UserError) -> JSONResponse:
        return JSONResponse(error_body(str(e)), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(error_body(str(e.detail), "invalid_request_error"), status_code=e.status_code)

    @app.exception_handler(Exception)
    async def bug(request: Request, e: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return JSONResponse(error_body(f"internal server error ({type(e).__name__})", "server_error"), status_code=500)
