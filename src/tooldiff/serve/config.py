"""Server settings: what to serve, where to listen, and the safety caps.

Every cap is a plain number here so that tests can shrink it (a queue of 1, a body of 2 kB)
and the CLI can expose it. `check()` rejects nonsense as a `UserError` before anything loads.
"""

from __future__ import annotations

import math
from typing import Optional

from pydantic import BaseModel, ConfigDict

from tooldiff.errors import UserError
from tooldiff.interventions.policy import DIAL, SteeringPolicy
from tooldiff.prompts import PromptFormat

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class ServerSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # What to serve.
    model: str
    crosscoder: Optional[str] = None
    features: Optional[str] = None  # the crosscoder's feature ranking, or the experiment dir holding it
    layer: Optional[int] = None  # default layer of steering items that name none
    profile: Optional[str] = None  # JSON file: the default steering of every request
    prompt_format: PromptFormat = "chat-template"
    model_name: Optional[str] = None  # the id clients send as `model`; default: the directory name
    model_index: Optional[int] = None  # crosscoder side of the served model (0 = A/RL, 1 = B/base)
    device: str = "cpu"
    dtype: str = "float32"
    threads: Optional[int] = None  # torch CPU threads of the engine; None: torch's default

    # Where to listen. Loopback unless told otherwise; the key is optional.
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: Optional[str] = None

    # Batching and queueing.
    max_batch_size: int = 8
    batch_wait_ms: float = 5.0  # how long the first request of a batch waits for company
    max_queue: int = 64  # waiting requests beyond this are refused with 503

    # Caps on every request.
    max_prompt_tokens: int = 2048
    max_tokens_cap: int = 512
    default_max_tokens: int = 128
    max_body_bytes: int = 1_000_000
    request_timeout_s: float = 120.0
    max_steering_items: int = DIAL.max_items
    max_abs_alpha: float = DIAL.max_abs_alpha
    max_abs_dose: float = DIAL.max_abs_dose

    def check(self) -> "ServerSettings":
        if not 0 <= self.port <= 65535:
            raise UserError(f"port {self.port} is out of range 0..65535")
        positive = {
            "max_batch_size": self.max_batch_size, "max_queue": self.max_queue,
            "max_prompt_tokens": self.max_prompt_tokens, "max_tokens_cap": self.max_tokens_cap,
            "default_max_tokens": self.default_max_tokens, "max_body_bytes": self.max_body_bytes,
            "max_steering_items": self.max_steering_items,
        }
        for name, value in positive.items():
            if value < 1:
                raise UserError(f"{name} must be >= 1, got {value}")
        for name in ("request_timeout_s", "max_abs_alpha", "max_abs_dose"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise UserError(f"{name} must be a finite number > 0, got {value}")
        if not (math.isfinite(self.batch_wait_ms) and self.batch_wait_ms >= 0):
            raise UserError(f"batch_wait_ms must be a finite number >= 0, got {self.batch_wait_ms}")
        if self.default_max_tokens > self.max_tokens_cap:
            raise UserError(f"default_max_tokens {self.default_max_tokens} exceeds max_tokens_cap {self.max_tokens_cap}")
        if self.features is not None and self.crosscoder is None:
            raise UserError("--features needs --crosscoder: a ranking lists the latents of one crosscoder")
        if self.layer is not None and self.layer < 0:
            raise UserError(f"layer must be >= 0, got {self.layer}")
        if self.threads is not None and self.threads < 1:
            raise UserError(f"threads must be >= 1, got {self.threads}")
        if self.model_index not in (None, 0, 1):
            raise UserError(f"model_index must be 0 (A, RL) or 1 (B, base), got {self.model_index}")
        if self.api_key is not None and not self.api_key.strip():
            raise UserError("api_key is empty; leave it out to serve without a key")
        return self

    @property
    def steering_policy(self) -> SteeringPolicy:
        """The dial's policy (interventions.policy.DIAL) with this server's caps."""
        return DIAL.model_copy(update={"max_abs_alpha": self.max_abs_alpha, "max_abs_dose": self.max_abs_dose,
                                       "max_items": self.max_steering_items})

    @property
    def is_loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS
