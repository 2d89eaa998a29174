"""Keeps the garbage collector off the long-lived model (config, specs, plans: ~100 objects per real).

With 10,000 reals every full collection walks these objects again (tens of ms and
growing; bench/engine_results.md); frozen, they are never walked. The model is a tree
of frozen dataclasses without cycles, so an old config is still freed by reference
counting after a reload.
"""

from __future__ import annotations

import gc


def freeze_long_lived() -> None:
    """Move every object alive now out of the collector's sight, after a young collection.

    Only the young generations are collected first: a full collection of 10,000 reals
    stalls the loop for over half a second.
    """
    gc.unfreeze()
    gc.collect(1)
    gc.freeze()
