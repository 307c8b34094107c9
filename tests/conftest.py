"""Shared pytest fixtures and helpers: no test file imports another. Keep each one small and offline.

- `tiny`: builders of tiny random objects every stage's tests share (a tokenizer, HF decoders of
  three families, a crosscoder, padded batches, a layer recorder) and their constants.
- `synthetic`: experiment results made up condition by condition, analysed by the experiment
  stage (effects, control-panel verdicts): for the experiment's analysis and for the report.
- `tiny_organism`: the tiny organism, built once per session by the command line in the
  background from the first test on; the tests that need it run last (`tiny_build_log`: what
  that build printed); `tiny_sham`: its sham twin, built in the background after it.
- `tiny_study`: crosscoders trained on it and the experiment grid run with them, once per session.
- `tiny_dashboard`: the dashboard of that study (with a positive-control study), once per session.
- `serve_cli`: `tooldiff serve` in a subprocess on a free loopback port, as a context manager.
- `run_cli`: `python -m tooldiff.cli ARGS` in a subprocess (text output captured); `free_port`: a
  loopback TCP port nothing listens on.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# --- organism (src/tooldiff/organism) ---------------------------------------------------------
import pytest  # noqa: E402


TINY_BUILD_LOG = "build.log"  # beside the tiny organism: what its build printed


def _needs(item, fixture: str) -> bool:
    return fixture in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(session, config, items):
    """The test files that reach the tiny organism run last, those that reach its sham twin last
    of all (whole files, so that module fixtures are set up once): the organism's build, started
    in the background before the first test, runs on the second core while every other test runs
    (they pin torch to one thread), and the sham's while the organism's tests run."""
    late = {item.module for item in items if _needs(item, "tiny_organism")}
    last = {item.module for item in items if _needs(item, "tiny_sham")}
    items.sort(key=lambda item: (item.module in late, item.module in last))  # stable within each group


class TinyBuild:
    """`tooldiff organism --preset tiny --seed 0 --out OUT ARGS` in a subprocess, as a user builds
    it; what it printed goes to `log` (for the quiet-output check, test_wheel)."""

    def __init__(self, out: Path, log: Path, *args: str):
        self.out, self.log = out, log
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "w") as stream:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tooldiff.cli", "organism", "--preset", "tiny", "--seed", "0", "--out", str(out),
                 *args], env={**os.environ, "COLUMNS": "400"}, text=True, stdout=stream, stderr=subprocess.STDOUT)

    def wait(self) -> Path:
        """OUT once the build has finished; a failed build fails the test that needed it."""
        try:
            code = self.proc.wait(timeout=1200)
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"the tiny build of {self.out.name} took more than 20 minutes")
        if code != 0:
            pytest.fail(f"the tiny build of {self.out.name} failed:\n{self.log.read_text()[-4000:]}")
        return self.out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class TinyBuilds:
    """The session's background builds: the tiny organism from the first test on, then, if a test
    asks for it, its sham twin (the same base, RL with the sham reward) once the organism is done."""

    def __init__(self, organism: Path, sham: bool):
        self.organism_build = TinyBuild(organism, organism.parent / TINY_BUILD_LOG)
        self.sham_build, self.want_sham = None, sham

    def organism(self) -> Path:
        out = self.organism_build.wait()
        if self.want_sham and self.sham_build is None:
            self.sham_build = TinyBuild(out.parent / "sham", out.parent / "sham.log", "--variant", "sham",
                                        "--shared-from", str(out))
        return out

    def sham(self) -> Path:
        self.organism()
        return self.sham_build.wait()

    def stop(self) -> None:
        for build in (self.organism_build, self.sham_build):
            if build is not None:
                build.stop()


@pytest.fixture(scope="session", autouse=True)
def _tiny_build(request, tmp_path_factory):
    """Starts the tiny organism's build before the first test when any collected test needs it."""
    items = request.session.items
    if not any(_needs(item, "tiny_organism") for item in items):
        yield None
        return
    keep = os.environ.get("TOOLDIFF_TEST_ORGANISM")
    builds = TinyBuilds(Path(keep) if keep else tmp_path_factory.mktemp("organism") / "tiny",
                        sham=any(_needs(item, "tiny_sham") for item in items))
    yield builds
    builds.stop()


@pytest.fixture(scope="session")
def tiny_organism(_tiny_build):
    """Directory of the tiny organism (preset "tiny", seed 0), built once per test session.

    Layout: base/ rl/ tokenizer/ data/{pretrain,rl,calibration,test,generic}.jsonl eval/
    organism.json; open it with `tooldiff.organism.load_organism(path)`.

    Built by `TinyBuild` in the background from the session's start (the tests that need it run
    last). TOOLDIFF_TEST_ORGANISM=DIR keeps it in DIR across sessions (built there once, then
    reused while the tiny config is unchanged): for iterating on one test file without the build.
    """
    return _tiny_build.organism()


