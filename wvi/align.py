"""Permutation symmetries of network parameters, and the alignment of two mean-field Gaussian posteriors.

Permuting the hidden units of a layer (the output axis of the weights into it, the input axis of the weights out of
it; with `wvi.nn`'s (fan_in, fan_out) layout, columns and rows respectively; entries of
its bias and norm parameters) leaves the network's function unchanged. A `PermutationSpec` says which permutation
acts on which axis of which parameter leaf; leaves are named by their pytree path (`jax.tree_util.keystr`, e.g.
"[0]['w']" or "['blocks'][3]['conv1']"). `permute` applies permutations to a parameter pytree or, alike, to the
means and standard deviations of a `wvi.nn.MeanField`.

`align(q0, q1, spec, cost)` is Algorithm 1 of Rossi et al. (Git Re-Basin's weight matching with a Wasserstein
cost). For mean-field Gaussians, W2²(P#q1, q0) = ‖m0 − P m1‖² + ‖s0 − P s1‖² (Eq. 17), so minimising it over
the permutations {P_l} maximises Σ_arrays ⟨m0, P m1⟩ + ⟨s0, P s1⟩. Holding every permutation but P_l fixed
leaves a linear assignment problem (Eq. 19): maximise ⟨P_l, A_l⟩ with

    A_l = Σ over (leaf, axis) acted on by P_l of  M0 M1ᵀ + S0 S1ᵀ,

each array reshaped with that axis first and q1's other axes already permuted. Coordinate descent solves these
with scipy's `linear_sum_assignment`, over the permutations in random order, until a sweep improves nothing.
Costs: "wasserstein" (above), "mean" (A_l = Σ M0 M1ᵀ: MAP weight matching, Ainsworth et al.) and "kl", the paper's
KL cost (Eq. 21), a mean distance weighted by q0's precisions, Σ (m0 − P m1)² / s0², that ignores q1's stds.
Chapters: Part V, "Permutation symmetries of VI solutions" (derivation) and the two "Aligning VI solutions" chapters.
"""
from __future__ import annotations

import time
from typing import Any, NamedTuple, Optional

import jax
import numpy as np
from scipy.optimize import linear_sum_assignment

from wvi._checks import check_choice

COSTS = ("wasserstein", "mean", "kl")


class PermutationSpec(NamedTuple):
    """`axes_to_perm[leaf] = (perm name or None, one per axis)`; `perm_to_axes[perm] = ((leaf, axis), ...)`."""

    axes_to_perm: dict
    perm_to_axes: dict


def permutation_spec(axes_to_perm: dict) -> PermutationSpec:
    """A spec from `{leaf path: (perm name or None for each axis)}`."""
    perm_to_axes: dict = {}
    for leaf, axes in axes_to_perm.items():
        for axis, perm in enumerate(axes):
            if perm is not None:
                perm_to_axes.setdefault(perm, []).append((leaf, axis))
    return PermutationSpec(dict(axes_to_perm), {p: tuple(v) for p, v in perm_to_axes.items()})


