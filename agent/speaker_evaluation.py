"""Scoring a speaker on a split: BLEU of its greedy instructions and its teacher-forcing loss."""

from __future__ import annotations

import torch
from gymnasium.vector import AutoresetMode

from agent.bleu import corpus_bleu
from agent.speaker import DEFAULT_MAX_STEPS, Speaker, generated_tokens, path_batches
from envs.episodes import Split
from envs.r2r_env import R2RVectorEnv
from envs.tokenizer import Vocabulary, tokenize
from envs.world import NavigationWorld


def first_episode_per_path(split: Split) -> list[str]:
    """Return the instr_id of the first episode of every path of `split`, in file order."""
    seen: set[int] = set()
    instr_ids = []
    for episode in split:
        if episode.path_id not in seen:
            seen.add(episode.path_id)
            instr_ids.append(episode.instr_id)
    return instr_ids


@torch.no_grad()
def evaluate_speaker(
    model: Speaker,
    world: NavigationWorld,
    split_name: str,
    batch_size: int = 64,
    max_paths: int = 0,
    max_decode_length: int = 120,
    max_steps: int = DEFAULT_MAX_STEPS,
    reference_length: str = "closest",
) -> dict[str, float]:
    """Score the speaker on a split: greedy BLEU per path and teacher-forcing loss per token.

    One instruction is generated per path (from the path of its first episode) and scored
    against all the human instructions of that path. The loss averages over the tokens of
    every episode of the scored paths. `max_paths` > 0 scores only the first paths.
    Returns bleu, precision_1..4, brevity_penalty and loss.
    """
    model.eval()
    split = world.split(split_name)
    if not split.has_reference:
        raise ValueError(f"split {split_name!r} has no reference paths (test split): it cannot be scored")
    device = next(model.parameters()).device
    first_ids = first_episode_per_path(split)
    if max_paths:
        first_ids = first_ids[:max_paths]
    path_ids = {split[instr_id].path_id for instr_id in first_ids}
    instr_ids = [episode.instr_id for episode in split if episode.path_id in path_ids]
    generating = set(first_ids)

    env = R2RVectorEnv(num_envs=batch_size, world=world, autoreset_mode=AutoresetMode.DISABLED)
    generated: dict[int, list[str]] = {}
    total_loss = 0.0
    total_tokens = 0
    for paths in path_batches(env, split_name, instr_ids, device, max_steps):
        context = model.encode(paths)
        total_loss += float(model.loss(paths, reduction="sum", context=context))
        total_tokens += int((paths.instructions[:, 1:] != Vocabulary.pad_id).sum())

        rows = [row for row, episode in enumerate(paths.episodes) if episode.instr_id in generating]
        if not rows:
            continue
        ids = model.generate(paths.select(rows), max_decode_length, context=context[rows])
        for position, row in enumerate(rows):
            tokens = generated_tokens(world.encoder.vocabulary, ids[position].tolist())
            generated[paths.episodes[row].path_id] = tokens
    env.close()

    references: dict[int, list[list[str]]] = {}
    for instr_id in instr_ids:
        episode = split[instr_id]
        references.setdefault(episode.path_id, []).append(tokenize(episode.instruction))
    order = sorted(generated)
    score = corpus_bleu(
        [generated[path_id] for path_id in order],
        [references[path_id] for path_id in order],
        reference_length=reference_length,
    )
    results = {"bleu": score.bleu, "brevity_penalty": score.brevity_penalty}
    for order_index, precision in enumerate(score.precisions, start=1):
        results[f"precision_{order_index}"] = precision
    results["loss"] = total_loss / max(total_tokens, 1)
    return results
