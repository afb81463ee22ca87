"""Corpus BLEU (Papineni et al. 2002, "BLEU: a Method for Automatic Evaluation of Machine Translation").

The score of generated instructions against the human ones. The inputs are token lists,
for instructions the tokens of `envs.tokenizer.tokenize`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

REFERENCE_LENGTHS = ("closest", "shortest")


@dataclass(frozen=True)
class BleuScore:
    """Corpus BLEU with the quantities it is computed from."""

    bleu: float
    """BLEU in [0, 1]."""
    precisions: tuple[float, ...]
    """Modified (clipped) n-gram precision p_n for n = 1..max_order; 0 where there are no n-grams."""
    brevity_penalty: float
    """BP in (0, 1]; 0 when the hypotheses are all empty."""
    hypothesis_length: int
    """c: tokens in all hypotheses."""
    reference_length: int
    """r: the effective reference length summed over the corpus."""


def ngram_counts(tokens: Sequence[str], order: int) -> Counter[tuple[str, ...]]:
    """Count the n-grams of exactly `order` tokens in `tokens`."""
    return Counter(tuple(tokens[i : i + order]) for i in range(len(tokens) - order + 1))


def effective_reference_length(hypothesis_length: int, reference_lengths: Sequence[int], rule: str) -> int:
    """Return the reference length that the brevity penalty compares a hypothesis with.

    "closest": the reference length nearest to the hypothesis length, the shorter one on a
    tie (Papineni et al.'s "best match length"). "shortest": the shortest reference.
    """
    if rule == "closest":
        return min(reference_lengths, key=lambda length: (abs(length - hypothesis_length), length))
    if rule == "shortest":
        return min(reference_lengths)
    raise ValueError(f"reference length rule must be one of {REFERENCE_LENGTHS}, got {rule!r}")


def corpus_bleu(
    hypotheses: Sequence[Sequence[str]],
    references: Sequence[Sequence[Sequence[str]]],
    max_order: int = 4,
    reference_length: str = "closest",
) -> BleuScore:
    """Compute corpus-level BLEU of `hypotheses`, each scored against its list of `references`.

    With N = `max_order`, hypotheses h_i and reference sets R_i:

    - count(g, s) is the number of times the n-gram g occurs in the token list s.
    - The clipped count of g in h_i is min(count(g, h_i), max over r in R_i of count(g, r)).
    - p_n = (sum over i and over the n-grams g of h_i of the clipped count of g) /
      (sum over i of max(len(h_i) - n + 1, 0)). Numerator and denominator are summed over
      the whole corpus before dividing. p_n = 0 when the denominator is 0.
    - c = sum of len(h_i). r = sum of the effective reference lengths r_i, the length of
      the reference of R_i closest to len(h_i), the shorter on a tie ("closest"), or of
      the shortest reference of R_i ("shortest").
    - BP = 1 if c > r, else exp(1 - r / c).
    - BLEU = BP * exp(sum over n of log(p_n) / N), and 0 when any p_n is 0 or c is 0
      (no smoothing).

    "shortest" reproduces the BLEU that EnvDrop reports for its speaker: R2R-EnvDrop's
    evaluation calls Google's `compute_bleu` (from the TensorFlow NMT code), which sums the
    shortest reference lengths, so its brevity penalty can be lower than with "closest".

    Raises ValueError when the two lists differ in length, a hypothesis has no reference,
    `max_order` is below 1, or the corpus is empty.
    """
    if len(hypotheses) != len(references):
        raise ValueError(
            f"expected one list of references per hypothesis, got {len(hypotheses)} hypotheses "
            f"and {len(references)} reference lists"
        )
    if not hypotheses:
        raise ValueError("cannot compute BLEU of an empty corpus")
    if max_order < 1:
        raise ValueError(f"max_order must be at least 1, got {max_order}")
    if reference_length not in REFERENCE_LENGTHS:
        raise ValueError(f"reference_length must be one of {REFERENCE_LENGTHS}, got {reference_length!r}")

    matches = [0] * max_order
    totals = [0] * max_order
    hypothesis_total = 0
    reference_total = 0
    for index, (hypothesis, reference_set) in enumerate(zip(hypotheses, references)):
        if not reference_set:
            raise ValueError(f"hypothesis {index} has no reference")
        hypothesis_total += len(hypothesis)
        reference_total += effective_reference_length(
            len(hypothesis), [len(r) for r in reference_set], reference_length
        )
        for order in range(1, max_order + 1):
            counts = ngram_counts(hypothesis, order)
            # An n-gram matches at most as often as it occurs in the one reference with the most copies.
            ceiling: Counter[tuple[str, ...]] = Counter()
            for reference in reference_set:
                ceiling |= ngram_counts(reference, order)
            matches[order - 1] += sum(min(count, ceiling[gram]) for gram, count in counts.items())
            totals[order - 1] += max(len(hypothesis) - order + 1, 0)

    precisions = tuple(m / t if t else 0.0 for m, t in zip(matches, totals))
    if hypothesis_total == 0:
        brevity_penalty = 0.0
    elif hypothesis_total > reference_total:
        brevity_penalty = 1.0
    else:
        brevity_penalty = math.exp(1.0 - reference_total / hypothesis_total)
    if min(precisions) == 0.0 or hypothesis_total == 0:
        bleu = 0.0
    else:
        bleu = brevity_penalty * math.exp(sum(math.log(p) for p in precisions) / max_order)
    return BleuScore(bleu, precisions, brevity_penalty, hypothesis_total, reference_total)
