"""The sweep trainer: one pass over the activations feeds every configuration.

Each step draws ONE batch (a pure function of data_seed and step), normalizes it once with
the harvest's statistics, and hands it to every group of stacked configurations. Every
`checkpoint_every` steps the whole sweep state is saved (resume is exact: same data order,
same RNG, same optimizer state), and each config gets a loadable crosscoder checkpoint.
When a config reaches its own step budget it is frozen and finalized: final checkpoint,
metrics.json and the Δ / shared-cosine histograms.

Under `torchrun` each rank trains on its slice of every batch (see ddp.py).

On a GPU the activations move to device memory once (when they take at most half of what is
free) and the row order is indexed there, so a step copies nothing between host and device and
never waits for the device: the host queues steps ahead, and only logging (every 1 % of the
run), checkpoints and the end of a config read values back.
"""

from __future__ import annotations

import functools
import json
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from tooldiff.activations import ActivationStore, BatchStream, load_activations, split_rows
from tooldiff.crosscoder.checkpoint import latest_state, save_state
from tooldiff.crosscoder.config import CrosscoderConfig, SweepConfig, load_sweep
from tooldiff.crosscoder.ddp import Dist
from tooldiff.crosscoder.graphs import GraphedStep
from tooldiff.crosscoder.metrics import decoder_metrics, reconstruction_metrics, write_histograms
from tooldiff.crosscoder.model import CheckpointInfo, Crosscoder
from tooldiff.crosscoder.optim import StackedAdam
from tooldiff.crosscoder.precision import resolve_kernels, resolve_precision
from tooldiff.crosscoder.stack import CrosscoderStack
from tooldiff.errors import UserError
from tooldiff.hf import resolve_device

SWEEP_FILE = "sweep.json"
METRICS_FILE = "metrics.json"


def train_sweep(acts: Any, config: Any, out: str | Path, device: str = "cpu") -> dict[str, dict]:
    """Train every config of `config` (a sweep TOML path or SweepConfig) on `acts` (a harvest
    directory or ActivationStore); write one directory per config under `out`; return
    {config name: metrics}. Rerunning the same command resumes from the last state."""
    sweep = config if isinstance(config, SweepConfig) else load_sweep(config)
    store = acts if isinstance(acts, ActivationStore) else load_activations(acts)
    dist = Dist.from_env()
    try:
        return SweepTrainer(store, sweep, Path(out), resolve_device(device), dist).run()
    finally:
        dist.close()


