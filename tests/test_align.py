"""Tests of wvi.align: permutation specs, `permute`, and Algorithm 1 (`align`) with its three costs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wvi import align, networks
from wvi import gaussian as G


def _f32(tree):
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), tree)


def _inverse_ok(planted, found):
    """found undoes planted: P_found # (P_planted # q) = q, i.e. planted[found] = identity."""
    return all(np.array_equal(np.asarray(planted[p])[np.asarray(found[p])], np.arange(len(planted[p]))) for p in planted)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_permuted_mlp_computes_the_same_function_in_float32(activation):
    params = _f32(networks.mlp_he_init(jax.random.key(0), [20, 64, 32, 48, 5]))
    spec = align.mlp_spec(params)
    perms = align.random_perms(jax.random.key(1), spec, params)
    assert not all(np.array_equal(p, np.arange(len(p))) for p in perms.values())
    x = jax.random.normal(jax.random.key(2), (16, 20), jnp.float32)
    out, out_p = networks.mlp_apply(params, x, activation), networks.mlp_apply(align.permute(params, spec, perms), x, activation)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out_p, out, atol=1e-5)


@pytest.mark.parametrize("norm", ["frn", "layernorm"])
def test_permuted_resnet20_computes_the_same_function_in_float32(norm):
    params = _f32(networks.resnet20_init(jax.random.key(0), num_classes=10, in_channels=3, width=1, norm=norm))
    spec = align.resnet20_spec(params)
    sizes = align.check_spec(spec, params)
    assert sizes["res0"] == 16 and sizes["res2"] == 64 and len(sizes) == 3 + 9
    perms = align.random_perms(jax.random.key(1), spec, params)
    x = jax.random.normal(jax.random.key(2), (4, 12, 12, 3), jnp.float32)
    out, out_p = networks.resnet20_apply(params, x), networks.resnet20_apply(align.permute(params, spec, perms), x)
    np.testing.assert_allclose(out_p, out, atol=1e-5)
    # and permuting only the residual stream of group 1 is a real change to the parameters
    assert not np.allclose(align.permute(params, spec, perms)["blocks"][4]["conv2"], params["blocks"][4]["conv2"])


def test_permute_acts_on_means_and_stds_alike():
    mean = networks.mlp_he_init(jax.random.key(0), [3, 6, 2])
    std = jax.tree_util.tree_map(lambda a: 0.1 + jnp.abs(a), mean)
    q = G.meanfield(mean, std)
    spec = align.mlp_spec(mean)
    perms = align.random_perms(jax.random.key(1), spec, mean)
    qp = align.permute(q, spec, perms)
    assert isinstance(qp, G.MeanField)
    np.testing.assert_allclose(qp.mean[0]["w"], mean[0]["w"][:, perms["P0"]])
    np.testing.assert_allclose(qp.std[0]["w"], std[0]["w"][:, perms["P0"]])
    np.testing.assert_allclose(qp.std[1]["w"], std[1]["w"][perms["P0"], :])


def _planted(key, sizes, noise, std_spread=True):
    """A random mean-field network q0 and a permuted, slightly perturbed copy q1."""
    k0, k1, k2, k3 = jax.random.split(key, 4)
    mean = networks.mlp_he_init(k0, sizes)
    std = jax.tree_util.tree_map(lambda a, k: 0.05 * jnp.exp(0.5 * jax.random.normal(k, a.shape)) if std_spread else 0.05 + 0 * a,
                                 mean, _keys_like(k1, mean))
    q0 = G.meanfield(mean, std)
    spec = align.mlp_spec(mean)
    perms = align.random_perms(k2, spec, mean)
    noisy = jax.tree_util.tree_map(lambda a, k: a + noise * jax.random.normal(k, a.shape), mean, _keys_like(k3, mean))
    return q0, align.permute(G.MeanField(noisy, q0.std), spec, perms), spec, perms


def _keys_like(key, tree):
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return jax.tree_util.tree_unflatten(treedef, list(jax.random.split(key, len(leaves))))


