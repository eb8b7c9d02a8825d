"""Statistics that the probe and the report share."""

from __future__ import annotations

import math


def probe_margin(accuracy: float, test_examples: int | None) -> float:
    """How far two probe accuracies near `accuracy` must be apart to differ: 2 * sqrt(2 * p (1 - p) / n) for
    `test_examples` examples (0.058 for 600 at p = 0.5); 0.03 where n was not recorded."""
    if not test_examples:
        return 0.03
    p = min(max(accuracy, 0.0), 1.0)
    return 2.0 * math.sqrt(2.0 * p * (1.0 - p) / test_examples)