def normalization(store: ActivationStore, target_rms: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per model: the mean, and one scale that brings the centered per-element RMS to target."""
    mean_MD = store.mean_MD.float()
    rms_M = store.var_MD.mean(1).sqrt().float()
    if not bool(torch.isfinite(rms_M).all()) or bool((rms_M <= 0).any()):
        raise UserError(f"harvest {store.directory}: a model's activations are constant (RMS {rms_M.tolist()})")
    return mean_MD, rms_M / target_rms


def rows_on(store: ActivationStore, device: torch.device) -> ActivationStore:
    """The store with its rows in `device` memory if that is a GPU with room for them (half of
    its free memory at most); otherwise as it is, and each step copies its batch over."""
    if device.type != "cuda":
        return store
    free, _ = torch.cuda.mem_get_info(device)
    nbytes = store.acts_NMD.numel() * store.acts_NMD.element_size()
    return store.to(device) if nbytes <= free // 2 else store


def group_configs(cfgs: list[CrosscoderConfig], stack: bool) -> list[list[int]]:
    """Indices of configs trained as one stack: equal shape, and equal lr, step budget and
    Adam constants (one fused optimizer step serves the whole stack). Seeds, k, λ and AuxK
    settings may differ within a stack."""
    if not stack:
        return [[i] for i in range(len(cfgs))]
    groups: dict[tuple, list[int]] = {}
    for i, c in enumerate(cfgs):
        groups.setdefault((c.shape_key(), c.lr, c.steps, c.adam_betas, c.adam_eps), []).append(i)
    return list(groups.values())


class SweepTrainer:
    def __init__(self, store: ActivationStore, sweep: SweepConfig, out: Path, device: torch.device, dist: Dist):
        for c in sweep.crosscoder:
            if c.n_models != store.n_models:
                raise UserError(f"crosscoder {c.display_name()!r}: n_models={c.n_models} but the harvest has "
                                f"{store.n_models}")
        self.sweep = sweep.with_d_model(store.d_model)
        self.cfgs = self.sweep.crosscoder
        self.store, self.out, self.device, self.dist = rows_on(store, device), out, device, dist
        t = self.sweep.train
        self.precision = resolve_precision(t.precision, device.type)
        self.kernels = resolve_kernels(t.kernels, device.type)
        self.mean_MD, self.scale_M = (v.to(device) for v in normalization(store, t.target_rms))
        rows_device = self.store.acts_NMD.device
        train_rows, eval_rows = split_rows(store.n_rows, min(t.eval_rows, store.n_rows // 5), t.data_seed)
        self.train_rows, self.eval_rows = train_rows.to(rows_device), eval_rows.to(rows_device)
        self.stream = BatchStream(len(self.train_rows), t.batch_size, t.data_seed, rows_device)
        self.local = dist.local_slice(t.batch_size)
        self.groups = group_configs(self.cfgs, t.stack)
        self.stacks = [CrosscoderStack.from_crosscoders([Crosscoder.initialized(self.cfgs[i]) for i in g]).to(device)
                       for g in self.groups]
        for stack in self.stacks:
            stack.set_normalization_scale(self.scale_M)
            stack.set_compute(self.precision, self.kernels)
        self.optims = [self._optimizer(g, s) for g, s in zip(self.groups, self.stacks)]
        self.steps = [self._step_function(g) for g in range(len(self.stacks))]
        self.since_fired = [torch.zeros(len(g), self.cfgs[g[0]].dict_size, dtype=torch.int64, device=device)
                            for g in self.groups]
        self.group_steps = [self.cfgs[g[0]].steps for g in self.groups]
        self.dead_tokens_C = [torch.tensor([self.cfgs[i].dead_tokens for i in g], device=device) for g in self.groups]
        self.max_steps = max(c.steps for c in self.cfgs)
        self.log_every = max(1, self.max_steps // 100)
        self.history: dict[str, list[dict]] = {c.name: [] for c in self.cfgs}
        self.step = 0
        self.elapsed = 0.0
        self.finalized: set[str] = set()

    def _optimizer(self, group: list[int], stack: CrosscoderStack) -> StackedAdam:
        cfgs = [self.cfgs[i] for i in group]
        return StackedAdam(list(stack.parameters()), cfgs[0].lr,
                           torch.tensor([c.grad_clip for c in cfgs], device=self.device), cfgs[0].adam_betas,
                           cfgs[0].adam_eps)

    # --- the run ----------------------------------------------------------------------------
    def run(self) -> dict[str, dict]:
        self._open_out()
        self._finalize_due(up_to=self.step)  # configs that ended before an interruption
        with self._progress() as progress:
            task = progress.add_task("train", total=self.max_steps, completed=self.step, rate="")
            started = time.perf_counter() - self.elapsed
            while self.step < self.max_steps:
                self._train_step()
                self.step += 1
                self.elapsed = time.perf_counter() - started
                if self.step % self.sweep.train.checkpoint_every == 0 or self.step == self.max_steps:
                    self._checkpoint()
                self._finalize_due(up_to=self.step)
                rate = self.step * self.sweep.train.batch_size / max(self.elapsed, 1e-9)
                progress.update(task, completed=self.step, rate=f"{rate:,.0f} rows/s")
        self.dist.barrier()
        return {c.name: json.loads((self.out / c.name / METRICS_FILE).read_text()) for c in self.cfgs}

    def _train_step(self) -> None:
        batch = self.train_rows[self.stream.indices(self.step)[self.local]]
        x_BMD = self.store.rows_float(batch).to(self.device)
        for g in range(len(self.stacks)):
            if self.step >= self.group_steps[g]:
                continue  # this stack's budget is spent: it stays frozen
            loss_C, parts = self.steps[g](x_BMD)
            if self.step % self.log_every == 0 or self.step + 1 == self.group_steps[g]:
                self._log(g, loss_C, parts)

    def _group_step(self, g: int, x_BMD: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """One optimizer step of stack g on a raw batch; every state change in place (graphs.py)."""
        stack, n_global = self.stacks[g], self.sweep.train.batch_size
        xn_BMD = (x_BMD - self.mean_MD) / self.scale_M.view(1, -1, 1)
        dead_CL = self.since_fired[g] >= self.dead_tokens_C[g].view(-1, 1)
        loss_C, parts, fired_CL = stack.training_loss(xn_BMD, n_global, dead_CL, self.dist)
        loss_C.sum().backward()
        self.dist.all_reduce_grads_(list(stack.parameters()))
        self.optims[g].step()
        self.optims[g].zero_grad()
        fired_CL = self.dist.all_reduce_sum([fired_CL.float()])[0] > 0
        self.since_fired[g].add_(n_global).masked_fill_(fired_CL, 0)
        return loss_C.detach(), parts

    def _step_function(self, g: int):
        """Stack g's step: captured as a CUDA graph where it can be (a GPU, one process, no
        BatchTopK, whose threshold search asks the device how far to widen), else eager."""
        step = functools.partial(self._group_step, g)
        graphable = (self.device.type == "cuda" and self.sweep.train.cuda_graph and self.dist.world == 1
                     and self.stacks[g].sparsity != "batchtopk")
        return GraphedStep(step, reset=self.optims[g].zero_grad) if graphable else step

    def _log(self, g: int, loss_C: torch.Tensor, parts: dict) -> None:
        names = ["loss", *parts]
        summed = self.dist.all_reduce_sum([loss_C, *parts.values()])
        for j, i in enumerate(self.groups[g]):
            entry = {"step": self.step, **{n: float(v[j]) for n, v in zip(names, summed)}}
            self.history[self.cfgs[i].name].append(entry)

    # --- outputs ----------------------------------------------------------------------------
    def _info(self, step: int) -> CheckpointInfo:
        m = self.store.manifest
        return CheckpointInfo(models=m.models, layer=m.layer, positions=m.positions, data_hash=self.store.data_hash,
                              step=step, target_rms=self.sweep.train.target_rms)

    def _locate(self, i: int) -> tuple[int, int]:
        """(stack, position in the stack) of config i."""
        g = next(n for n, grp in enumerate(self.groups) if i in grp)
        return g, self.groups[g].index(i)

    def _export(self, i: int) -> Crosscoder:
        g, j = self._locate(i)
        step = min(self.step, self.cfgs[i].steps)
        return self.stacks[g].export(j, self.mean_MD, self.scale_M, self._info(step))

    def _finalize_due(self, up_to: int) -> None:
        """Final checkpoint + metrics for every config whose budget ends by `up_to`."""
        for i, cfg in enumerate(self.cfgs):
            if cfg.steps <= up_to and cfg.name not in self.finalized:
                if self.dist.is_main:
                    self._finalize(i)
                self.finalized.add(cfg.name)
                self.dist.barrier()

    def _finalize(self, i: int) -> None:
        cfg = self.cfgs[i]
        cc = self._export(i)
        target = self.out / cfg.name
        cc.save(target)
        eval_rows = self.eval_rows if len(self.eval_rows) else self.train_rows[:4096]
        g, j = self._locate(i)
        since = self.since_fired[g][j]
        # Measured where the rows are (on a GPU too), then back on the CPU for the plots.
        quality = reconstruction_metrics(cc.to(self.store.acts_NMD.device), self.store.rows_float(eval_rows))
        cc = cc.cpu()
        metrics = {
            "name": cfg.name, "config": cfg.model_dump(mode="json"), "step": cc.info.step, **quality,
            "eval_split": "held_out" if len(self.eval_rows) else "train",
            "dead_frac": float((since >= cfg.dead_tokens).float().mean()),
            **decoder_metrics(cc),
            "theta": float(cc.theta), "data_hash": self.store.data_hash, "n_train_rows": len(self.train_rows),
            "precision": self.precision, "kernels": self.kernels,
            "tokens_seen": cfg.steps * self.sweep.train.batch_size, "history": self.history[cfg.name],
        }
        write_histograms(cc, target)
        tmp = target / (METRICS_FILE + ".tmp")
        tmp.write_text(json.dumps(metrics, indent=2))
        tmp.replace(target / METRICS_FILE)

    def _checkpoint(self) -> None:
        if self.dist.is_main:
            keep = self.sweep.train.keep_checkpoints
            for i, cfg in enumerate(self.cfgs):
                if self.step <= cfg.steps:
                    ckpts = self.out / cfg.name / "checkpoints"
                    self._export(i).save(ckpts / f"step-{self.step:08d}")
                    for old in sorted(ckpts.glob("step-*"))[:-keep]:
                        shutil.rmtree(old, ignore_errors=True)
            save_state(self.out, self.step, self._state_tensors(), self._state_meta(), keep)
        self.dist.barrier()

    # --- resume -----------------------------------------------------------------------------
    def _identity(self) -> dict:
        return {"sweep_digest": self.sweep.digest(), "data_hash": self.store.data_hash,
                "configs": [c.name for c in self.cfgs]}

    def _open_out(self) -> None:
        ident = self._identity()
        sweep_file = self.out / SWEEP_FILE
        if sweep_file.is_file():
            old = json.loads(sweep_file.read_text()).get("identity")
            if old != ident:
                raise UserError(f"{self.out} holds a different sweep or was trained on other activations; "
                                "choose another --out")
        elif self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            sweep_file.write_text(json.dumps({"identity": ident, "sweep": self.sweep.model_dump(mode="json")}, indent=2))
        # Decided by every rank before any rank can write (the barrier), so all agree.
        self.finalized = {c.name for c in self.cfgs if (self.out / c.name / METRICS_FILE).is_file()}
        self.dist.barrier()
        state = latest_state(self.out)
        if state is not None:
            self._load_state(*state)

    def _state_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {"torch_rng": torch.get_rng_state()}
        for g, (stack, optim) in enumerate(zip(self.stacks, self.optims)):
            tensors.update({f"g{g}.{k}": v for k, v in stack.state_dict().items()})
            tensors.update(optim.state_tensors(f"g{g}.adam."))
            tensors[f"g{g}.since_fired"] = self.since_fired[g]
        return tensors

    def _state_meta(self) -> dict:
        return {"identity": self._identity(), "history": self.history, "elapsed": self.elapsed,
                "data_seed": self.sweep.train.data_seed, "world": self.dist.world}

    def _load_state(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        if meta.get("identity") != self._identity():
            raise UserError(f"resume state in {self.out} belongs to another sweep; choose another --out")
        try:
            for g, (stack, optim) in enumerate(zip(self.stacks, self.optims)):
                prefix = f"g{g}."
                stack.load_state_dict({k[len(prefix):]: v for k, v in tensors.items()
                                       if k.startswith(prefix) and not k.startswith(prefix + "adam.")
                                       and k != prefix + "since_fired"})
                optim.load_state_tensors(tensors, prefix + "adam.")
                self.since_fired[g].copy_(tensors[prefix + "since_fired"])  # in place: a captured step reads it
        except (KeyError, RuntimeError) as e:
            raise UserError(f"resume state in {self.out} does not match this sweep ({str(e).splitlines()[0]})") from None
        torch.set_rng_state(tensors["torch_rng"])
        self.history = meta["history"]
        self.elapsed = float(meta.get("elapsed", 0.0))
        self.step = int(meta["step"])

    def _progress(self) -> Progress:
        return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), disable=not self.dist.is_main)
