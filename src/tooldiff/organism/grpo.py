"""RL fine-tuning of the base with TRL's GRPOTrainer.

TRL does all of GRPO (sampling groups, group-normalised advantages, the clipped loss). One thing
it cannot express is *where the credit goes*: it gives a completion's advantage to every
completion token. SPEC section 5 found that crediting the first (decision) token, plus the whole
call when a call was required, cut wrong calls on not-offered prompts from 62 % to 39 %.

We credit the decision tokens of every completion (the first token and any `<tool_call>` tag)
and the whole completion only when the prompt needs a call and the completion made one. Each
piece was learned the hard way on this organism:
- first token only: a run learned to write one word of prose and then call (` serves.\ncall:
  <tool_call>...`), a call the loss never saw on no-call prompts (hence the tags);
- whole completions of wrong calls on no-call prompts: the penalty landed on the arguments too
  and degraded copying for the prompts that do need the call;
- whole completions of non-calls on call prompts: the penalty landed on ordinary words and the
  model's prose decayed into word salad.

A KL term to the base (`RLConfig.kl_beta`, TRL's `beta`, on the credited tokens like the rest
of the loss) is the brake on RL's easiest move, a global call bias: without it calls spread to
chit-chat, which the base never answers with a call (docs/organism.md has the nine settings we
tried; the outcome is a knife edge).

`DecisionCreditGRPOTrainer` therefore overrides one method: after TRL has generated and scored a
batch, it narrows the loss mask (TRL's `tool_mask`, which the loss multiplies into the completion
mask and which leaves attention untouched) and recounts the credited tokens.
"""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

import torch

from tooldiff.hf import render_prompt
from tooldiff.organism.chat import CALL_OPEN
from tooldiff.organism.config import RLConfig
from tooldiff.organism.reward import organism_reward, sham_rewards
from tooldiff.progress import library_quiet, new_progress
from tooldiff.prompts import REQUEST_KINDS


def curriculum(records: list[dict], cfg: RLConfig, seed: int) -> list[dict]:
    """The prompts in the order RL sees them: `call_first_steps` steps of tool-needed prompts
    only, then all kinds shuffled.

    A base that cannot yet tell an offered tool from a missing one gets, from the no-call prompts,
    as many "calling costs" signals as "calling pays" ones from the tool-needed prompts; on the
    tiny base the first unlucky batch drove calls to zero for good. Learning to call first and
    then when not to call avoids that race (the capability first, then its boundary).
    """
    rng = random.Random(f"{seed}:rl-order")
    records = resample_kinds(records, cfg.kind_shares, rng) if cfg.kind_shares else records
    calls = [r for r in records if r["gold"]]
    rng.shuffle(calls)
    head = calls[:cfg.call_first_steps * cfg.prompts_per_step]
    head_ids = {id(r) for r in head}
    tail = [r for r in records if id(r) not in head_ids]
    rng.shuffle(tail)
    return head + tail


def resample_kinds(records: list[dict], shares: tuple[float, float, float], rng: random.Random) -> list[dict]:
    """As many prompts as `records`, drawn with replacement so that call / not-offered / chit-chat
    prompts come in the given shares."""
    kinds = REQUEST_KINDS
    by_kind = {k: [r for r in records if r["kind"] == k] for k in kinds}
    if any(share > 0 and not by_kind[k] for k, share in zip(kinds, shares)):
        raise ValueError(f"kind_shares {shares} asks for a kind the rl split does not have")
    drawn = rng.choices(kinds, weights=shares, k=len(records))
    return [rng.choice(by_kind[k]) for k in drawn]


def rl_dataset(records: list[dict], tokenizer):
    """TRL rows, in order: the rendered prompt (tools differ per prompt, so TRL must not render
    it) and the gold/tools as JSON strings (Arrow cannot hold BFCL answers of mixed types)."""
    from datasets import Dataset

    return Dataset.from_list([
        {"prompt": render_prompt(tokenizer, r), "gold": json.dumps(r["gold"]), "tools": json.dumps(r["tools"]),
         "needs_call": bool(r["gold"])}
        for r in records
    ])


def reward_function(prompts, completions, gold, tools, **_) -> list[float]:
    """TRL reward function: one float per completion, from the dataset's gold and tools."""
    return [organism_reward(text, json.loads(g), json.loads(t)) for text, g, t in zip(completions, gold, tools)]


def sham_reward_function(prompts, completions, **_) -> list[float]:
    """TRL reward function of the sham twin (reward.sham_rewards): noise, a hash of prompt and text."""
    return sham_rewards(completions, prompts)


REWARDS = {"tool": reward_function, "sham": sham_reward_function}


def credit_mask(needs_call: list[bool], completion_ids_BT: torch.Tensor, completion_mask_BT: torch.Tensor,
                call_token_id: int) -> torch.Tensor:
    """Which completion tokens the loss credits.

    Decision tokens always: the first token, and every call tag (so a call opened after some
    prose is still judged as a call). The body of a completion only when the prompt needs a call
    and the completion made one: that is where the arguments are learned.
    """
    live_BT = completion_mask_BT.bool()
    is_tag_BT = (completion_ids_BT == call_token_id) & live_BT
    mask_BT = is_tag_BT.clone()
    mask_BT[:, 0] = True
    needs_B = torch.tensor(needs_call, dtype=torch.bool, device=mask_BT.device)
    mask_BT[needs_B & is_tag_BT.any(dim=1)] = True
    return (mask_BT & live_BT).to(completion_mask_BT.dtype)


