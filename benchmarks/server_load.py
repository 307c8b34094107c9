"""Load test: 32 concurrent clients x 10 requests each against `tooldiff serve` on loopback.

    python benchmarks/server_load.py [--model DIR --prompt-format F | --organism DIR]
        [--clients 32] [--requests 10] [--max-tokens 32] [--deadline 900]

Starts the server in a subprocess on a free 127.0.0.1 port, waits for /health, then runs the
clients concurrently (each sends its requests one after another; every other request carries a
steering vector, so batches mix steered and plain rows). Prints the error count, p50/p95
latency, completion tokens/s and the server's batching counters, stops the server and exits 1
if any request failed. Bounded: each request has a timeout, and the whole run a deadline.
Default model: the tiny organism's RL model, built into --organism if missing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def organism_model(directory: str) -> tuple[str, list[dict]]:
    from tooldiff.organism import build_organism, load_organism

    build_organism(directory, preset="tiny", seed=0)  # reuses a finished build
    org = load_organism(directory, models=False)
    return str(org.rl_path), org.records("test")


def start_server(model: str, prompt_format: str, port: int, threads: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tooldiff.cli", "serve", "--model", model, "--prompt-format", prompt_format,
           "--port", str(port), "--threads", str(threads), "--max-queue", "64", "--max-batch-size", "8",
           "--timeout", "120", "--model-name", "bench"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


async def wait_healthy(base: str, server: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"the server exited early:\n{server.stderr.read()}")
            try:
                if (await client.get(f"{base}/health", timeout=2)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
    raise RuntimeError(f"the server was not healthy after {timeout:g}s")


def request_body(record: dict, steer: bool, width: int, layer: int, max_tokens: int) -> dict:
    body = {"model": "bench", "messages": record["messages"], "temperature": 0, "max_tokens": max_tokens}
    if record.get("tools"):
        body["tools"] = record["tools"]
    if steer:
        vector = [((i * 7919) % 13 - 6) / 6.0 for i in range(width)]  # a fixed, non-trivial direction
        body["steering"] = [{"op": "add", "layer": layer, "vector": vector, "dose": -0.5}]
    return body


async def client_run(client: httpx.AsyncClient, base: str, bodies: list[dict], results: list) -> None:
    for body in bodies:
        start = time.perf_counter()
        try:
            r = await client.post(f"{base}/v1/chat/completions", json=body, timeout=180)
            ok = r.status_code == 200
            tokens = r.json()["usage"]["completion_tokens"] if ok else 0
            results.append((ok, time.perf_counter() - start, tokens, None if ok else f"{r.status_code} {r.text[:200]}"))
        except (httpx.HTTPError, ValueError, KeyError) as e:
            results.append((False, time.perf_counter() - start, 0, f"{type(e).__name__}: {e}"))


async def load_test(base: str, records: list[dict], args, width: int, layer: int) -> tuple[list, float]:
    results: list = []
    plans = []
    for c in range(args.clients):
        plans.append([request_body(records[(c * args.requests + i) % len(records)], steer=(c + i) % 2 == 1,
                                   width=width, layer=layer, max_tokens=args.max_tokens) for i in range(args.requests)])
    limits = httpx.Limits(max_connections=args.clients + 4)
    async with httpx.AsyncClient(limits=limits) as client:
        start = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*[client_run(client, base, p, results) for p in plans]), args.deadline)
        wall = time.perf_counter() - start
    return results, wall


def model_shape(model: str) -> tuple[int, int]:
    cfg = json.loads((Path(model) / "config.json").read_text())
    return int(cfg["hidden_size"]), int(cfg["num_hidden_layers"])


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="HF model directory (default: the tiny organism's RL model)")
    parser.add_argument("--prompt-format", default="organism")
    parser.add_argument("--organism", default="/tmp/tooldiff-bench/organism")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--deadline", type=float, default=900.0, help="seconds for the whole load test")
    args = parser.parse_args()

    if args.model:
        model = args.model
        records = [{"messages": [{"role": "user", "content": f"Question {i}: what is the weather in Paris?"}]} for i in range(50)]
    else:
        model, records = organism_model(args.organism)
    width, n_layers = model_shape(model)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(model, args.prompt_format, port, args.threads)
    try:
        asyncio.run(wait_healthy(base, server, timeout=180))
        results, wall = asyncio.run(load_test(base, records, args, width, n_layers // 2))
        stats = httpx.get(f"{base}/health", timeout=5).json()
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    errors = [r[3] for r in results if not r[0]]
    latencies = [r[1] for r in results if r[0]]
    tokens = sum(r[2] for r in results)
    print(f"{args.clients} clients x {args.requests} requests = {len(results)} requests in {wall:.1f}s "
          f"(max_tokens {args.max_tokens}, greedy, half steered)")
    print(f"errors: {len(errors)}")
    if latencies:
        print(f"latency p50 {percentile(latencies, 50):.3f}s  p95 {percentile(latencies, 95):.3f}s  max {max(latencies):.3f}s")
    print(f"throughput: {tokens / wall:.1f} completion tokens/s, {len(latencies) / wall:.2f} requests/s")
    print(f"server: {stats.get('batches')} batches, {stats.get('rows')} rows, largest batch {stats.get('largest_batch')}, "
          f"rejected {stats.get('rejected')}, engine errors {stats.get('errors')}")
    for e in errors[:5]:
        print(f"  error: {e}")
    return 1 if errors or len(results) != args.clients * args.requests else 0


if __name__ == "__main__":
    sys.exit(main())