def leaves_by_path(params) -> dict:
    """`{keystr(path): leaf}` of a parameter pytree."""
    return {jax.tree_util.keystr(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}


def _mean_pytree(params):
    return params.mean if _is_meanfield(params) else params


def _is_meanfield(x) -> bool:
    return hasattr(x, "mean") and hasattr(x, "log_std") and isinstance(x, tuple)


def check_spec(spec: PermutationSpec, params) -> dict:
    """Check that `spec` fits `params` (a pytree or a MeanField) and return `{perm: size}`. Raises a `ValueError`
    naming the leaf when a leaf has no entry in the spec (or the spec names a leaf the parameters lack), when the
    number of axes differs, or when a permutation acts on axes of different sizes."""
    leaves = leaves_by_path(_mean_pytree(params))
    missing = [k for k in leaves if k not in spec.axes_to_perm]
    if missing:
        raise ValueError(f"the permutation spec has no entry for leaf {missing[0]} of the parameters "
                         f"({len(missing)} leaves missing); every leaf needs one (None for axes no permutation acts on)")
    extra = [k for k in spec.axes_to_perm if k not in leaves]
    if extra:
        raise ValueError(f"the permutation spec names leaf {extra[0]}, which the parameters do not have")
    sizes: dict = {}
    for leaf, axes in spec.axes_to_perm.items():
        shape = np.shape(leaves[leaf])
        if len(axes) != len(shape):
            raise ValueError(f"the permutation spec gives {len(axes)} axes for leaf {leaf}, which has shape {shape}")
        for axis, perm in enumerate(axes):
            if perm is None:
                continue
            if perm in sizes and sizes[perm][0] != shape[axis]:
                other = sizes[perm][1]
                raise ValueError(f"permutation {perm!r} acts on axis {axis} of leaf {leaf} (size {shape[axis]}) and on "
                                 f"{other} (size {sizes[perm][0]}); a permutation needs axes of one size")
            sizes.setdefault(perm, (shape[axis], f"axis {axis} of leaf {leaf}"))
    return {p: n for p, (n, _) in sizes.items()}


def mlp_spec(params: list) -> PermutationSpec:
    """The spec of `wvi.nn` MLPs (a list of {"w": (in, out), "b": (out,)}): one permutation "P{i}" per hidden layer,
    acting on the outputs of layer i and on the inputs of layer i + 1."""
    params = _mean_pytree(params)
    num = len(params)
    axes = {}
    for i in range(num):
        p_in = f"P{i - 1}" if i > 0 else None
        p_out = f"P{i}" if i < num - 1 else None
        axes[f"[{i}]['w']"] = (p_in, p_out)
        axes[f"[{i}]['b']"] = (p_out,)
    return permutation_spec(axes)


def resnet20_spec(params: dict) -> PermutationSpec:
    """The spec of `wvi.nn.resnet20_init` parameters, as in Git Re-Basin: one permutation per block group along the
    residual stream ("res0", "res1", "res2", shared by the stem, each block's second conv and norm, the projection
    shortcuts and the head) and one per block for its inner channels ("block{i}"). Norm parameters (scale, bias,
    FRN's τ) take their channels' permutation."""
    params = _mean_pytree(params)
    axes: dict = {}

    def norm(prefix, p, perm):
        for name in p:
            axes[f"{prefix}['{name}']"] = (perm,)

    axes["['stem']['conv']"] = (None, None, None, "res0")
    norm("['stem']['norm']", params["stem"]["norm"], "res0")
    group, stream = 0, "res0"
    for i, block in enumerate(params["blocks"]):
        prefix = f"['blocks'][{i}]"
        if "shortcut" in block:
            group += 1
        out = f"res{group}"
        inner = f"block{i}"
        axes[f"{prefix}['conv1']"] = (None, None, stream, inner)
        norm(f"{prefix}['norm1']", block["norm1"], inner)
        axes[f"{prefix}['conv2']"] = (None, None, inner, out)
        norm(f"{prefix}['norm2']", block["norm2"], out)
        if "shortcut" in block:
            axes[f"{prefix}['shortcut']['conv']"] = (None, None, stream, out)
            norm(f"{prefix}['shortcut']['norm']", block["shortcut"]["norm"], out)
        stream = out
    axes["['head']['w']"] = (stream, None)
    axes["['head']['b']"] = (None,)
    return permutation_spec(axes)


def identity_perms(spec: PermutationSpec, params) -> dict:
    return {p: np.arange(n) for p, n in check_spec(spec, params).items()}


def random_perms(key, spec: PermutationSpec, params) -> dict:
    """Uniformly random permutations for every permutation of `spec` (for tests and planted problems)."""
    sizes = check_spec(spec, params)
    keys = jax.random.split(key, len(sizes))
    return {p: np.asarray(jax.random.permutation(k, n)) for k, (p, n) in zip(keys, sorted(sizes.items()))}


def _check_perms(spec, params, perms) -> dict:
    sizes = check_spec(spec, params)
    for p, n in sizes.items():
        if p not in perms:
            raise ValueError(f"perms has no entry for permutation {p!r}")
        perm = np.asarray(perms[p])
        if perm.shape != (n,) or not np.array_equal(np.sort(perm), np.arange(n)):
            raise ValueError(f"perms[{p!r}] must be a permutation of range({n}); got an array of shape {perm.shape}")
    return sizes


def _permute_leaves(leaves: dict, spec, perms, skip: Optional[tuple] = None) -> dict:
    out = {}
    for leaf, x in leaves.items():
        for axis, perm in enumerate(spec.axes_to_perm[leaf]):
            if perm is not None and (leaf, axis) != skip:
                x = np.take(x, perms[perm], axis=axis) if isinstance(x, np.ndarray) else jax.numpy.take(x, perms[perm], axis=axis)
        out[leaf] = x
    return out


def permute(params, spec: PermutationSpec, perms: dict):
    """P#params: every axis that `spec` assigns to permutation p is reindexed by `perms[p]` (new unit i = old unit
    perms[p][i]). For a `MeanField` the means and the (log) standard deviations are permuted alike."""
    if _is_meanfield(params):
        return type(params)(permute(params.mean, spec, perms), permute(params.log_std, spec, perms))
    _check_perms(spec, params, perms)
    flat, tree = jax.tree_util.tree_flatten_with_path(params)
    leaves = {jax.tree_util.keystr(path): leaf for path, leaf in flat}
    permuted = _permute_leaves(leaves, spec, perms)
    return jax.tree_util.tree_unflatten(tree, [permuted[jax.tree_util.keystr(path)] for path, _ in flat])


class Alignment(NamedTuple):
    """`perms` to apply to q1 (`permute(q1, spec, perms)`); `objectives[k]`, the maximised objective after k sweeps
    (k = 0: the identity); `sweeps`, the number of sweeps run (the last one improved nothing); `seconds`, the wall
    time of the alignment (from the device arrays' transfer to the last sweep)."""

    perms: dict
    objectives: np.ndarray
    sweeps: int
    seconds: float = 0.0


def _arrays(q, cost: str, name: str) -> tuple[dict, Optional[dict]]:
    if _is_meanfield(q):
        means = {k: np.asarray(v, np.float64) for k, v in leaves_by_path(q.mean).items()}
        stds = {k: np.exp(np.asarray(v, np.float64)) for k, v in leaves_by_path(q.log_std).items()}
        return means, stds
    if cost != "mean":
        raise ValueError(f"{name} must be a wvi.nn.MeanField for cost {cost!r} (it uses the standard deviations); "
                         f"plain parameters can only be aligned with cost='mean'")
    return {k: np.asarray(v, np.float64) for k, v in leaves_by_path(q).items()}, None


def _rows(x, axis):
    return np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1)


