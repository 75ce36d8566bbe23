"""Permutation symmetries of network parameters, and the alignment of two mean-field Gaussian posteriors.

Permuting the hidden units of a layer (the output axis of the weights into it, the input axis of the weights out of
it; with `wvi.networks`' (fan_in, fan_out) layout, columns and rows respectively; entries of
its bias and norm parameters) leaves the network's function unchanged. A `PermutationSpec` says which permutation
acts on which axis of which parameter leaf; leaves are named by their pytree path (`jax.tree_util.keystr`, e.g.
"[0]['w']" or "['blocks'][3]['conv1']"). `permute` applies permutations to a parameter pytree or, alike, to the
means and standard deviations of a `wvi.gaussian.MeanField`.

`align(q0, q1, spec, cost)` is Algorithm 1 of Rossi et al. (Git Re-Basin's weight matching with a Wasserstein
cost). For mean-field Gaussians, W2²(P#q1, q0) = ‖m0 − P m1‖² + ‖s0 − P s1‖² (Eq. 17), so minimising it over
the permutations {P_l} maximises Σ_arrays ⟨m0, P m1⟩ + ⟨s0, P s1⟩. Holding every permutation but P_l fixed
leaves a linear assignment problem (Eq. 19): maximise ⟨P_l, A_l⟩ with ::

    A_l = Σ over (leaf, axis) acted on by P_l of  M0 M1ᵀ + S0 S1ᵀ,

each array reshaped with that axis first and q1's other axes already permuted. Coordinate descent solves these
with scipy's `linear_sum_assignment`, over the permutations in random order, until a sweep changes none of them
(`align` says what a sweep costs: assignments whose matrix did not change are skipped, matrices are updated by
low-rank products).
Costs: "wasserstein" (above), "mean" (A_l = Σ M0 M1ᵀ: MAP weight matching, Ainsworth et al.), "kl", the paper's
KL cost (Eq. 21), a mean distance weighted by q0's precisions, Σ (m0 − P m1)² / s0², that ignores q1's stds, and
"kl-full", twice KL(P#q1 ‖ q0) (Eq. 20) up to an additive constant free of P: Σ [(m0 − P m1)² + (P s1)²] / s0²,
the paper's cost with the trace term Σ (P s1)²/s0² it drops kept (the log-determinants do not depend on P; the
trace does).
For odd activations (tanh) a unit's sign is a symmetry too: `permute_signed` applies signed permutations D P to an
MLP, and `align_signed_mlp` aligns two MLP posteriors over them with the Wasserstein cost.
Chapters: Part V, "Permutation symmetries of VI solutions" (derivation) and the two "Aligning VI solutions" chapters.
"""
from __future__ import annotations

import time
from typing import Callable, NamedTuple, Optional, Sequence

import jax
import numpy as np
from scipy.optimize import linear_sum_assignment

from wvi import gaussian as G
from wvi._checks import check_choice

COSTS = ("wasserstein", "mean", "kl", "kl-full")


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
    return isinstance(x, G.MeanField)


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
    """The spec of `wvi.networks` MLPs (a list of {"w": (in, out), "b": (out,)}): one permutation "P{i}" per hidden layer,
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
    """The spec of `wvi.networks.resnet20_init` parameters, as in Git Re-Basin: one permutation per block group along the
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


def agreement(perms_a: dict, perms_b: dict) -> float:
    """Share of units two alignments give the same partner: (1/K) Σ_p (1/n_p) Σ_i [perms_a[p][i] = perms_b[p][i]]
    over the K permutations p of n_p units each, the mean of the shares of equal entries (1: the same alignment;
    about 1/n for unrelated ones). Part V compares the costs by it (book/part5/mlp_digits, sections 6 and 9).

    Raises:
      ValueError: when the two do not hold the same permutation names with the same sizes.
    """
    if set(perms_a) != set(perms_b) or not perms_a:
        raise ValueError(f"perms_a and perms_b must name the same permutations; got {sorted(perms_a)} and "
                         f"{sorted(perms_b)}")
    shares = []
    for p in perms_a:
        a, b = np.asarray(perms_a[p]), np.asarray(perms_b[p])
        if a.shape != b.shape:
            raise ValueError(f"permutation {p!r} has {a.size} units in perms_a and {b.size} in perms_b")
        shares.append(np.mean(a == b))
    return float(np.mean(shares))