@pytest.mark.parametrize("cost", align.COSTS)
def test_align_recovers_a_planted_permutation(cost):
    q0, q1, spec, planted = _planted(jax.random.key(3), [10, 32, 32, 32, 4], noise=1e-3)
    result = align.align(q0, q1, spec, cost=cost, key=jax.random.key(4))
    assert _inverse_ok(planted, result.perms)
    assert np.all(np.diff(result.objectives) >= -1e-9)  # the objective never decreases across sweeps
    assert result.seconds > 0
    assert result.objectives[-1] > result.objectives[0]
    aligned = align.permute(q1, spec, result.perms)
    np.testing.assert_allclose(aligned.mean[1]["w"], q0.mean[1]["w"], atol=1e-2)


def test_align_recovers_a_planted_resnet_permutation_with_the_wasserstein_cost():
    mean = networks.resnet20_init(jax.random.key(0), num_classes=3, in_channels=1, width=1)
    q0 = G.meanfield(mean, 0.02)
    spec = align.resnet20_spec(mean)
    planted = align.random_perms(jax.random.key(1), spec, mean)
    noisy = jax.tree_util.tree_map(lambda a, k: a + 1e-3 * jax.random.normal(k, a.shape), mean, _keys_like(jax.random.key(2), mean))
    q1 = align.permute(G.MeanField(noisy, q0.std), spec, planted)
    result = align.align(q0, q1, spec, key=jax.random.key(5))
    assert _inverse_ok(planted, result.perms)


def test_only_the_wasserstein_cost_sees_permuted_standard_deviations():
    # Fig. A13 of Rossi et al.: two Gaussians on one 2-unit layer, mirror images about the diagonal with equal means.
    q0 = G.meanfield({"w": jnp.array([1.0, 1.0])}, {"w": jnp.array([1.0, 0.2])})
    q1 = G.meanfield({"w": jnp.array([1.0, 1.0])}, {"w": jnp.array([0.2, 1.0])})
    spec = align.permutation_spec({"['w']": ("P",)})
    assert align.align(q0, q1, spec, cost="kl").perms["P"].tolist() == [0, 1]
    assert align.align(q0, q1, spec, cost="mean").perms["P"].tolist() == [0, 1]
    assert align.align(q0, q1, spec, cost="wasserstein").perms["P"].tolist() == [1, 0]
    assert align.align(q0, q1, spec, cost="kl-full").perms["P"].tolist() == [1, 0]  # KL(P#q1 ‖ q0) sees the stds


def test_kl_full_objective_is_the_kl_divergence_it_minimises():
    # KL(P#q1 ‖ q0) = ½ Σ [s1²/s0² + (m0 − m1)²/s0² − 1 + log s0²/s1²] over the permuted q1: the "kl-full"
    # objective is −2 KL + the terms free of P (the log-determinants and the count), exactly in float64
    q0, q1, spec, _ = _planted(jax.random.key(7), [5, 8, 3], noise=0.3)

    def kl(q):
        a, b = (jax.tree_util.tree_leaves(t) for t in (q0.mean, q.mean))
        s0, s1 = (jax.tree_util.tree_leaves(t) for t in (q0.std, q.std))
        return 0.5 * sum(float(jnp.sum(v1 ** 2 / v0 ** 2 + (m0 - m1) ** 2 / v0 ** 2 - 1 + 2 * jnp.log(v0 / v1)))
                         for m0, m1, v0, v1 in zip(a, b, s0, s1))

    free = sum(float(jnp.sum(2 * jnp.log(v0 / v1) - 1)) for v0, v1 in zip(
        jax.tree_util.tree_leaves(q0.std), jax.tree_util.tree_leaves(q1.std)))
    result = align.align(q0, q1, spec, cost="kl-full")
    aligned = align.permute(q1, spec, result.perms)
    np.testing.assert_allclose(kl(aligned), 0.5 * (free - result.objectives[-1]), rtol=1e-9)
    assert kl(aligned) <= kl(q1) + 1e-12
    # the paper's "kl" cost drops Σ (P s1)²/s0²; with stds that differ by unit, it does depend on P
    other = align.align(q0, q1, spec, cost="kl")
    assert kl(align.permute(q1, spec, other.perms)) >= kl(aligned) - 1e-9