def _objective(m0, s0, m1p, s1p, cost) -> float:
    """The maximised objective at q1's current permutation (m1p, s1p already permuted)."""
    total = 0.0
    for leaf in m0:
        if cost == "kl":
            total -= float(np.sum((m0[leaf] - m1p[leaf]) ** 2 / s0[leaf] ** 2))
        else:
            total += float(np.vdot(m0[leaf], m1p[leaf]))
            if cost == "wasserstein":
                total += float(np.vdot(s0[leaf], s1p[leaf]))
    return total


def _leaf_term(leaf, axis, spec, perms, m0, s0, m1, s1, cost):
    """The contribution of one (leaf, axis) to the assignment matrix of the permutation acting on that axis."""
    b_m = _rows(_permute_leaves({leaf: m1[leaf]}, spec, perms, skip=(leaf, axis))[leaf], axis)
    a_m = _rows(m0[leaf], axis)
    if cost == "mean":
        return a_m @ b_m.T
    if cost == "wasserstein":
        b_s = _rows(_permute_leaves({leaf: s1[leaf]}, spec, perms, skip=(leaf, axis))[leaf], axis)
        return np.concatenate([a_m, _rows(s0[leaf], axis)], axis=1) @ np.concatenate([b_m, b_s], axis=1).T
    # kl: maximise −Σ (m0 − m1)²/s0² = Σ [2 m0 m1 − m1²]/s0² + const
    w = 1.0 / _rows(s0[leaf], axis) ** 2
    return np.concatenate([2.0 * a_m * w, -w], axis=1) @ np.concatenate([b_m, b_m ** 2], axis=1).T


