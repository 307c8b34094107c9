"""Server settings: what to serve, where to listen, and the safety caps.

One pydantic model is the whole contract: every field's type, default, bounds and help text
live here, and `tooldiff serve` builds its options from it (cli.py), so the command line cannot
drift from what the server accepts. Every cap is a plain number so that tests can shrink it (a
queue of 1, a body of 2 kB). Nonsense is refused when the settings are built, before anything
loads; `server_settings(**values)` turns that into one `UserError` line. The steering caps
here and `STEERING_OPS` are the dial's policy (`steering_policy`), read by the server and, as
the defaults of its options, by the command line. Nothing here loads torch: the command line
imports this module to build `tooldiff serve`.
"""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tooldiff.errors import validated
from tooldiff.prompts import PROMPT_FORMATS, PromptFormat

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
STEERING_OPS = ("steer", "add", "ablate", "clamp")  # the dial; reconstruct is a research tool


def _flag(name: str, **extra) -> dict:
    """A field whose command-line option is not `--field-name` (or that reads an environment variable)."""
    return {"flag": name, **extra}


class ServerSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # What to serve.
    model: str = Field(description="Model directory to serve (HF save_pretrained, safetensors).")
    crosscoder: Optional[str] = Field(None, description="Crosscoder checkpoint directory: steer by feature id.")
    features: Optional[str] = Field(None, description="The crosscoder's feature ranking, or the experiment directory "
                                                      "holding features/<name>.json (default: the run layout's).")
    layer: Optional[int] = Field(None, ge=0, description="Default layer of steering items that give none "
                                                         "(else the crosscoder's).")
    profile: Optional[str] = Field(None, description="Steering file (a JSON list of interventions) applied to "
                                                     "requests that send no steering.")
    prompt_format: PromptFormat = Field("chat-template", description=" | ".join(PROMPT_FORMATS) + ".")
    model_name: Optional[str] = Field(None, description="Model id clients send (default: the directory name).")
    model_index: Optional[int] = Field(None, ge=0, le=1, description="Crosscoder side of the model: 0 = A (RL), "
                                                                     "1 = B (base); default: inferred.")
    device: str = Field("cpu", description="cpu|cuda|cuda:N.")
    dtype: str = Field("float32", description="float32|bfloat16|float16.")
    threads: Optional[int] = Field(None, ge=1, description="Torch CPU threads for generation.")
    dashboard: Optional[str] = Field(None, description="A directory written by `tooldiff dashboard`: served at "
                                                       "/dashboard/, its live panel steering this server.")

    # Where to listen. Loopback unless told otherwise; the key is optional.
    host: str = Field("127.0.0.1", description="Interface to bind; loopback unless told otherwise.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port.")
    api_key: Optional[str] = Field(None, description="Require 'Authorization: Bearer KEY' on /v1.",
                                   json_schema_extra=_flag("--api-key", envvar="TOOLDIFF_API_KEY"))

    # Batching and queueing.
    max_batch_size: int = Field(8, ge=1, description="Requests per forward pass.")
    batch_wait_ms: float = Field(5.0, ge=0, allow_inf_nan=False,
                                 description="How long a batch waits for more requests to join.")
    max_queue: int = Field(64, ge=1, description="Waiting requests beyond this get 503.")

    # Caps on every request.
    max_prompt_tokens: int = Field(2048, ge=1, description="Cap on prompt tokens.")
    max_tokens_cap: int = Field(512, ge=1, description="Cap on max_tokens.")
    default_max_tokens: int = Field(128, ge=1, description="max_tokens when a request gives none.")
    max_body_bytes: int = Field(1_000_000, ge=1, description="Cap on the request body size.")
    request_timeout_s: float = Field(120.0, gt=0, allow_inf_nan=False, json_schema_extra=_flag("--timeout"),
                                     description="Seconds a request may take, queueing included.")
    max_steering_items: int = Field(16, ge=1, description="Cap on the steering items of a request.")
    # The paper's grid tops out at alpha = 64; relative doses above ~2 already break generation (SPEC 5).
    max_abs_alpha: float = Field(128.0, gt=0, allow_inf_nan=False, json_schema_extra=_flag("--max-alpha"),
                                 description="Cap on |alpha| of steer steering.")
    max_abs_dose: float = Field(8.0, gt=0, allow_inf_nan=False, json_schema_extra=_flag("--max-dose"),
                                description="Cap on |dose| of add steering.")

    @field_validator("api_key")
    @classmethod
    def _key_not_blank(cls, key: Optional[str]) -> Optional[str]:
        if key is not None and not key.strip():
            raise ValueError("the key is empty; leave it out to serve without a key")
        return key

    @model_validator(mode="after")
    def _consistent(self) -> "ServerSettings":
        if self.default_max_tokens > self.max_tokens_cap:
            raise ValueError(f"default_max_tokens {self.default_max_tokens} exceeds max_tokens_cap {self.max_tokens_cap}")
        if self.features is not None and self.crosscoder is None:
            raise ValueError("features needs a crosscoder: a ranking lists the latents of one crosscoder")
        return self

    @property
    def steering_policy(self):
        """The dial: what a request's steering may do on this server (an interventions.SteeringPolicy)."""
        from tooldiff.interventions.policy import SteeringPolicy

        return SteeringPolicy(ops=STEERING_OPS, max_abs_alpha=self.max_abs_alpha, max_abs_dose=self.max_abs_dose,
                              max_items=self.max_steering_items)

    @property
    def is_loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS


def server_settings(**values) -> ServerSettings:
    """Settings from keyword values (the command line's); nonsense is one UserError line."""
    return validated(ServerSettings, values, "server settings")