def permute(params, spec: PermutationSpec, perms: dict):
    """P#params: every axis that `spec` assigns to permutation p is reindexed by `perms[p]` (new unit i = old unit
    perms[p][i]). For a `wvi.gaussian.MeanField` the means and the standard deviations are permuted alike."""
    if _is_meanfield(params):
        return G.MeanField(permute(params.mean, spec, perms), permute(params.std, spec, perms))
    _check_perms(spec, params, perms)
    flat, tree = jax.tree_util.tree_flatten_with_path(params)
    leaves = {jax.tree_util.keystr(path): leaf for path, leaf in flat}
    permuted = _permute_leaves(leaves, spec, perms)
    return jax.tree_util.tree_unflatten(tree, [permuted[jax.tree_util.keystr(path)] for path, _ in flat])


class Alignment(NamedTuple):
    """`perms` to apply to q1 (`permute(q1, spec, perms)`); `objectives[k]`, the maximised objective after k sweeps
    (k = 0: the starting permutations; see `align` for its precision); `sweeps`, the number of sweeps run; `seconds`, the wall time of the
    alignment (from the device arrays' transfer to the last sweep); `converged`, True when the last sweep changed
    no permutation (the exact fixed point), False when `rtol` or `max_sweeps` ended it first; `assignments`, the
    number of assignment problems solved (a visit whose matrix did not change since its last solve is skipped)."""

    perms: dict
    objectives: np.ndarray
    sweeps: int
    seconds: float = 0.0
    converged: bool = True
    assignments: int = 0


SOLVERS = ("scipy", "lapjv")


def _solver(name: str) -> Callable:
    """The maximising LAP solver `name`: scipy's `linear_sum_assignment` (the default), or the Jonker-Volgenant
    solver `lap.lapjvh` of the optional package lapx (`pip install lapx`), which measured 3-4x faster than scipy's
    (and about 2x faster than the older `lap.lapjv`) on the assignment matrices that `align` solves on random
    3x512 and 3x2048 MLPs, dense ones in early sweeps and near-diagonal ones late (benchmarks/align.py times the
    whole alignment with each). Both return the same assignment on every matrix measured;
    ties between assignments of equal value may be broken differently."""
    check_choice(name, SOLVERS, "solver")
    if name == "scipy":
        return lambda a: linear_sum_assignment(a, maximize=True)[1]
    try:
        from lap import lapjvh
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("solver='lapjv' needs the optional package lapx >= 0.11 (pip install lapx), whose "
                          "lap.lapjvh it calls") from err
    return lambda a: lapjvh(-a, return_cost=False)[1]


def _arrays(q, cost: str, name: str, dtype=np.float64) -> tuple[dict, Optional[dict]]:
    """q's means and standard deviations (None for plain parameters) as `{leaf path: dtype array}`."""
    if _is_meanfield(q):
        means = {k: np.asarray(v, dtype) for k, v in leaves_by_path(q.mean).items()}
        stds = {k: np.asarray(v, dtype) for k, v in leaves_by_path(q.std).items()}
        return means, stds
    if cost != "mean":
        raise ValueError(f"{name} must be a wvi.gaussian.MeanField for cost {cost!r} (it uses the standard deviations); "
                         f"plain parameters can only be aligned with cost='mean'")
    return {k: np.asarray(v, dtype) for k, v in leaves_by_path(q).items()}, None


def _objective(m0, s0, m1p, s1p, cost) -> float:
    """The maximised objective at q1's current permutation (m1p, s1p already permuted), in float64."""
    total = 0.0
    f = lambda x: np.asarray(x, np.float64)
    for leaf in m0:
        if cost in ("kl", "kl-full"):
            total -= float(np.sum((f(m0[leaf]) - f(m1p[leaf])) ** 2 / f(s0[leaf]) ** 2))
            if cost == "kl-full":
                total -= float(np.sum(f(s1p[leaf]) ** 2 / f(s0[leaf]) ** 2))
        else:
            total += float(np.vdot(f(m0[leaf]), f(m1p[leaf])))
            if cost == "wasserstein":
                total += float(np.vdot(f(s0[leaf]), f(s1p[leaf])))
    return total