def test_objective_is_the_wasserstein_distance_it_minimises():
    q0, q1, spec, _ = _planted(jax.random.key(7), [5, 8, 3], noise=0.3)

    # W2²(P#q1, q0) = ‖m0‖² + ‖m1‖² + ‖s0‖² + ‖s1‖² − 2·objective: exact with the default float64 products, up
    # to float32 rounding (1e-7 relative of the objective) with float32 ones
    norms = sum(float(jnp.sum(a ** 2)) for a in jax.tree_util.tree_leaves((q0.mean, q1.mean, q0.std, q1.std)))
    for precision, rtol in (("float64", 1e-9), ("float32", 1e-6)):
        result = align.align(q0, q1, spec, precision=precision)
        w2 = G.w2_squared(q0, align.permute(q1, spec, result.perms))
        np.testing.assert_allclose(w2, norms - 2 * result.objectives[-1], rtol=rtol)
        assert w2 <= G.w2_squared(q0, q1) + 1e-12


def test_specs_that_do_not_fit_name_the_leaf():
    params = networks.mlp_he_init(jax.random.key(0), [3, 4, 2])
    spec = align.mlp_spec(params)
    missing = align.permutation_spec({k: v for k, v in spec.axes_to_perm.items() if k != "[1]['b']"})
    with pytest.raises(ValueError, match=r"no entry for leaf \[1\]\['b'\]"):
        align.check_spec(missing, params)
    wrong = align.mlp_spec(networks.mlp_he_init(jax.random.key(0), [3, 5, 2]))  # hidden width 5, not 4
    bad = jax.tree_util.tree_map(lambda a: a, params)
    bad[0]["b"] = jnp.zeros(5)
    with pytest.raises(ValueError, match=r"permutation 'P0' acts on axis 0 of leaf \[0\]\['b'\] \(size 5\)"):
        align.check_spec(spec, bad)
    with pytest.raises(ValueError, match=r"leaf \[0\]\['w'\], which has shape \(3, 4\)"):
        align.check_spec(align.permutation_spec({**spec.axes_to_perm, "[0]['w']": ("P0",)}), params)
    with pytest.raises(ValueError, match=r"names leaf \[2\]\['w'\]"):
        align.check_spec(align.mlp_spec(networks.mlp_he_init(jax.random.key(0), [3, 4, 4, 2])), params)
    del wrong


def test_bad_alignment_arguments():
    params = networks.mlp_he_init(jax.random.key(0), [3, 4, 2])
    q = G.meanfield(params, 0.1)
    spec = align.mlp_spec(params)
    with pytest.raises(ValueError, match="unknown cost 'w2'; expected one of 'wasserstein', 'mean', 'kl', 'kl-full'"):
        align.align(q, q, spec, cost="w2")
    with pytest.raises(ValueError, match="must be a wvi.gaussian.MeanField for cost 'wasserstein'"):
        align.align(params, params, spec)
    assert align.align(params, params, spec, cost="mean").sweeps == 1  # plain parameters: MAP weight matching
    with pytest.raises(ValueError, match=r"perms\['P0'\] must be a permutation of range\(4\)"):
        align.permute(params, spec, {"P0": np.array([0, 1, 1, 2])})
    other = G.meanfield(networks.mlp_he_init(jax.random.key(0), [3, 4, 3]), 0.1)
    with pytest.raises(ValueError, match="same parameter structure and shapes"):
        align.align(q, other, spec)


@pytest.mark.parametrize("cost", align.COSTS)
def test_objective_never_decreases_across_sweeps(cost):
    # Algorithm 1 keeps an assignment only when it improves the objective: on a hard problem (large noise, several
    # sweeps) the objective after each sweep is non-decreasing for every cost (formerly a ledger row of Part V).
    q0, q1, spec, _ = _planted(jax.random.key(11), [8, 24, 24, 24, 3], noise=0.5)
    for order in range(3):
        result = align.align(q0, q1, spec, cost=cost, key=jax.random.key(order))
        assert result.sweeps >= 2
        assert np.all(np.diff(result.objectives) >= -1e-9 * abs(result.objectives[-1]))
        if cost not in ("kl", "kl-full"):  # float32 products: non-decreasing up to their rounding, 1e-7 relative
            fast = align.align(q0, q1, spec, cost=cost, key=jax.random.key(order), precision="float32")
            assert np.all(np.diff(fast.objectives) >= -1e-6 * abs(fast.objectives[-1]))