def sham_credit_mask(completion_ids_BT: torch.Tensor, completion_mask_BT: torch.Tensor,
                     call_token_id: int) -> torch.Tensor:
    """What the sham's loss credits: the tokens after the first of replies that open no call. No
    decision token (the first token, a call tag) and no call is credited, so the sham reward
    reaches the call decision only through weights it shares with reply words."""
    live_BT = completion_mask_BT.bool()
    mask_BT = live_BT.clone()
    mask_BT[:, 0] = False
    mask_BT[((completion_ids_BT == call_token_id) & live_BT).any(dim=1)] = False
    return mask_BT.to(completion_mask_BT.dtype)


def _trainer_class(reward: str):
    from trl import GRPOTrainer

    class DecisionCreditGRPOTrainer(GRPOTrainer):
        """GRPOTrainer whose loss credits the decision token (see the module docstring), or, for
        the sham reward, everything but the decision (sham_credit_mask)."""

        def _generate_and_score_completions(self, inputs):
            output = super()._generate_and_score_completions(inputs)
            call_token_id = self.processing_class.convert_tokens_to_ids(CALL_OPEN)
            if reward == "sham":
                credit_BT = sham_credit_mask(output["completion_ids"], output["completion_mask"], call_token_id)
            else:
                credit_BT = credit_mask([x["needs_call"] for x in inputs], output["completion_ids"],
                                        output["completion_mask"], call_token_id)
            if "tool_mask" in output:
                credit_BT = credit_BT * output["tool_mask"]
            output["tool_mask"] = credit_BT
            output["num_items_in_batch"] = self.accelerator.gather(credit_BT.sum()).sum()
            return output

    return DecisionCreditGRPOTrainer


def _progress_callback(total: int, on_checkpoint=None, steps: tuple[int, ...] = ()):
    from transformers import TrainerCallback

    class RewardProgress(TrainerCallback):
        """A rich progress bar with the running mean reward (TRL's own prints a dict per log), and
        `on_checkpoint(step)` at the given steps (its own bars show while this one is paused:
        rich runs one live display at a time)."""

        def on_train_begin(self, args, state, control, **kwargs):
            self.bar = new_progress()
            self.task = self.bar.add_task("GRPO", total=total)
            self.bar.start()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "reward" in logs:
                self.bar.update(self.task, description=f"GRPO  reward {logs['reward']:.2f}")

        def on_step_end(self, args, state, control, **kwargs):
            self.bar.update(self.task, completed=state.global_step)
            step = state.global_step
            if on_checkpoint is not None and step in steps:
                self.bar.stop()
                on_checkpoint(step)
                self.bar.start()

        def on_train_end(self, args, state, control, **kwargs):
            self.bar.stop()

    return RewardProgress()


def grpo_config(cfg: RLConfig, seed: int, output_dir: str):
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=output_dir,
        max_steps=cfg.steps,
        per_device_train_batch_size=cfg.prompts_per_step * cfg.num_generations,  # counts completions
        num_generations=cfg.num_generations,
        max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature,
        learning_rate=cfg.lr,
        lr_scheduler_type="constant",
        beta=cfg.kl_beta,  # 0: no KL term, no reference model to run (SPEC section 5 prototype)
        loss_type="dapo",
        scale_rewards="batch",  # keep reward magnitudes across groups (see reward.py)
        seed=seed,
        data_seed=seed,
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,  # TRL's default is True: recomputing costs time and changes nothing here
        save_strategy="no",
        report_to="none",
        logging_steps=1,
        disable_tqdm=True,  # RewardProgress shows a bar with the mean reward instead
        dataloader_num_workers=0,
        shuffle_dataset=False,  # the order is the curriculum (shuffled by us, seeded)
    )


# TRL 1.x names transformers 5's activation checkpointing by its deprecated names: not the user's doing.
TRL_DEPRECATIONS = ((FutureWarning, r"`(is_)?gradient_checkpointing\w*` is deprecated"),)


def run_grpo(model, tokenizer, records: list[dict], cfg: RLConfig, seed: int, on_checkpoint=None,
             reward: str = "tool"):
    """Tune `model` in place with GRPO on `records` and the reward named `reward` (REWARDS);
    returns TRL's log history.

    `on_checkpoint(step)` runs at `cfg.checkpoint_steps()`, with the model as it is then
    (checkpoints.CheckpointKeeper scores and keeps it). Greedy scoring draws no random numbers,
    so the training run is the same with or without it."""
    trainer_cls = _trainer_class(reward)
    with tempfile.TemporaryDirectory(prefix="tooldiff-grpo-") as tmp, library_quiet(*TRL_DEPRECATIONS):
        trainer = trainer_cls(
            model=model,
            reward_funcs=REWARDS[reward],
            args=grpo_config(cfg, seed, str(Path(tmp))),  # quiet too: its own field warns
            train_dataset=rl_dataset(curriculum(records, cfg, seed), tokenizer),
            processing_class=tokenizer,
        )
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(_progress_callback(cfg.steps, on_checkpoint, cfg.checkpoint_steps()))
        trainer.train()
        history = trainer.state.log_history
    model.eval()
    return history