def _stack(parts: list, axis: int, dtype) -> np.ndarray:
    """The arrays of `parts` (one shape), each with `axis` moved last, stacked and flattened into one contiguous
    (len(parts)·K, n) `dtype` array: the transposed rows, written in one strided pass per part."""
    shape = parts[0].shape
    out = np.empty((len(parts),) + tuple(d for i, d in enumerate(shape) if i != axis) + (shape[axis],), dtype)
    for c, x in enumerate(parts):
        out[c] = np.moveaxis(x, axis, -1)
    return out.reshape(-1, shape[axis])


class _Term:
    """One (leaf, axis) term T = a b[:, cols]ᵀ of the assignment matrix of the permutation acting on `axis`.

    `a` (n × K) holds q0's features with `axis` first, `b` (n × K) q1's, both stored transposed (K × n) so that
    selecting features copies contiguous rows; the permutations of the leaf's other axes act on the K features of b
    only, through the index array `cols`. When they change, only the features j with cols_new[j] ≠ cols_old[j]
    change, and T is updated by the rank-|J| product a[:, J] (b[:, new_J] − b[:, old_J])ᵀ instead of recomputed
    (2n²|J| instead of 2n²K flops; the full product when |J| > K/2)."""

    def __init__(self, leaf, axis, spec, m0, s0, m1, s1, cost, xp, dtype):
        self.leaf, self.axis = leaf, axis
        shape = np.shape(m0[leaf])
        self.others = [(i, p) for i, p in enumerate(spec.axes_to_perm[leaf]) if p is not None and i != axis]
        self.grid = np.arange(int(np.prod(shape)) // shape[axis]).reshape([d for i, d in enumerate(shape) if i != axis])
        if cost == "mean":
            a_t, b_t = [m0[leaf]], [m1[leaf]]
        elif cost == "wasserstein":
            a_t, b_t = [m0[leaf], s0[leaf]], [m1[leaf], s1[leaf]]
        else:  # kl: maximise −Σ (m0 − m1)²/s0² = Σ [2 m0 m1 − m1²]/s0² + const; kl-full: − s1²/s0² too
            w = 1.0 / s0[leaf] ** 2
            second = m1[leaf] ** 2 + (s1[leaf] ** 2 if cost == "kl-full" else 0.0)
            a_t, b_t = [2.0 * m0[leaf] * w, -w], [m1[leaf], second]
        self.copies = len(a_t)
        self.xp = xp
        self.a_t, self.b_t = (xp.asarray(_stack(parts, axis, dtype)) for parts in (a_t, b_t))
        self.cols, self.value = None, None

    def columns(self, perms) -> np.ndarray:
        idx = self.grid
        for i, p in self.others:
            idx = np.take(idx, perms[p], axis=i if i < self.axis else i - 1)
        idx = idx.reshape(-1)
        return np.concatenate([idx + c * idx.size for c in range(self.copies)])

    def __call__(self, perms):
        if self.value is not None and not self.others:
            return self.value
        cols = self.columns(perms)
        if self.value is None or np.count_nonzero(cols != self.cols) > cols.size // 2:
            self.value = self.a_t.T @ self.b_t[cols]
        else:
            changed = np.flatnonzero(cols != self.cols)
            if changed.size:
                delta = self.b_t[cols[changed]] - self.b_t[self.cols[changed]]
                self.value = self.value + self.a_t[changed].T @ delta
        self.cols = cols
        return self.value


# With float32 products an assignment is kept when it improves the objective by more than this many float32
# epsilons of the magnitude of the matrix entries it changes (their rounding; the entries of unchanged rows cancel).
_F32_GUARD = 10 * float(np.finfo(np.float32).eps)


def _products(products: str, precision: str):
    """(array module, dtype) for the assignment matrices' products."""
    check_choice(products, ("auto", "numpy", "jax"), "products")
    check_choice(precision, ("float64", "float32"), "precision")
    if products == "auto":
        products = "numpy" if jax.default_backend() == "cpu" else "jax"
    if products == "numpy":
        return np, np.dtype(precision)
    if precision == "float64" and not jax.config.jax_enable_x64:
        raise ValueError("precision='float64' with products='jax' needs jax_enable_x64; "
                         "use precision='float32' or products='numpy'")
    return jax.numpy, jax.numpy.dtype(precision)


def align(q0, q1, spec: PermutationSpec, cost: str = "wasserstein", key=None, max_sweeps: int = 100,
          tol: float = 1e-12, init_perms: Optional[dict] = None, rtol: float = 0.0, solver: str = "scipy",
          products: str = "auto", precision: str = "float64",
          order: Optional[Callable[[int], Sequence[str]]] = None) -> Alignment:
    """Permutations P such that P#q1 is close to q0 under `cost` (Algorithm 1; see the module docstring).

    Coordinate descent: in each sweep, visit the permutations in a random order (from `key`; default PRNGKey(0);
    or the names `order(k)` lists for sweep k) and replace each by the solution of its linear assignment problem
    when that improves the objective by more than `tol` (a guard against rounding; with float32 products, by more
    than 10 float32 epsilons of the magnitude of the matrix entries it changes, their own rounding).

    Stopping rule: the first sweep in which no permutation changes ends the run (`converged`: the exact fixed point
    of the coordinate descent); with `rtol` > 0, also a sweep that raised the objective by at most `rtol` times its
    absolute value; at most `max_sweeps` sweeps.
    Every update maximises the objective over one permutation with the others fixed, so `objectives` never
    decreases.

    Cost of a sweep: a visit solves an assignment only when one of its terms changed since its last solve (else the
    current permutation is already its solution); a term whose neighbouring permutations moved k units is updated by
    a rank-k product, not recomputed. The products run in NumPy on the host (`products="numpy"`, the default on CPU;
    `OPENBLAS_NUM_THREADS` sets the cores) or in JAX on the default device (`products="jax"`, the default when that
    is an accelerator), in `precision`: "float64" (the default) or "float32", faster on large problems. The fast
    configuration is `precision="float32", solver="lapjv"` (benchmarks/align.py times it, the defaults and Git
    Re-Basin's weight matching in one run). Measured in benchmarks/align.py and on the book's pairs: on random
    weights both reach the same permutations; where many units are nearly interchangeable (trained pairs, or the
    prior-dominated wide net of Part V's symmetry chapter) assignments differ by less than float32 rounding, the
    float32 descent stops at another fixed point, about 5e-6 relative lower; and the KL costs' entries Σ (2 m0 m1 −
    m1²)/s0² cancel, so they need float64. The assignments always run on the host in float64, with `solver` ("scipy"
    or "lapjv", see `SOLVERS`). `objectives[0]` is computed in float64 from the starting permutations; each later
    one adds its sweep's assignment gains (an assignment's objective is the total objective up to a constant), so it
    is exact up to the products' rounding: about 1e-7 relative in float32.
    """
    start = time.perf_counter()
    check_choice(cost, COSTS, "cost")
    if not (isinstance(max_sweeps, (int, np.integer)) and max_sweeps >= 1):
        raise ValueError(f"max_sweeps must be a positive integer; got {max_sweeps!r}")
    if not (np.isscalar(rtol) and np.isfinite(rtol) and rtol >= 0):
        raise ValueError(f"rtol must be a finite number >= 0; got {rtol!r}")
    solve = _solver(solver)
    xp, dtype = _products(products, precision)
    sizes = check_spec(spec, q0)
    if check_spec(spec, q1) != sizes or {k: np.shape(v) for k, v in leaves_by_path(_mean_pytree(q0)).items()} != \
            {k: np.shape(v) for k, v in leaves_by_path(_mean_pytree(q1)).items()}:
        raise ValueError("q0 and q1 must have the same parameter structure and shapes")
    host = np.float32 if dtype == np.float32 else np.float64
    m0, s0 = _arrays(q0, cost, "q0", host)
    m1, s1 = _arrays(q1, cost, "q1", host)
    if cost in ("kl", "kl-full") and any(np.any(s <= 0) for s in s0.values()):
        raise ValueError(f"the {cost} cost needs positive standard deviations in q0")
    perms = identity_perms(spec, q0) if init_perms is None else {p: np.asarray(v) for p, v in init_perms.items()}
    _check_perms(spec, q0, perms)
    names = sorted(sizes)

    if init_perms is None:  # the identity: q1 as it is
        objectives = [_objective(m0, s0, m1, s1, cost)]
    else:
        objectives = [_objective(m0, s0, _permute_leaves(m1, spec, perms),
                                 None if s1 is None else _permute_leaves(s1, spec, perms), cost)]
    terms = {p: [_Term(leaf, axis, spec, m0, s0, m1, s1, cost, xp, dtype) for leaf, axis in spec.perm_to_axes[p]]
             for p in names}
    # dependents[p]: the permutations whose assignment matrices change when p does (they share a leaf with p)
    dependents = {p: {q for q in names for t in terms[q] if any(o == p for _, o in t.others)} for p in names}
    stale = set(names)  # permutations whose matrix may have changed since their last solve
    keys = jax.random.split(jax.random.PRNGKey(0) if key is None else key, max_sweeps) if order is None else None
    sweeps = assignments = 0
    converged = False
    for sweep in range(max_sweeps):
        sweeps += 1
        changed, gain = False, 0.0
        visit = [names[int(i)] for i in np.asarray(jax.random.permutation(keys[sweep], len(names)))] \
            if order is None else list(order(sweep))
        for p in visit:
            if p not in stale:
                continue
            stale.discard(p)
            a = sum(t(perms) for t in terms[p])
            a = np.asarray(a, np.float64)
            cols = solve(a)
            assignments += 1
            n = sizes[p]
            if dtype == np.float64:
                old = float(np.sum(a[np.arange(n), perms[p]]))
                improvement, guard = float(np.sum(a[np.arange(n), cols])) - old, tol
            else:  # float32 products: compare the rows that moved only, against their entries' rounding
                rows = np.flatnonzero(cols != perms[p])
                new_entries, old_entries = a[rows, cols[rows]], a[rows, perms[p][rows]]
                improvement = float(np.sum(new_entries - old_entries))
                guard = max(tol, _F32_GUARD * float(np.sum(np.abs(new_entries) + np.abs(old_entries))))
            if improvement > guard:
                changed, gain = True, gain + improvement
                perms[p] = np.asarray(cols)
                stale |= dependents[p]
        objectives.append(objectives[-1] + gain)
        if not changed:
            converged = True
            break
        if rtol > 0 and gain <= rtol * abs(objectives[-2]):
            break
    return Alignment(perms, np.asarray(objectives), sweeps, time.perf_counter() - start, converged, assignments)


def wasserstein_terms(q0, q1) -> dict:
    """The two terms of the Wasserstein alignment objective at q1's current labelling, in float64:
    {"mean": Σ ⟨m0, m1⟩, "std": Σ ⟨s0, s1⟩} over all leaves. Their sum is what `align(cost="wasserstein")` and
    `align_signed_mlp` maximise, since W2²(q0, q1) = ‖m0‖² + ‖m1‖² + ‖s0‖² + ‖s1‖² − 2 (mean + std) and relabelling
    q1 leaves its norms unchanged. Part V, "Permutation symmetries of VI solutions", section 3b, splits an
    alignment's gain by them.

    Raises:
      TypeError: when q0 or q1 is not a `wvi.gaussian.MeanField`. ValueError: when their leaves or shapes differ.
    """
    if not (_is_meanfield(q0) and _is_meanfield(q1)):
        raise TypeError("q0 and q1 must be wvi.gaussian.MeanField posteriors")
    terms = {}
    for name, a, b in (("mean", q0.mean, q1.mean), ("std", q0.std, q1.std)):
        a, b = leaves_by_path(a), leaves_by_path(b)
        if {k: np.shape(v) for k, v in a.items()} != {k: np.shape(v) for k, v in b.items()}:
            raise ValueError("q0 and q1 must have the same parameter structure and shapes")
        terms[name] = sum(float(np.vdot(np.asarray(a[k], np.float64), np.asarray(b[k], np.float64))) for k in a)
    return terms


class SignedAlignment(NamedTuple):
    """`perms` and `signs` to apply to q1 (`permute_signed(q1, perms, signs)`): hidden unit i of layer l of the
    result is unit `perms[f"P{l}"][i]` of q1, its means multiplied by `signs[f"P{l}"][i]` (±1); `objectives[k]`, the
    maximised objective Σ ⟨m0, D P m1⟩ + ⟨s0, P s1⟩ after k sweeps; `sweeps`; `converged` as in `Alignment`."""

    perms: dict
    signs: dict
    objectives: np.ndarray
    sweeps: int
    converged: bool = True


def _mlp_layers(params, name: str) -> list:
    """A `wvi.networks` MLP's layers as float64 NumPy arrays, checked: a list of {"w": (in, out), "b": (out,)}."""
    if not isinstance(params, (list, tuple)) or len(params) < 2 or not all(
            isinstance(layer, dict) and set(layer) == {"w", "b"} and np.ndim(layer["w"]) == 2
            and np.ndim(layer["b"]) == 1 for layer in params):
        raise ValueError(f"{name} must be a wvi.networks MLP with at least one hidden layer: a list of "
                         f'{{"w": (in, out), "b": (out,)}} layers')
    return [{k: np.asarray(v, np.float64) for k, v in layer.items()} for layer in params]


def permute_signed(params, perms: dict, signs: dict):
    """(D P)#params for a `wvi.networks` MLP: hidden unit i of layer l becomes unit `perms[f"P{l}"][i]` with its
    incoming weights, bias and outgoing weights multiplied by `signs[f"P{l}"][i]` = ±1. For an odd activation
    (tanh: tanh(−x) = −tanh(x)) the network's function is unchanged: each layer has 2ⁿ n! such relabellings, not
    only the n! permutations that `permute` applies. For a `wvi.gaussian.MeanField` the signs act on the means;
    the standard deviations are only permuted. Chapter: Part V, "Permutation symmetries of VI solutions".

    Raises:
      ValueError: when `perms` or `signs` lack a hidden layer, or are not permutations / arrays of ±1 of its width.
    """
    if not isinstance(perms, dict) or not isinstance(signs, dict):
        raise TypeError(f"perms and signs must be dicts (name 'P<l>' -> array); got {type(perms).__name__} and "
                        f"{type(signs).__name__}")
    if _is_meanfield(params):
        return G.MeanField(permute_signed(params.mean, perms, signs), permute(params.std, mlp_spec(params.std), perms))
    spec = mlp_spec(params)
    sizes = _check_perms(spec, params, perms)
    for p, n in sizes.items():
        s = np.asarray(signs.get(p)) if p in signs else None
        if s is None or s.shape != (n,) or not np.all(np.abs(s) == 1):
            raise ValueError(f"signs[{p!r}] must be an array of {n} entries, each +1 or -1")
    take = lambda x, idx, axis: np.take(x, idx, axis=axis) if isinstance(x, np.ndarray) else \
        jax.numpy.take(x, idx, axis=axis)  # noqa: E731
    out = [dict(layer) for layer in params]
    for i in range(len(params) - 1):
        perm, sign = np.asarray(perms[f"P{i}"]), np.asarray(signs[f"P{i}"])
        out[i]["w"] = take(out[i]["w"], perm, 1) * sign.astype(np.asarray(out[i]["w"]).dtype)
        out[i]["b"] = take(out[i]["b"], perm, 0) * sign.astype(np.asarray(out[i]["b"]).dtype)
        out[i + 1]["w"] = take(out[i + 1]["w"], perm, 0) * sign.astype(np.asarray(out[i + 1]["w"]).dtype)[:, None]
    return out


def align_signed_mlp(q0, q1, key=None, max_sweeps: int = 100, tol: float = 1e-12,
                     init: str = "forward") -> SignedAlignment:
    """Signed permutations D_l P_l of the hidden units of a tanh MLP such that (D P)#q1 is close to q0 in W2.

    `align(cost="wasserstein")` over the larger symmetry group of an odd activation. With the other layers fixed, unit
    j of q1 placed at unit i with sign d contributes d·A[i, j] + B[i, j] to the objective, A = Σ M0 M1ᵀ over the
    means of the unit's incoming weights, bias and outgoing weights, B = Σ S0 S1ᵀ over their stds (a sign leaves the
    stds unchanged). The best sign is sign(A[i, j]), so each step is the assignment problem with matrix abs(A) + B,
    solved with scipy's `linear_sum_assignment`; the sweeps visit the layers in random order (from `key`) until one
    changes nothing. Each accepted step raises the objective, so `objectives` never decreases. The descent starts
    from `init`: "forward" (the default) first matches each layer on its incoming weights and bias alone, from the
    input up (the signed assignment of abs(A_in), A_in = W0_inᵀ W1_in + b0 b1ᵀ, with the layers below already
    matched), because from the identity a wrong sign of the next layer's units scrambles the outgoing term and the
    descent can stall (it does on some planted signed permutations of nets with three hidden layers, which
    `tests/test_align.py` keeps); "identity" starts from q1 as it is. Only for odd
    activations: for ReLU a flipped unit computes another function. Chapter: Part V, "Permutation symmetries of VI
    solutions", section 3a.

    Args:
      q0, q1: `wvi.gaussian.MeanField`s over the same `wvi.networks` MLP (a list of {"w", "b"} layers).
      key: a `jax.random` key for the sweep order (default key(0)).
      max_sweeps: at most this many sweeps.
      tol: an assignment is kept when it raises the objective by more than `tol` (a guard against rounding).
      init: "forward" or "identity", the descent's starting point (above); `objectives[0]` is the objective there.
    Returns:
      A `SignedAlignment`.
    """
    check_choice(init, ("forward", "identity"), "init")
    if not (_is_meanfield(q0) and _is_meanfield(q1)):
        raise TypeError("q0 and q1 must be wvi.gaussian.MeanField posteriors over an MLP")
    if not (isinstance(max_sweeps, (int, np.integer)) and max_sweeps >= 1):
        raise ValueError(f"max_sweeps must be a positive integer; got {max_sweeps!r}")
    if key is not None and not (isinstance(key, jax.Array) and (
            jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) or (key.dtype == np.uint32 and key.shape == (2,)))):
        raise TypeError(f"key must be a jax.random key (jax.random.key(seed)) or None; got {key!r}")
    m0, s0 = _mlp_layers(q0.mean, "q0.mean"), _mlp_layers(q0.std, "q0.std")
    m1, s1 = _mlp_layers(q1.mean, "q1.mean"), _mlp_layers(q1.std, "q1.std")
    for q in (q0, q1):
        check_spec(mlp_spec(q.mean), q.mean)  # the layers' widths chain
    shapes = lambda layers: [{k: v.shape for k, v in layer.items()} for layer in layers]  # noqa: E731
    if shapes(m0) != shapes(m1) or shapes(m0) != shapes(s0) or shapes(m1) != shapes(s1):
        raise ValueError("q0 and q1 must have the same MLP structure and shapes")
    num_hidden = len(m0) - 1
    perms = {f"P{i}": np.arange(m0[i]["b"].size) for i in range(num_hidden)}
    signs = {f"P{i}": np.ones(m0[i]["b"].size) for i in range(num_hidden)}

    def matrices(i):
        mean = m0[i]["w"].T @ m1[i]["w"] + np.outer(m0[i]["b"], m1[i]["b"]) + m0[i + 1]["w"] @ m1[i + 1]["w"].T
        std = s0[i]["w"].T @ s1[i]["w"] + np.outer(s0[i]["b"], s1[i]["b"]) + s0[i + 1]["w"] @ s1[i + 1]["w"].T
        return mean, std

    def apply(i, cols, d):
        for layers, e in ((m1, d), (s1, np.ones_like(d))):
            layers[i]["w"] = layers[i]["w"][:, cols] * e
            layers[i]["b"] = layers[i]["b"][cols] * e
            layers[i + 1]["w"] = layers[i + 1]["w"][cols] * e[:, None]
        perms[f"P{i}"], signs[f"P{i}"] = perms[f"P{i}"][cols], signs[f"P{i}"][cols] * d

    if init == "forward":  # each layer matched on its incoming weights and bias, from the input up
        for i in range(num_hidden):
            incoming = m0[i]["w"].T @ m1[i]["w"] + np.outer(m0[i]["b"], m1[i]["b"])
            rows, cols = linear_sum_assignment(np.abs(incoming), maximize=True)
            apply(i, cols, np.where(incoming[rows, cols] >= 0, 1.0, -1.0))
    objectives = [sum(wasserstein_terms(G.MeanField(m0, s0), G.MeanField(m1, s1)).values())]
    keys = jax.random.split(jax.random.key(0) if key is None else key, max_sweeps)
    converged, sweeps = False, 0
    for sweep in range(max_sweeps):
        sweeps += 1
        gain = 0.0
        for i in np.asarray(jax.random.permutation(keys[sweep], num_hidden)):
            mean, std = matrices(int(i))
            rows, cols = linear_sum_assignment(np.abs(mean) + std, maximize=True)
            improvement = float(np.sum(np.abs(mean[rows, cols]) + std[rows, cols]) - np.trace(mean + std))
            if improvement <= tol:
                continue
            apply(int(i), cols, np.where(mean[rows, cols] >= 0, 1.0, -1.0))
            gain += improvement
        objectives.append(objectives[-1] + gain)
        if gain == 0.0:
            converged = True
            break
    return SignedAlignment(perms, signs, np.asarray(objectives), sweeps, converged)