def test_fig_a13_toy_without_ties():
    # Fig. A13 of Rossi et al. with the second unit's mean moved to 1.2 in both distributions (the symmetry chapter's
    # toy): the mean and KL costs strictly prefer the identity, the Wasserstein cost strictly prefers the swap.
    q0 = G.meanfield({"w": jnp.array([1.0, 1.2])}, {"w": jnp.array([1.0, 0.2])})
    q1 = G.meanfield({"w": jnp.array([1.0, 1.2])}, {"w": jnp.array([0.2, 1.0])})
    spec = align.permutation_spec({"['w']": ("P",)})
    for cost, expected in (("kl", [0, 1]), ("mean", [0, 1]), ("wasserstein", [1, 0]), ("kl-full", [1, 0])):
        result = align.align(q0, q1, spec, cost=cost)
        assert result.perms["P"].tolist() == expected, cost
    # and with the swap as the starting point, the mean and KL costs move back to the identity (no tie)
    for cost in ("kl", "mean"):
        assert align.align(q0, q1, spec, cost=cost, init_perms={"P": np.array([1, 0])}).perms["P"].tolist() == [0, 1]


# --- the fast coordinate descent (issue 22): skipped assignments, rank-k term updates, stopping rule ---------------

def _rows(x, axis):
    """x with `axis` first, flattened to (n, K)."""
    return np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1)


def _reference_align(q0, q1, spec, cost, key, max_sweeps=100, tol=1e-12):
    """Algorithm 1 written plainly: every visit recomputes its assignment matrix from the permuted parameters and
    solves it (no cache, no skipping, no rank updates); the oracle the fast `align` must match."""
    from scipy.optimize import linear_sum_assignment

    m0, s0 = align._arrays(q0, cost, "q0")
    m1, s1 = align._arrays(q1, cost, "q1")
    perms = align.identity_perms(spec, q0)
    names = sorted(perms)
    for sweep_key in jax.random.split(key, max_sweeps):
        changed = False
        for i in np.asarray(jax.random.permutation(sweep_key, len(names))):
            p = names[int(i)]
            a = 0.0
            for leaf, axis in spec.perm_to_axes[p]:
                pm = align._permute_leaves({leaf: m1[leaf]}, spec, perms, skip=(leaf, axis))[leaf]
                a0, a1 = _rows(m0[leaf], axis), _rows(pm, axis)
                if cost == "mean":
                    a = a + a0 @ a1.T
                elif cost == "wasserstein":
                    ps = align._permute_leaves({leaf: s1[leaf]}, spec, perms, skip=(leaf, axis))[leaf]
                    a = a + a0 @ a1.T + _rows(s0[leaf], axis) @ _rows(ps, axis).T
                else:
                    w = 1.0 / _rows(s0[leaf], axis) ** 2
                    a = a + (2 * a0 * w) @ a1.T - w @ (a1 ** 2).T
                    if cost == "kl-full":
                        ps = align._permute_leaves({leaf: s1[leaf]}, spec, perms, skip=(leaf, axis))[leaf]
                        a = a - w @ (_rows(ps, axis) ** 2).T
            cols = linear_sum_assignment(a, maximize=True)[1]
            if a[np.arange(len(cols)), cols].sum() > a[np.arange(len(cols)), perms[p]].sum() + tol:
                perms[p], changed = cols, True
        if not changed:
            break
    return perms


