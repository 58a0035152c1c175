"""Benchmarks: matchar and its reference/peer in one pytest-benchmark group."""

from __future__ import annotations

import multiprocessing

multiprocessing.set_start_method("spawn", force=True)