@pytest.fixture(scope="session")
def tiny_sham(tiny_organism, _tiny_build):
    """The tiny organism's sham twin (`--variant sham --shared-from` it), built in the background
    while the organism's tests run; its tests run last."""
    return _tiny_build.sham()


@pytest.fixture(scope="session")
def tiny_build_log(tiny_organism) -> str:
    """What `tooldiff organism` printed while it built the session's tiny organism."""
    return (tiny_organism.parent / TINY_BUILD_LOG).read_text()


# --- the command line in a subprocess ----------------------------------------------------------
def _run_cli(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tooldiff.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="session")
def run_cli():
    """`run_cli(*args)`: the finished `python -m tooldiff.cli ARGS` (stdout and stderr as text)."""
    return _run_cli


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def free_port() -> int:
    return _free_port()


# --- tooldiff serve in a subprocess ------------------------------------------------------------


@contextmanager
def _serve_cli(args: list[str], log_path: Path, timeout: float = 180):
    """`tooldiff serve ARGS --port P` (one thread), waited until healthy; yields its base URL and
    stops it (SIGINT) at the end. A server that dies or never gets healthy fails with its log."""
    import httpx

    port = _free_port()
    cmd = [sys.executable, "-m", "tooldiff.cli", "serve", *map(str, args), "--port", str(port)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server was not healthy after {timeout}s:\n{log_path.read_text()}")
            time.sleep(0.3)
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def serve_cli():
    return _serve_cli


# --- a tiny study on the tiny organism ---------------------------------------------------------
class TinyStudy:
    """Crosscoders trained on the tiny organism (the run layout: ROOT/crosscoders/<name>) and one
    run of a small experiment grid with them (ROOT/experiment)."""

    SWEEP = """
[train]
batch_size = 128
eval_rows = 64
checkpoint_every = 100

[[crosscoder]]
name = "plain"
dict_size = 64
k = 4
steps = 60
lr = 1e-3

[[crosscoder]]
name = "dfc"
dict_size = 64
excl_a = 0.125
excl_b = 0.125
k = 4
steps = 60
lr = 1e-3
"""
    GRID = {"n_per_kind": 3, "n_random": 1, "n_unrelated": 1, "alphas": [1, 16], "doses": [0.5], "top_s": 2,
            "n_boot": 100, "max_new_tokens": 24}

    def __init__(self, organism: Path, root: Path):
        from tooldiff.experiment import load_experiment_config, run_experiment
        from tooldiff.organism import load_organism

        self.organism, self.root = organism, root
        self.pair = load_organism(organism, models=False).as_pair()
        self.crosscoders, self.experiment = root / "crosscoders", root / "experiment"
        self.config = load_experiment_config(self.GRID)
        self.summary = run_experiment(self.pair, self.crosscoders, self.experiment, self.config)


@pytest.fixture(scope="session")
def tiny_study(tiny_organism, tmp_path_factory) -> TinyStudy:
    from tooldiff.activations import harvest_pair
    from tooldiff.crosscoder import train_sweep
    from tooldiff.organism import load_organism

    org = load_organism(tiny_organism, models=False)
    root = tmp_path_factory.mktemp("study")
    harvest_pair(base=str(org.base_path), rl=str(org.rl_path), layer=org.layer, data=org.data["rl"],
                 out=root / "acts", positions="decision")
    (root / "sweep.toml").write_text(TinyStudy.SWEEP)
    train_sweep(acts=root / "acts", config=root / "sweep.toml", out=root / "crosscoders", device="cpu")
    return TinyStudy(tiny_organism, root)


class TinyDashboard:
    """The dashboard of `tiny_study`, with a positive-control study beside it: the same organism and
    its dfc crosscoder, run with a known direction as the planted one (the RL-minus-base shift of the
    calibration tool prompts), so that its planted latents get pages. Its results.json is written
    by the report stage, outside the study's directories."""

    POSITIVE_GRID = {"n_per_kind": 1, "n_random": 1, "n_unrelated": 1, "alphas": [1], "doses": [0.5], "top_s": 1,
                     "n_boot": 50, "max_new_tokens": 8}

    def __init__(self, study: TinyStudy, out: Path):
        from dataclasses import replace

        import torch

        from tooldiff.experiment import load_experiment_config, run_experiment
        from tooldiff.experiment.data import calibration_acts
        from tooldiff.features import model_shift
        from tooldiff.features.rank import TOOL_KINDS
        from tooldiff.report import write_report
        from tooldiff.report.dashboard import RunPaths, write_dashboard

        acts = calibration_acts(study.experiment / "calibration_acts", study.experiment / "calibration.jsonl")
        planted_D = model_shift(acts.x_NMD, torch.tensor([k in TOOL_KINDS for k in acts.kinds]))
        self.positive = study.root / "experiment-positive"
        self.positive_summary = run_experiment(replace(study.pair, planted_D=planted_D), study.crosscoders / "dfc",
                                               self.positive, load_experiment_config(self.POSITIVE_GRID))
        self.study, self.results = study, write_report(study.summary, out / "report")
        self.paths = RunPaths(study.experiment, results=out / "report" / "results.json", positive=self.positive)
        self.made = write_dashboard(self.paths, out / "dashboard")
        self.dir = self.made.out

    def data(self, page: str) -> dict:
        """The JSON a page embeds."""
        import json
        import re

        text = (self.dir / page).read_text()
        return json.loads(re.search(r'<script id="data" type="application/json">(.*?)</script>', text, re.S).group(1))


@pytest.fixture(scope="session")
def tiny_dashboard(tiny_study, tmp_path_factory) -> TinyDashboard:
    return TinyDashboard(tiny_study, tmp_path_factory.mktemp("dashboard"))


# --- tiny random HF models, tokenizer and crosscoder ------------------------------------------
class LayerRecorder:
    """Records the (edited) output of one decoder layer on every forward call."""

    def __init__(self, layer_module):
        self.calls: list = []
        self._handle = layer_module.register_forward_hook(self._hook)

    def _hook(self, module, args, output):
        h = output if not isinstance(output, tuple) else output[0]
        self.calls.append(h.detach().clone())

    def remove(self) -> None:
        self._handle.remove()


class Tiny:
    """What the `tiny` fixture gives: builders of tiny random objects (heavy imports inside)."""

    D_MODEL = 32
    N_LAYERS = 3
    LAYER = 1
    CORPUS = [
        "the weather in paris is sunny today",
        "call the calculator with 12 and 30",
        "tools: get_weather, add_numbers",
        "user: what is the weather in rome? assistant: let me check",
        "a quick brown fox jumps over the lazy dog 0123456789",
    ]
    LayerRecorder = LayerRecorder

    @staticmethod
    def tokenizer():
        """Byte-level BPE trained on a few lines, with <eos>/<pad> special and <tool_call> NOT special."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
        from transformers import PreTrainedTokenizerFast

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<eos>", "<pad>"],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        tok.train_from_iterator(Tiny.CORPUS, trainer=trainer)
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>")
        fast.add_tokens(["<tool_call>"])  # added, not special: generation must keep it in the text
        return fast

    @staticmethod
    def model(arch: str, vocab_size: int, seed: int = 0):
        """A random decoder of the given family; a wide init spreads the logits so greedy ties are rare."""
        import torch
        from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

        torch.manual_seed(seed)
        common = dict(vocab_size=vocab_size, initializer_range=0.3, bos_token_id=0, eos_token_id=0, pad_token_id=1)
        if arch == "qwen2":
            model = Qwen2ForCausalLM(Qwen2Config(hidden_size=Tiny.D_MODEL, intermediate_size=64, num_hidden_layers=Tiny.N_LAYERS,
                                                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                                 **common))
        elif arch == "llama":
            model = LlamaForCausalLM(LlamaConfig(hidden_size=Tiny.D_MODEL, intermediate_size=64, num_hidden_layers=Tiny.N_LAYERS,
                                                 num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                                                 **common))
        elif arch == "gpt2":
            model = GPT2LMHeadModel(GPT2Config(n_embd=Tiny.D_MODEL, n_layer=Tiny.N_LAYERS, n_head=4, n_positions=256, **common))
        else:
            raise ValueError(arch)
        model.generation_config.eos_token_id = 0
        return model.eval()

    @staticmethod
    def crosscoder(d_model: int = D_MODEL, layer: int | None = LAYER, seed: int = 0):
        """A random DFC (10 % + 10 % exclusive) with non-trivial normalization statistics."""
        import torch

        from tooldiff.crosscoder.config import CrosscoderConfig
        from tooldiff.crosscoder.model import CheckpointInfo, Crosscoder

        cfg = CrosscoderConfig(d_model=d_model, dict_size=80, excl_a=0.1, excl_b=0.1, k=8, seed=seed)
        cc = Crosscoder.initialized(cfg, CheckpointInfo(layer=layer))
        gen = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            cc.set_normalization(torch.randn(2, d_model, generator=gen) * 0.5, torch.tensor([2.0, 3.0]))
            cc.b_dec_MD.copy_(torch.randn(2, d_model, generator=gen) * 0.1)
        return cc.eval()

    @staticmethod
    def left_pad(rows: list[list[int]], pad_id: int):
        import torch

        width = max(map(len, rows))
        ids_BT = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask_BT = torch.zeros((len(rows), width), dtype=torch.long)
        for r, row in enumerate(rows):
            ids_BT[r, width - len(row):] = torch.tensor(row)
            mask_BT[r, width - len(row):] = 1
        return ids_BT, mask_BT

    @staticmethod
    def padded_batch(vocab_size: int, lengths=(7, 3, 5, 1), seed: int = 0):
        """Left-padded random token rows of different lengths (pad id 1, tokens drawn from 2..V)."""
        import torch

        gen = torch.Generator().manual_seed(seed)
        rows = [torch.randint(2, vocab_size, (n,), generator=gen).tolist() for n in lengths]
        return Tiny.left_pad(rows, pad_id=1)

    @staticmethod
    def forward(model, ids_BT, mask_BT):
        """Logits of one plain forward call with proper position ids for left padding."""
        import torch

        pos_BT = (mask_BT.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            return model(input_ids=ids_BT, attention_mask=mask_BT, position_ids=pos_BT).logits


@pytest.fixture(scope="session")
def tiny() -> type[Tiny]:
    return Tiny


# --- synthetic experiment results --------------------------------------------------------------
class Synthetic:
    """What the `synthetic` fixture gives: conditions on N prompts of three kinds, as the experiment
    records them, analysed by `tooldiff.experiment.analysis`, and an experiment summary around them."""

    N = 40
    KINDS = ["call"] * 20 + ["not_offered"] * 10 + ["chitchat"] * 10

    @staticmethod
    def entry(key, model, intervention, valid, made_call=None, role="effect", controls=(), features=(7,),
              alpha=None, dose=None, crosscoder="cc0"):
        made_call = made_call if made_call is not None else valid
        mean = sum(valid) / len(valid)
        return {"key": key, "model": model, "intervention": intervention, "crosscoder": crosscoder,
                "features": list(features), "alpha": alpha, "dose": dose, "positions": "last_prompt", "role": role,
                "controls": list(controls), "rivals": [], "valid": valid, "made_call": made_call,
                "metrics": {"n": len(valid), "strict": {"mean": mean, "ci95": [mean - 0.1, mean + 0.1]},
                            "lenient": {"mean": mean, "ci95": [mean - 0.1, mean + 0.1]},
                            "trigger": {"precision": 1, "recall": 1, "f1": 1, "fpr": 0}, "calls_per_prompt": mean}}

    @staticmethod
    def ones(k: int) -> list[int]:
        return [1] * k + [0] * (Synthetic.N - k)

    @staticmethod
    def analysed(effect_k: int, control_ks: list[int]) -> dict:
        """RL without intervention right on 10 prompts, a steer right on `effect_k`, and one random
        direction control per entry of `control_ks`."""
        from tooldiff.experiment.analysis import add_effects, add_verdicts

        entry, ones = Synthetic.entry, Synthetic.ones
        results = {"none": entry("none", "rl", "none", ones(10), role="reference", features=())}
        results["eff"] = entry("eff", "rl", "steer", ones(effect_k), alpha=32.0,
                               controls=[f"c{i}" for i in range(len(control_ks))])
        for i, k in enumerate(control_ks):
            results[f"c{i}"] = entry(f"c{i}", "rl", "add", ones(k), role="control_random",
                                     features=(f"random:{i}",), dose=0.3)
        add_effects(results, Synthetic.KINDS, seed=0, n_boot=500)
        add_verdicts(results)
        return results

    @staticmethod
    def experiment(res: dict):
        """The experiment summary (experiment.json) around analysed conditions, with one crosscoder's ranking."""
        from tooldiff.experiment.analysis import sweep_summary
        from tooldiff.experiment.summary import summary_of

        latent = {"latent": 7, "group": "a_excl", "rl_dominant": False, "delta": 0.1, "rl_norm_share": 0.9,
                  "strict_d": 1.0, "strict_auroc": 0.8, "nu_eps": 0.0, "nu_r": 0.0, "firing": {"call": 0.5}}
        ranking = {"n": {"call": 20}, "latents": [latent], "best": {"strict": {"a_excl": 7}}, "least_related": [3]}
        return summary_of({"conditions": list(res.values()), "rankings": {"cc0": ranking}, "crosscoders": {"cc0": {}},
                           "sweep": sweep_summary(res), "layer": 1, "n_test": Synthetic.N, "config": {"seed": 0}})


@pytest.fixture(scope="session")
def synthetic() -> type[Synthetic]:
    return Synthetic