def _hard_pair(key, make, noise=0.5):
    """A planted pair with large noise: several sweeps of real work."""
    k0, k1, k2 = jax.random.split(key, 3)
    mean = make(k0)
    q0 = G.meanfield(mean, jax.tree_util.tree_map(lambda a: 0.05 + 0 * a, mean))
    spec = align.resnet20_spec(mean) if isinstance(mean, dict) else align.mlp_spec(mean)
    noisy = jax.tree_util.tree_map(lambda a, k: a + noise * jax.random.normal(k, a.shape), mean, _keys_like(k1, mean))
    std = jax.tree_util.tree_map(lambda a, k: 0.05 * jnp.exp(0.5 * jax.random.normal(k, a.shape)), mean, _keys_like(k2, mean))
    return q0, align.permute(G.meanfield(noisy, std), spec, align.random_perms(k2, spec, mean)), spec


@pytest.mark.parametrize("cost", align.COSTS)
@pytest.mark.parametrize("net", ["mlp", "resnet"])
def test_fast_align_follows_the_plain_coordinate_descent(cost, net):
    make = (lambda k: networks.mlp_he_init(k, [12, 40, 40, 40, 3])) if net == "mlp" else \
        (lambda k: networks.resnet20_init(k, num_classes=3, in_channels=1, width=1))
    q0, q1, spec = _hard_pair(jax.random.key(21), make)
    for order in range(2):
        key = jax.random.key(order)
        result = align.align(q0, q1, spec, cost=cost, key=key)
        expected = _reference_align(q0, q1, spec, cost, key)
        assert all(np.array_equal(result.perms[p], expected[p]) for p in expected), (cost, net, order)
        assert result.converged and result.sweeps >= 2
        # skipping: a visit whose matrix did not change since its last solve solves nothing
        assert result.assignments < result.sweeps * len(expected)


def test_term_rank_updates_equal_the_full_product():
    q0, q1, spec = _hard_pair(jax.random.key(3), lambda k: networks.resnet20_init(k, num_classes=3, in_channels=1, width=1))
    m0, s0 = align._arrays(q0, "wasserstein", "q0")
    m1, s1 = align._arrays(q1, "wasserstein", "q1")
    leaf, axis = "['blocks'][4]['conv1']", 3  # a conv kernel whose input channels carry another permutation
    term = align._Term(leaf, axis, spec, m0, s0, m1, s1, "wasserstein", np, np.float64)
    perms = align.identity_perms(spec, q0)
    term(perms)
    other = spec.axes_to_perm[leaf][2]
    for k in range(4):  # move a few units (a rank update), then all of them (a full product)
        n = len(perms[other])
        swap = np.arange(n)
        swap[[k, k + 1]] = swap[[k + 1, k]] if k < 3 else swap[[k, k + 1]]
        perms[other] = perms[other][swap] if k < 3 else np.asarray(jax.random.permutation(jax.random.key(k), n))
        fresh = align._Term(leaf, axis, spec, m0, s0, m1, s1, "wasserstein", np, np.float64)
        np.testing.assert_allclose(term(perms), fresh(perms), rtol=1e-12, atol=1e-12)


def test_stopping_rule_and_relative_tolerance():
    q0, q1, spec = _hard_pair(jax.random.key(5), lambda k: networks.mlp_he_init(k, [12, 64, 64, 64, 3]), noise=1.0)
    exact = align.align(q0, q1, spec, key=jax.random.key(1))
    assert exact.converged and len(exact.objectives) == exact.sweeps + 1
    assert np.all(np.diff(exact.objectives) >= -1e-9 * abs(exact.objectives[-1]))
    loose = align.align(q0, q1, spec, key=jax.random.key(1), rtol=1e-2)
    assert loose.sweeps < exact.sweeps and not loose.converged
    assert loose.objectives[-1] <= exact.objectives[-1] + 1e-9
    capped = align.align(q0, q1, spec, key=jax.random.key(1), max_sweeps=1)
    assert capped.sweeps == 1 and not capped.converged
    # each objective after the first adds its sweep's assignment gains: it equals the objective recomputed from the
    # permuted parameters, up to the products' rounding
    m0, s0 = align._arrays(q0, "wasserstein", "q0")
    m1, s1 = align._arrays(q1, "wasserstein", "q1")
    for precision, rel in (("float64", 1e-12), ("float32", 1e-6)):
        result = align.align(q0, q1, spec, key=jax.random.key(1), precision=precision)
        recomputed = align._objective(m0, s0, align._permute_leaves(m1, spec, result.perms),
                                      align._permute_leaves(s1, spec, result.perms), "wasserstein")
        assert result.objectives[-1] == pytest.approx(recomputed, rel=rel)
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="rtol must be a finite number >= 0"):
            align.align(q0, q1, spec, rtol=bad)


