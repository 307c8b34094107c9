"""A training step captured once as a CUDA graph, then replayed.

On a GPU a crosscoder step is a few hundred small kernels; launching them from Python takes
longer than the device needs to run them (docs/notes/2026-12-04-gpu-paper-scale.md). A CUDA
graph launches the whole step at once. The step qualifies because it never waits for the
device (stack.py, optim.py) and updates its state in place (weights, Adam moments and steps,
dead-latent counters), so replaying the recorded kernels is the same computation as running
them again. The batch goes into one static input tensor before each replay.

The first `warmup` calls run eagerly (on a side stream, as CUDA graph capture requires) and
are ordinary training steps; the next call is captured and replayed. If capture fails, the
step stays eager and `failure` says why: a slower step, never a wrong one.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch


class GraphedStep:
    def __init__(self, step: Callable[[torch.Tensor], Any], reset: Callable[[], None], warmup: int = 3):
        """`reset` undoes what a failed capture left behind (gradients bound to unrun kernels)."""
        self.step, self.reset, self.warmup = step, reset, warmup
        self.calls = 0
        self.graph: Optional[torch.cuda.CUDAGraph] = None
        self.failure: Optional[str] = None
        self._x: Optional[torch.Tensor] = None
        self._out: Any = None
        self._side: Optional[torch.cuda.Stream] = None

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def __call__(self, x: torch.Tensor) -> Any:
        self.calls += 1
        if self.graph is not None:
            self._x.copy_(x)  # type: ignore[union-attr]
            self.graph.replay()
            return self._out
        if self.failure is not None or self.calls <= self.warmup:
            return self._eager(x)
        return self._capture(x)

    def _eager(self, x: torch.Tensor) -> Any:
        if self._side is None:
            self._side = torch.cuda.Stream(x.device)
        self._side.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(self._side):
            out = self.step(x)
        torch.cuda.current_stream(x.device).wait_stream(self._side)
        return out

    def _capture(self, x: torch.Tensor) -> Any:
        """Record one step (nothing runs while recording), then replay it for this batch."""
        self._x = x.clone()
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self._out = self.step(self._x)
        except RuntimeError as e:  # an op that cannot be captured: stay eager
            self.failure = str(e).splitlines()[0]
            self._x = self._out = None
            self.reset()
            torch.cuda.synchronize(x.device)
            return self._eager(x)
        self.graph = graph
        graph.replay()
        return self._out
