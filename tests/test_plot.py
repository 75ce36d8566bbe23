"""Tests of wvi.plot: the style applies, ellipses have the right geometry, helpers label what they draw."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from wvi import plot  # noqa: E402


def test_style_and_colours_are_stable():
    plot.set_style()
    assert plt.rcParams["axes.grid"]
    assert plot.color("BBVI-path") == plot.color("BBVI-path")
    assert plot.color("BBVI-path") != plot.color("BBVI-rep")


def test_ellipse_axes_are_two_standard_deviations():
    fig, ax = plt.subplots()
    cov = np.array([[4.0, 0.0], [0.0, 1.0]])
    patch = plot.ellipse(ax, [1.0, 2.0], cov, num_std=2.0)
    assert np.isclose(patch.width, 8.0) and np.isclose(patch.height, 4.0)  # 2·2·σ along each principal axis
    assert np.isclose(patch.angle % 180, 0.0)
    plt.close(fig)


def test_density_trajectory_and_curves_draw_labelled_artists():
    fig, ax = plt.subplots()
    plot.density(ax, lambda x: -0.5 * np.sum(x**2, axis=-1), (-2, 2), (-2, 2), num=20)
    line = plot.trajectory(ax, np.array([[0.0, 0.0], [1.0, 1.0]]), "BBVI-path")
    assert line.get_label() == "BBVI-path" and ax.get_xlabel() == "$x_1$"
    line = plot.loglog(ax, [1, 2, 4], [1, 0.5, 0.25], "err", slope=-1.0)
    assert line.get_label() == "err (slope -1.00)"
    plt.close(fig)


def test_short_log_axes_get_several_labels():
    fig, ax = plt.subplots()
    plot.loglog(ax, [1e-3, 2e-3, 4e-3], [0.02, 0.01, 0.005], "err")
    fig.canvas.draw()
    low, high = ax.get_ylim()
    labels = [t.get_text() for t in ax.yaxis.get_ticklabels() if low <= t.get_position()[1] <= high]
    assert len([text for text in labels if text]) >= 3, labels  # 1-2-5 ticks, not a single power of ten
    plt.close(fig)


def test_log_axis_extended_to_labelled_values():
    """`extend`: the limits widen to the nearest 1-2-5 labels outside the data, so the lowest curve sits above a
    label (0.22 → 0.2), and bad limits are refused."""
    fig, ax = plt.subplots()
    ax.semilogy([0, 1], [0.22, 6.3])
    plot.label_log_axis(ax.yaxis, 0.22, 6.3, extend=True)
    np.testing.assert_allclose(ax.get_ylim(), (0.2, 10.0))
    plot.label_log_axis(ax.xaxis, 0.5, 2.0, extend=True)  # already on labels: unchanged
    np.testing.assert_allclose(ax.get_xlim(), (0.5, 2.0))
    with pytest.raises(ValueError, match="0 < low < high"):
        plot.label_log_axis(ax.yaxis, 0.0, 1.0, extend=True)
    plt.close(fig)


def test_ensemble_figure_pieces():
    fig, ax = plt.subplots()
    plot.histogram(ax, np.random.default_rng(0).normal(size=200), np.linspace(-3, 3, 13), "DLE")
    points = plot.particles(ax, np.zeros((5, 2)), "DRLE")
    line = plot.predictive_band(ax, np.arange(4.0), np.zeros(4), np.ones(4), "DE")
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["DE", "DLE", "DRLE"] or set(labels) == {"DE", "DLE", "DRLE"}
    assert ax.get_ylabel() == "density" and points.get_offsets().shape == (5, 2)
    assert np.allclose(line.get_color(), plot.color("DE"))
    plt.close(fig)


def test_animation_is_embedded_html_and_mixture_ellipses_draw():
    fig, ax = plt.subplots()
    plot.mixture_ellipses(ax, np.zeros((2, 2)), np.stack([np.eye(2)] * 2), np.array([0.3, 0.7]), label="GFlow-VI")
    assert len(ax.patches) == 2 and ax.get_legend_handles_labels()[1] == ["GFlow-VI"]
    (line,) = ax.plot([], [])
    html = plot.animation(fig, lambda i: line.set_data([0, i], [0, i]), 3)
    assert "<script" in html.data and "img" in html.data
    # the player works offline: no Font Awesome stylesheet from a CDN, its icons replaced by characters
    assert "font-awesome" not in html.data and 'class="fa' not in html.data and "▶" in html.data


def test_contours_draw_lines_of_the_density():
    fig, ax = plt.subplots()
    cs = plot.contours(ax, lambda x: -0.5 * np.sum(x**2, axis=-1), (-3, 3), (-3, 3), levels=3)
    assert len(cs.levels) >= 3 and 0 <= min(cs.levels) and max(cs.levels) <= 1  # exp(−‖x‖²/2) peaks at 1
    plt.close(fig)


def test_barrier_curve_draws_the_curve_the_chord_and_the_barrier():
    from wvi.barrier import BarrierCurve
    fig, ax = plt.subplots()
    curve = BarrierCurve(np.linspace(0, 1, 5), np.array([1.0, 1.5, 2.0, 1.5, 1.0]), 1.0, 0.5)
    line = plot.barrier_curve(ax, curve, "naive")
    assert line.get_label() == "naive" and line.get_color() == plot.color("naive")
    assert len(ax.lines) == 3
    np.testing.assert_allclose(ax.lines[2].get_ydata(), [1.0, 2.0])  # the barrier segment, chord to curve at τ = 0.5
    assert "τ" in ax.get_xlabel()
    plt.close(fig)


def test_plane_slice_marks_the_named_points():
    fig, ax = plt.subplots()
    xs, ys = np.linspace(0, 1, 5), np.linspace(0, 2, 6)
    values = -np.add.outer(ys ** 2, xs ** 2)
    plot.plane_slice(ax, xs, ys, values, {"q0": (0.0, 0.0), "q1": (1.0, 2.0)}, floor=-3.0)
    assert [t.get_text() for t in ax.texts] == ["q0", "q1"]
    # a point in the right half is labelled to its left, so the label stays inside the axes
    assert [t.get_ha() for t in ax.texts] == ["left", "right"]
    fig.canvas.draw()
    box = ax.get_window_extent()
    assert all(t.get_window_extent().x1 <= box.x1 + 1 for t in ax.texts)
    plt.close(fig)


def test_barrier_bars_and_sweeps_label_what_they_draw():
    fig, (a, b) = plt.subplots(1, 2)
    plot.barrier_bars(a, ["mlp-mnist", "resnet20"], [1.2, float("nan")], [0.01, float("nan")])
    assert [t.get_text() for t in a.get_xticklabels()] == ["mlp-mnist", "resnet20"]
    assert sum(t.get_text() == "not run" for t in a.texts) == 2 and a.get_ylabel() == "test barrier (nats / point)"
    assert [t.get_text() for t in a.get_legend().get_texts()] == ["naive", "aligned"]
    plot.barrier_sweep(b, [128, 512], [1.0, 0.5], [0.1, 0.05], "width", "MLP")
    assert b.get_xscale() == "log" and b.get_xlabel() == "width" and len(b.lines) == 2
    plt.close(fig)
    fig, ax = plt.subplots()  # several pairs per point: mean ± sd with error bars, each pair a dot
    plot.barrier_sweep(ax, [32, 64], [[1.0, 1.2, 1.1], [1.5, 1.6, 1.7]], [[0.0, 0.1, 0.0], [0.0, 0.0, 0.0]], "width")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["naive (mean ± sd of 3)", "aligned (mean ± sd of 3)"]
    np.testing.assert_allclose(ax.containers[0].lines[0].get_ydata(), [1.1, 1.6])
    plt.close(fig)
    fig, ax = plt.subplots()  # points with different numbers of pairs: no sd at a point with one pair
    plot.pairs_line(ax, [1, 2, 3], [[1.0, 1.2, 1.4], [0.5], [0.2, 0.4]], "-", "C0", "aligned")
    assert ax.get_legend_handles_labels()[1] == ["aligned (mean ± sd of the pairs)"]
    np.testing.assert_allclose(ax.containers[0].lines[0].get_ydata(), [1.2, 0.5, 0.3])
    np.testing.assert_allclose([len(line.get_ydata()) for line in ax.lines[-2:]], [3, 2])  # dots of the 3 and the 2
    plt.close(fig)


def test_barrier_sweep_marks_the_points_a_verdict_leaves_out():
    fig, ax = plt.subplots()
    plot.barrier_sweep(ax, [0.1, 0.3, 1.0], [0.4, 1.6, 1.5], [0.1, 0.0, 0.0], "prior std", excluded={0.1: "collapsed"})
    assert [t.get_text() for t in ax.texts] == ["collapsed"]
    (band,) = [p for p in ax.patches if p.get_facecolor()[:3] == pytest.approx((0.85,) * 3)]
    lo, hi = band.get_x(), band.get_x() + band.get_width()
    assert lo < 0.1 < hi < 0.3  # the band covers 0.1 and stops short of the next point
    with pytest.raises(ValueError, match="excluded: \\[0.2\\] are not points of xs"):
        plot.barrier_sweep(ax, [0.1, 0.3], [1, 2], [0, 0], "prior std", excluded={0.2: "collapsed"})
    plt.close(fig)


@pytest.mark.parametrize("n, ncols, rows", [(1, None, 1), (4, 2, 2), (5, None, 2), (3, 3, 1)])
def test_panels_are_at_most_three_a_row_and_fit_the_column(n, ncols, rows):
    fig, axes = plot.panels(n, ncols, panel_size=(5.0, 4.0), sharey=True)
    assert len(axes) == n and len(fig.axes) == n  # unused cells removed
    assert len({ax.get_subplotspec().rowspan.start for ax in axes}) == rows
    width, height = fig.get_size_inches()
    assert width <= plot.MAX_WIDTH and height == pytest.approx(rows * 4.0 * width / (5.0 * (ncols or min(n, 3))))
    plt.close(fig)


@pytest.mark.parametrize("n, ncols, match", [(0, None, "n must be a positive integer"), (4, 4, "ncols must be")])
def test_panels_reject_more_than_three_a_row(n, ncols, match):
    with pytest.raises(ValueError, match=match):
        plot.panels(n, ncols)


def test_methods_compared_in_one_figure_have_distinct_colours():
    part3 = ("rep-RKL", "path-RKL", "path-FKL", "path-χ²", "path-Hellinger", "NUTS")
    assert len({plot.color(m) for m in part3}) == len(part3)
    gaussian_vi = ("BBVI-rep", "BBVI-path", "BW-SGD", "FB-GVI", "proximal BBVI", "NGVI", "batch-and-match",
                   "batch-and-match, B = 64", "exact ODE")
    assert len({plot.color(m) for m in gaussian_vi}) == len(gaussian_vi)


def test_diagram_draws_a_box_per_part_and_an_arrow_per_dependency():
    fig, ax = plt.subplots()
    plot.diagram(ax, {"I": (0.2, 0.5, "Part I"), "II": (0.8, 0.5, "Part II")}, [("I", "II", "path estimator")])
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["Part I", "Part II", "path estimator"] and len(ax.patches) == 3
    # the arrow runs between the boxes' borders, not from centre to centre across their text (box width 0.26)
    fig.canvas.draw()
    arrow = ax.patches[2]
    path = arrow.get_path()  # data coordinates; a closing vertex carries no position
    ends = path.vertices[path.codes != path.CLOSEPOLY, 0]
    assert ends.min() >= 0.2 + 0.13 and ends.max() <= 0.8 - 0.13, ends
    with pytest.raises(ValueError, match=r"not in boxes: \['III'\]"):
        plot.diagram(ax, {"I": (0.2, 0.5, "Part I")}, [("I", "III")])
    plt.close(fig)


def test_band_draws_the_median_and_the_spread_and_skips_diverged_runs():
    fig, ax = plt.subplots()
    runs = np.array([[1.0, 0.5, 0.1], [2.0, 1.0, np.nan], [3.0, 1.5, 0.3]])
    line = plot.band(ax, [0, 1, 2], runs, "FB-GVI")
    assert line.get_label() == "FB-GVI" and ax.get_yscale() == "log"
    np.testing.assert_allclose(line.get_ydata(), [2.0, 1.0, 0.2])  # the NaN run is left out of the last median
    assert len(ax.collections) == 1  # the 10-90% band
    with pytest.raises(ValueError, match="runs"):
        plot.band(ax, [0, 1], runs, "FB-GVI")
    plt.close(fig)


def test_step_size_sweep_marks_unstable_step_sizes():
    fig, ax = plt.subplots()
    final = np.array([[1.0, 3.0], [0.1, 0.3], [np.inf, np.nan]])
    line = plot.step_size_sweep(ax, [1e-3, 1e-2, 1e-1], final, np.array([True, True, False]), "BW-SGD",
                                cross_height=0.9)
    np.testing.assert_allclose(line.get_ydata()[:2], [2.0, 0.2])
    assert np.isnan(line.get_ydata()[2])
    crosses = ax.lines[-1]
    np.testing.assert_allclose(crosses.get_xdata(), [1e-1])
    np.testing.assert_allclose(crosses.get_ydata(), [0.9])
    plt.close(fig)


def test_comparison_draws_the_sweep_and_the_budget_runs_of_every_stable_method():
    from wvi.gaussian_vi import Comparison

    grid = np.array([1e-2, 1e-1])
    result = Comparison(grid, {"BW-SGD": np.array([[0.1, 0.2], [np.nan, np.nan]]), "NGVI": np.full((2, 2), np.nan)},
                        {"BW-SGD": np.array([True, False]), "NGVI": np.array([False, False])},
                        {"BW-SGD": 1e-2, "NGVI": float("nan")},
                        {"BW-SGD": np.array([0, 10, 20]), "NGVI": np.array([0, 10, 20])},
                        {"BW-SGD": np.array([[1.0, 0.5, 0.2], [1.0, 0.4, 0.1]]), "NGVI": np.full((2, 3), np.nan)})
    fig, axes = plt.subplots(1, 2)
    plot.comparison(axes, result, "W2", floor=0.05)
    assert [line.get_label() for line in axes[1].lines] == ["BW-SGD", "reference floor"]  # NGVI had no stable step
    assert axes[1].get_xscale() == "log" and axes[0].get_xscale() == "log"
    with pytest.raises(ValueError, match="no methods"):
        plot.comparison(axes, result._replace(curves={}), "W2")
    plt.close(fig)
    fig, axes = plt.subplots(1, 2)
    plot.comparison(axes, result, "W2", resolution=0.3)  # distances below 0.3 are drawn at 0.3
    np.testing.assert_allclose(axes[1].lines[0].get_ydata(), [1.0, 0.45, 0.3])
    assert np.isnan(result.curves["BW-SGD"]).sum() == 0 and result.curves["BW-SGD"][1, 2] == 0.1  # not modified
    plt.close(fig)


def test_variance_ratios_draw_each_pair_and_their_mean_per_layer():
    from wvi.barrier import VarianceCurve
    taus = np.linspace(0, 1, 3)
    runs = [VarianceCurve(taus, np.ones((3, 2)), np.array([[1.0, 1.0], [r, r / 2], [1.0, 1.0]])) for r in (0.4, 0.6)]
    fig, axes = plt.subplots(1, 2)
    plot.variance_ratios(axes, {"naive": runs})
    # per panel: two thin pair lines, the mean, the dotted 1
    assert len(axes[1].lines) == 4 and axes[1].get_title() == "hidden layer 2"
    np.testing.assert_allclose(axes[1].lines[2].get_ydata(), [1.0, 0.25, 1.0])
    assert axes[0].get_legend().get_texts()[0].get_text() == "naive (mean of 2)"
    plt.close(fig)


def test_alignment_times_draw_the_median_and_the_range_over_pairs():
    fig, ax = plt.subplots()
    plot.alignment_times(ax, [64, 128], {"VI, Wasserstein cost": [[0.1, 0.2, 0.4], [1.0, 2.0, 3.0]],
                                         "MAP, weight matching": [[0.01, 0.01, 0.02], [0.1, 0.2, 0.1]]}, "MLP")
    assert ax.get_xscale() == ax.get_yscale() == "log" and ax.get_ylabel() == "alignment time (s)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["VI, Wasserstein cost", "MAP, weight matching"]
    np.testing.assert_allclose(ax.containers[0].lines[0].get_ydata(), [0.2, 2.0])
    np.testing.assert_allclose(ax.containers[0].lines[2][0].get_segments()[1][:, 1], [1.0, 3.0])  # the range
    plt.close(fig)


def test_sweep_order_barriers_mark_order_zero_the_noise_and_the_naive_barrier():
    from wvi.barrier import SweepOrders
    study = SweepOrders([{}] * 3, np.zeros(3), np.array([10.0, 11.0, 12.0]), np.ones(3), np.array([1.0, 0.2, 0.1]),
                        np.array([0.5, 0.9, 0.7]), np.array([0.5, 0.51]))
    fig, ax = plt.subplots()
    plot.sweep_order_barriers(ax, study, naive_barrier=1.2, noise_sd=0.05)
    order0, others, naive = ax.lines[-4:-1]
    np.testing.assert_allclose(order0.get_xydata(), [[10.0, 0.5]])
    np.testing.assert_allclose(others.get_ydata(), [0.9, 0.7])
    np.testing.assert_allclose(naive.get_ydata(), [1.2, 1.2])
    np.testing.assert_allclose(ax.containers[0].lines[2][0].get_segments()[0][:, 1], [0.4, 0.6])  # ±2 noise sd
    assert ax.get_xlabel() == "W2²(q0, P#q1)" and ax.get_ylim()[0] == 0
    plt.close(fig)
    # panels sharing the y axis: a later panel's higher barriers stay inside the shared range
    fig, axes = plt.subplots(1, 2, sharey=True)
    plot.sweep_order_barriers(axes[0], study, naive_barrier=1.2, noise_sd=0.05)
    plot.sweep_order_barriers(axes[1], study._replace(barriers=np.array([1.9, 0.9, 0.7])), 1.2, 0.05)
    fig.canvas.draw()
    low, high = axes[0].get_ylim()
    assert low == 0 and high > 1.9 + 2 * 0.05
    plt.close(fig)