def test_precision_products_solver_and_order_options():
    q0, q1, spec = _hard_pair(jax.random.key(8), lambda k: networks.mlp_he_init(k, [12, 48, 48, 3]))
    base = align.align(q0, q1, spec, key=jax.random.key(2))
    variants = [dict(precision="float32"), dict(products="jax", precision="float32")]
    try:
        import lap
    except ImportError:
        lap = None
    if hasattr(lap, "lapjvh"):  # the optional lapx
        variants.append(dict(solver="lapjv"))
    for options in variants:
        other = align.align(q0, q1, spec, key=jax.random.key(2), **options)
        assert all(np.array_equal(base.perms[p], other.perms[p]) for p in base.perms), options
        assert other.objectives[-1] == pytest.approx(base.objectives[-1], rel=1e-6)  # float32 products
    # an explicit visiting order: the same names every sweep
    seen = []
    fixed = align.align(q0, q1, spec, order=lambda k: seen.append(k) or ["P1", "P0"])
    assert seen == list(range(fixed.sweeps)) and fixed.converged
    with pytest.raises(ValueError, match="unknown solver 'hungarian'"):
        align.align(q0, q1, spec, solver="hungarian")
    with pytest.raises(ValueError, match="unknown precision 'float16'"):
        align.align(q0, q1, spec, precision="float16")
    if jax.config.jax_enable_x64:
        jax_f64 = align.align(q0, q1, spec, key=jax.random.key(2), products="jax")
        assert all(np.array_equal(base.perms[p], jax_f64.perms[p]) for p in base.perms)
    else:
        with pytest.raises(ValueError, match="needs jax_enable_x64"):
            align.align(q0, q1, spec, products="jax", precision="float64")


def test_agreement_is_the_mean_share_of_units_with_the_same_partner():
    a = {"P_0": np.array([0, 1, 2, 3]), "P_1": np.array([1, 0])}
    assert align.agreement(a, a) == 1.0
    b = {"P_0": np.array([0, 1, 3, 2]), "P_1": np.array([0, 1])}  # half of P_0 and none of P_1 the same
    assert align.agreement(a, b) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="must name the same permutations"):
        align.agreement(a, {"P_0": a["P_0"]})
    with pytest.raises(ValueError, match="permutation 'P_1' has 2 units in perms_a and 3 in perms_b"):
        align.agreement(a, {"P_0": a["P_0"], "P_1": np.arange(3)})


# Signed permutations (tanh's sign-flip symmetry): permute_signed and align_signed_mlp


def _signed_pair(seed=0, sizes=(3, 16, 12, 2)):
    params = networks.mlp_he_init(jax.random.key(seed), list(sizes))
    # nonzero biases (He initialisation sets them to zero), so that a bias left unflipped shows
    params = [dict(layer, b=0.3 * jax.random.normal(jax.random.key(100 + seed + i), layer["b"].shape))
              for i, layer in enumerate(params)]
    stds = jax.tree_util.tree_map(
        lambda x: 0.01 + 0.1 * jnp.abs(jax.random.normal(jax.random.key(seed + 1), x.shape)), params)
    q0 = G.meanfield(params, stds)
    rng = np.random.default_rng(seed)
    perms = {f"P{i}": rng.permutation(n) for i, n in enumerate(sizes[1:-1])}
    signs = {f"P{i}": rng.choice([-1.0, 1.0], n) for i, n in enumerate(sizes[1:-1])}
    return q0, perms, signs


