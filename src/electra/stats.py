"""Statistics that the probe and the report share."""

from __future__ import annotations

import math


def probe_margin(accuracy: float, test_examples: int | None) -> float:
    """How far two probe accuracies near `accuracy` must be apart before the report calls one above the other:
    twice the standard error of the difference of two accuracies on `test_examples` examples,
    2 * sqrt(2 * p (1 - p) / n) (0.058 for 600 examples at p = 0.5; random initialisations of `tiny` with seeds 0-5
    span 0.46-0.56 on the built-in probe). 0.03 where the run did not record n."""
    if not test_examples:
        return 0.03
    p = min(max(accuracy, 0.0), 1.0)
    return 2.0 * math.sqrt(2.0 * p * (1.0 - p) / test_examples)