def align(q0, q1, spec: PermutationSpec, cost: str = "wasserstein", key=None, max_sweeps: int = 100,
          tol: float = 1e-12, init_perms: Optional[dict] = None) -> Alignment:
    """Permutations P such that P#q1 is close to q0 under `cost` (Algorithm 1; see the module docstring).

    Coordinate descent: in each sweep, visit the permutations in a random order (from `key`; default PRNGKey(0))
    and replace each by the solution of its linear assignment problem; stop after the first sweep in which no
    assignment improves its objective by more than `tol`, or after `max_sweeps`. Every update maximises the
    objective over one permutation with the others fixed, so `objectives` never decreases. Computation in float64
    NumPy on the host (the assignment solver runs there anyway).
    """
    start = time.perf_counter()
    check_choice(cost, COSTS, "cost")
    if not (isinstance(max_sweeps, (int, np.integer)) and max_sweeps >= 1):
        raise ValueError(f"max_sweeps must be a positive integer; got {max_sweeps!r}")
    sizes = check_spec(spec, q0)
    if check_spec(spec, q1) != sizes or {k: np.shape(v) for k, v in leaves_by_path(_mean_pytree(q0)).items()} != \
            {k: np.shape(v) for k, v in leaves_by_path(_mean_pytree(q1)).items()}:
        raise ValueError("q0 and q1 must have the same parameter structure and shapes")
    m0, s0 = _arrays(q0, cost, "q0")
    m1, s1 = _arrays(q1, cost, "q1")
    if cost == "kl" and any(np.any(s <= 0) for s in s0.values()):
        raise ValueError("the KL cost needs positive standard deviations in q0")
    perms = identity_perms(spec, q0) if init_perms is None else {p: np.asarray(v) for p, v in init_perms.items()}
    _check_perms(spec, q0, perms)
    names = sorted(sizes)

    def current_objective():
        return _objective(m0, s0, _permute_leaves(m1, spec, perms), None if s1 is None else _permute_leaves(s1, spec, perms), cost)

    objectives = [current_objective()]
    # A (leaf, axis) term depends only on the permutations of the leaf's other axes: cache it under their versions
    # (first and last layers' terms are computed once; a term is recomputed only after a neighbour changed).
    version = {p: 0 for p in names}
    cache: dict = {}

    def term(leaf, axis):
        others = tuple(version[p] for ax, p in enumerate(spec.axes_to_perm[leaf]) if p is not None and ax != axis)
        hit = cache.get((leaf, axis))
        if hit is None or hit[0] != others:
            hit = (others, _leaf_term(leaf, axis, spec, perms, m0, s0, m1, s1, cost))
            cache[(leaf, axis)] = hit
        return hit[1]

    keys = jax.random.split(jax.random.PRNGKey(0) if key is None else key, max_sweeps)
    sweeps = 0
    for sweep_key in keys:
        sweeps += 1
        improved = False
        for index in np.asarray(jax.random.permutation(sweep_key, len(names))):
            p = names[int(index)]
            n = sizes[p]
            a = sum(term(leaf, axis) for leaf, axis in spec.perm_to_axes[p])
            rows, cols = linear_sum_assignment(a, maximize=True)
            old = float(np.sum(a[np.arange(n), perms[p]]))
            new = float(np.sum(a[rows, cols]))
            if new > old + tol:
                improved = True
                perms[p] = cols
                version[p] += 1
        objectives.append(current_objective())
        if not improved:
            break
    return Alignment(perms, np.asarray(objectives), sweeps, time.perf_counter() - start)