def test_signed_permutation_keeps_a_tanh_network_and_changes_a_relu_one():
    q0, perms, signs = _signed_pair()
    moved = align.permute_signed(q0.mean, perms, signs)
    x = jax.random.normal(jax.random.key(5), (10, 3))
    np.testing.assert_allclose(networks.mlp_apply(moved, x, "tanh"), networks.mlp_apply(q0.mean, x, "tanh"), atol=1e-5)
    # the signs are what makes it a symmetry of tanh only: ReLU is not odd
    assert float(jnp.max(jnp.abs(networks.mlp_apply(moved, x, "relu") - networks.mlp_apply(q0.mean, x, "relu")))) > 0.1
    # with all signs +1 it is `permute`
    ones = {p: np.ones_like(s) for p, s in signs.items()}
    plain = align.permute(q0, align.mlp_spec(q0.mean), perms)
    for a, b in zip(jax.tree_util.tree_leaves(align.permute_signed(q0, perms, ones)), jax.tree_util.tree_leaves(plain)):
        np.testing.assert_array_equal(a, b)


def test_signed_permutation_flips_the_means_and_only_permutes_the_stds():
    q0, perms, signs = _signed_pair()
    moved = align.permute_signed(q0, perms, signs)
    p, s = perms["P0"], signs["P0"]
    np.testing.assert_allclose(moved.mean[0]["b"], np.asarray(q0.mean[0]["b"])[p] * s)
    np.testing.assert_allclose(moved.std[0]["b"], np.asarray(q0.std[0]["b"])[p])
    assert np.all(np.asarray(moved.std[1]["w"]) > 0)


def test_align_signed_mlp_undoes_a_planted_signed_permutation():
    q0, perms, signs = _signed_pair()
    q1 = align.permute_signed(q0, perms, signs)
    a = align.align_signed_mlp(q0, q1)
    assert a.converged and float(G.w2_squared(q0, align.permute_signed(q1, a.perms, a.signs))) < 1e-10
    # permutations alone cannot undo the flips: the plain Wasserstein alignment leaves a distance
    b = align.align(q0, q1, align.mlp_spec(q0.mean))
    assert float(G.w2_squared(q0, align.permute(q1, align.mlp_spec(q0.mean), b.perms))) > 1.0


def test_align_signed_mlp_never_lowers_its_objective_and_reaches_the_identity_starts_value():
    q0, _, _ = _signed_pair(0)
    q1, _, _ = _signed_pair(7)  # an unrelated network: no exact match exists
    for init in ("forward", "identity"):
        a = align.align_signed_mlp(q0, q1, key=jax.random.key(3), init=init)
        assert np.all(np.diff(a.objectives) >= 0) and a.converged
        moved = align.permute_signed(q1, a.perms, a.signs)
        direct = sum(float(jnp.vdot(u, v)) for u, v in zip(jax.tree_util.tree_leaves((q0.mean, q0.std)),
                                                            jax.tree_util.tree_leaves((moved.mean, moved.std))))
        assert direct == pytest.approx(a.objectives[-1], rel=1e-9)  # the bookkeeping is the objective
    identity = align.align_signed_mlp(q0, q1, init="identity")
    # the identity start's first value is q1 as it is
    start = sum(float(jnp.vdot(u, v)) for u, v in zip(jax.tree_util.tree_leaves((q0.mean, q0.std)),
                                                       jax.tree_util.tree_leaves((q1.mean, q1.std))))
    assert identity.objectives[0] == pytest.approx(start, rel=1e-9)


