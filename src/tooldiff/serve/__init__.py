"""Runtime tool-use dial: an OpenAI-compatible chat server with per-request feature steering.

`serve(settings)` loads the model (and optional crosscoder and steering profile) and runs
uvicorn; `create_app(settings, engine)` builds the FastAPI app around an engine, for tests
and embedding. See docs/serving.md for the API, the steering spec and the safety caps.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tooldiff.serve.config import ServerSettings
    from tooldiff.serve.engine import Engine

# Loaded on first use, so that the command line can read ServerSettings without loading torch.
_HOME = {"create_app": "app", "ServerSettings": "config", "server_settings": "config", "Engine": "engine",
         "ServedModel": "model", "load_served": "model"}


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_HOME[name]}"), name)


def build_engine(settings: ServerSettings) -> Engine:
    """Load what `settings` names and wrap it in an (unstarted) engine."""
    from tooldiff.serve.engine import Engine
    from tooldiff.serve.model import load_served

    return Engine(load_served(settings), settings.max_batch_size, settings.batch_wait_ms, settings.max_queue)


def serve(settings: ServerSettings, announce=print) -> None:
    """Load, check, bind and serve until interrupted (Ctrl-C / SIGTERM)."""
    import torch
    import uvicorn

    from tooldiff.serve.app import create_app

    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    engine = build_engine(settings)
    app = create_app(settings, engine)  # validates the profile against the model before binding
    if not settings.is_loopback and settings.api_key is None:
        announce(f"warning: listening on {settings.host} without an API key; anyone who can reach it can use it")
    served = engine.served
    announce(f"serving {served.name!r} on http://{settings.host}:{settings.port}/v1 "
             f"(prompt format {settings.prompt_format}, crosscoder {settings.crosscoder or 'none'}, "
             f"model index {served.model_index}, api key {'on' if settings.api_key else 'off'})")
    if served.features is not None:
        announce(f"steering features: {served.features.source}" + (f" ({served.features.note})" if served.features.note else ""))
    if settings.dashboard is not None:
        announce(f"dashboard: http://{settings.host}:{settings.port}/dashboard/ "
                 f"(live panel: http://{settings.host}:{settings.port}/dashboard/live.html)")
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", timeout_graceful_shutdown=5)


__all__ = ["build_engine", "serve", *sorted(_HOME)]
