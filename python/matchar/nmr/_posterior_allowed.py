"""Partial assignment knowledge (``structure_posterior(..., allowed=...)``): the allowed
peak-site pairs reduced, split into blocks, and the evidence summed over the bijections they
leave."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from ._posterior_input import _Nucleus
from ._posterior_terms import NucleusTerms, _given_assignment

#: Largest number of peak-site assignments that ``allowed`` sets which are not complete
#: blocks (e.g. peak A in {1, 2}, peak B in {2, 3}) may leave to enumerate.
MAX_ENUMERATED = 100_000


def _parse_allowed(allowed: Any, n: int, name: str) -> np.ndarray:
    """``allowed`` (one entry per peak: None for any site, else an iterable of site indices)
    as a boolean (n_peaks, n_sites) mask."""
    tag = "" if name == "shifts" else f"[{name!r}]"
    try:
        entries = list(allowed)
    except TypeError:
        raise ValueError(f"allowed{tag} must be a sequence with one entry per peak") from None
    if len(entries) != n:
        raise ValueError(f"allowed{tag} must have one entry per peak ({n}), got {len(entries)}")
    mask = np.zeros((n, n), dtype=bool)
    for j, entry in enumerate(entries):
        if entry is None:
            mask[j] = True
            continue
        if isinstance(entry, (int, np.integer)):
            entry = [entry]
        try:
            idx = [int(k) for k in entry]
            if any(int(k) != k for k in entry):
                raise TypeError
        except (TypeError, ValueError):
            raise ValueError(
                f"allowed{tag}[{j}] must be None or a set of site indices, got {entry!r}"
            ) from None
        if not idx:
            raise ValueError(f"allowed{tag}[{j}] is an empty set: peak {j} could be no site")
        bad = [k for k in idx if not 0 <= k < n]
        if bad:
            raise ValueError(f"allowed{tag}[{j}] holds site indices outside 0..{n - 1}: {bad}")
        mask[j, idx] = True
    return mask


def _reduce_allowed(mask: np.ndarray, name: str) -> np.ndarray:
    """Remove the pairs no bijection can use: a peak with one allowed site takes it from every
    other peak (and a site allowed for one peak only takes that peak), until nothing
    changes; then refuse masks without any consistent bijection."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import maximum_bipartite_matching

    m = mask.copy()
    changed = True
    while changed:
        changed = False
        for j in np.flatnonzero(m.sum(axis=1) == 1):
            k = int(np.argmax(m[j]))
            col = m[:, k].copy()
            col[j] = False
            if col.any():
                m[col, k] = False
                changed = True
        for k in np.flatnonzero(m.sum(axis=0) == 1):
            j = int(np.argmax(m[:, k]))
            if m[j].sum() > 1:
                m[j] = False
                m[j, k] = True
                changed = True
    match = maximum_bipartite_matching(sp.csr_matrix(m.astype(np.int8)), perm_type="column")
    if (m.sum(axis=1) == 0).any() or (match < 0).any():
        j = int(np.flatnonzero((m.sum(axis=1) == 0) | (match < 0))[0])
        raise ValueError(
            f"{name}: no assignment of peaks to sites is consistent with the allowed sets "
            f"(peak {j} is left without a site: two peaks claim the same single site, or "
            "more peaks than sites share a set)"
        )
    return m


def _matchings(block: np.ndarray, limit: int) -> list[np.ndarray]:
    """Every perfect matching of a boolean square ``block`` (row -> column), up to ``limit``."""
    n = block.shape[0]
    out: list[np.ndarray] = []
    cols = [np.flatnonzero(block[r]) for r in range(n)]
    used = np.zeros(n, dtype=bool)
    cur = np.zeros(n, dtype=np.int64)

    def rec(r: int) -> None:
        if len(out) > limit:
            return
        if r == n:
            out.append(cur.copy())
            return
        for c in cols[r]:
            if not used[c]:
                used[c] = True
                cur[r] = c
                rec(r + 1)
                used[c] = False

    rec(0)
    return out