def test_align_signed_mlp_ends_at_a_fixed_point_of_the_signed_assignment():
    """At the result, every layer's identity with + signs solves its own signed assignment problem (|A| + B): the
    diagonal of A is >= 0 and no assignment of |A| + B beats its trace. Catches an assignment on A + B or a wrong
    sign rule."""
    from scipy.optimize import linear_sum_assignment

    q0, _, _ = _signed_pair(0)
    q1, _, _ = _signed_pair(7)
    a = align.align_signed_mlp(q0, q1, key=jax.random.key(3))
    moved = align.permute_signed(q1, a.perms, a.signs)
    f = lambda tree: [{k: np.asarray(v, np.float64) for k, v in layer.items()} for layer in tree]  # noqa: E731
    m0, s0, m1, s1 = f(q0.mean), f(q0.std), f(moved.mean), f(moved.std)
    for i in range(len(m0) - 1):
        mean = m0[i]["w"].T @ m1[i]["w"] + np.outer(m0[i]["b"], m1[i]["b"]) + m0[i + 1]["w"] @ m1[i + 1]["w"].T
        std = s0[i]["w"].T @ s1[i]["w"] + np.outer(s0[i]["b"], s1[i]["b"]) + s0[i + 1]["w"] @ s1[i + 1]["w"].T
        assert np.all(np.diag(mean) >= -1e-9)
        rows, cols = linear_sum_assignment(np.abs(mean) + std, maximize=True)
        assert np.trace(mean + std) >= np.sum((np.abs(mean) + std)[rows, cols]) - 1e-9


def test_the_forward_start_recovers_a_plant_where_the_identity_start_stalls():
    q0, perms, signs = _signed_pair(0, sizes=(3, 8, 8, 8, 2))
    q1 = align.permute_signed(q0, perms, signs)
    forward = align.align_signed_mlp(q0, q1)
    identity = align.align_signed_mlp(q0, q1, init="identity")
    assert float(G.w2_squared(q0, align.permute_signed(q1, forward.perms, forward.signs))) < 1e-10
    assert float(G.w2_squared(q0, align.permute_signed(q1, identity.perms, identity.signs))) > 1.0


def test_signed_alignment_rejects_bad_input():
    q0, perms, signs = _signed_pair()
    with pytest.raises(ValueError, match=r"signs\['P1'\]"):
        align.permute_signed(q0, perms, {"P0": signs["P0"], "P1": signs["P1"] * 2})
    with pytest.raises(ValueError, match="signs"):
        align.permute_signed(q0, perms, {"P0": signs["P0"]})
    with pytest.raises(TypeError, match="MeanField"):
        align.align_signed_mlp(q0.mean, q0.mean)
    q_other, _, _ = _signed_pair(sizes=(3, 16, 10, 2))
    with pytest.raises(ValueError, match="same MLP structure"):
        align.align_signed_mlp(q0, q_other)
    with pytest.raises(ValueError, match="init"):
        align.align_signed_mlp(q0, q0, init="random")
    with pytest.raises(ValueError, match="MLP"):
        align.align_signed_mlp(G.meanfield({"w": jnp.ones(2)}, {"w": jnp.ones(2)}),
                               G.meanfield({"w": jnp.ones(2)}, {"w": jnp.ones(2)}))
    with pytest.raises(TypeError, match="dicts"):
        align.permute_signed(q0, list(perms.values()), signs)
    with pytest.raises(TypeError, match="key"):
        align.align_signed_mlp(q0, q0, key=0)
    unchained = jax.tree_util.tree_map(jnp.ones_like, q0)
    unchained.mean[1]["w"] = jnp.ones((5, 12))  # 16 units feed a layer expecting 5 inputs
    with pytest.raises(ValueError, match="size"):
        align.align_signed_mlp(unchained, unchained)


def test_wasserstein_terms_sum_to_the_alignment_objective_and_give_w2():
    q0, perms, _ = _signed_pair(0)
    q1, _, _ = _signed_pair(7)
    spec = align.mlp_spec(q0.mean)
    a = align.align(q0, q1, spec, key=jax.random.key(1))
    moved = align.permute(q1, spec, a.perms)
    terms = align.wasserstein_terms(q0, moved)
    assert sum(terms.values()) == pytest.approx(a.objectives[-1], rel=1e-9)
    norms = sum(align.wasserstein_terms(q, q)["mean"] + align.wasserstein_terms(q, q)["std"] for q in (q0, moved))
    assert norms - 2 * sum(terms.values()) == pytest.approx(float(G.w2_squared(q0, moved)), rel=1e-5)
    with pytest.raises(TypeError, match="MeanField"):
        align.wasserstein_terms(q0.mean, moved)
    with pytest.raises(ValueError, match="same parameter structure"):
        align.wasserstein_terms(q0, _signed_pair(0, sizes=(3, 16, 10, 2))[0])