def _constrained_assignment(nuc: _Nucleus, mask: np.ndarray, run: Any) -> NucleusTerms:
    """Evidence summed over the bijections peak -> site allowed by ``mask`` (uniform prior).

    The mask is reduced (forced pairs propagated) and split into connected blocks; a block
    where every peak may take every site is an assignment group of the permanent kernels
    (``run``), a single pair is a given assignment, and the bijections of the remaining
    (incomplete) blocks are enumerated, each one a kernel call; the log-evidences combine by
    log-sum-exp over them minus the log of their number."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    n = mask.shape[0]
    m = _reduce_allowed(mask, nuc.name)
    big = sp.bmat([[None, sp.csr_matrix(m)], [sp.csr_matrix(m.T), None]])
    _, lab = connected_components(big, directed=False)
    rows_lab, cols_lab = lab[:n], lab[n:]
    complete, incomplete = [], []
    for comp in np.unique(rows_lab):
        R = np.flatnonzero(rows_lab == comp)
        C = np.flatnonzero(cols_lab == comp)
        (complete if m[np.ix_(R, C)].all() else incomplete).append((R, C))
    per_block = []
    total = 1
    for R, C in incomplete:
        found = _matchings(m[np.ix_(R, C)], MAX_ENUMERATED)
        total *= len(found)
        if total > MAX_ENUMERATED:
            raise ValueError(
                f"{nuc.name}: the allowed sets leave more than {MAX_ENUMERATED} assignments "
                "that are not blocks of interchangeable peaks to enumerate; give narrower "
                "sets, or sets shared by whole groups of peaks"
            )
        per_block.append(found)

    def terms_for(choice: tuple[np.ndarray, ...]) -> tuple[NucleusTerms, np.ndarray]:
        # position of every peak: its site (pairs), or the sites of its block in order
        pos = np.empty(n, dtype=np.int64)
        groups = np.empty(n, dtype=np.int64)
        label = 0
        for R, C in complete:
            pos[R] = C
            groups[C] = label
            label += 1
        for (R, C), sel in zip(incomplete, choice):
            pos[R] = C[sel]
            for c in C[sel]:
                groups[c] = label
                label += 1
        y = np.empty_like(nuc.y)
        ve = np.empty_like(nuc.var_exp)
        y[pos] = nuc.y
        ve[pos] = nuc.var_exp
        sub = dataclasses.replace(nuc, y=y, var_exp=ve, assignment_groups=groups)
        if label == n:
            return _given_assignment(sub), pos
        return run(sub), pos

    import itertools

    results = [terms_for(ch) for ch in itertools.product(*per_block)]
    logz = np.stack([t.log_evidence for t, _ in results])  # (n_choices, n_cand)
    top = logz.max(axis=0)
    w = np.exp(logz - top)
    total_w = w.sum(axis=0)
    combined = top + np.log(total_w) - math.log(len(results))
    w = w / total_w
    # back to peak order; mixtures over the enumerated choices, weighted per candidate
    n_cand = logz.shape[1]
    site = (
        np.zeros((n_cand, n))
        if all(t.site_log_likelihood is not None for t, _ in results)
        else None
    )
    offset = np.zeros(n_cand) if all(t.offset is not None for t, _ in results) else None
    probs = (
        np.zeros((n_cand, n, n))
        if all(t.assignment_probabilities is not None for t, _ in results)
        else None
    )
    for (t, pos), wk in zip(results, w):
        if site is not None:
            site += wk[:, None] * t.site_log_likelihood[:, pos]
        if offset is not None:
            offset += wk * t.offset
        if probs is not None:
            probs += wk[:, None, None] * t.assignment_probabilities[:, pos, :]
    extra = None if site is None else combined - site.sum(axis=1)
    packed = index = None
    if probs is not None:
        rows, cols = np.nonzero(m)
        packed, index = probs[:, rows, cols], (rows, cols)
    first = results[0][0]
    if all(t.method == "given" for t, _ in results):
        identity = len(results) == 1 and np.array_equal(results[0][1], np.arange(n))
        method = "given" if identity else "allowed"
    else:
        method = first.method
    return NucleusTerms(
        log_evidence=combined,
        site_log_likelihood=site,
        offset_log_term=extra,
        offset=offset,
        kept_peaks=nuc.kept,
        experimental=nuc.y,
        model_mean=first.model_mean,
        model_std=np.sqrt(nuc.var.astype(np.float64) + nuc.var_exp[None, :]),
        method=method,
        _packed=packed,
        _packed_index=index,
    )
