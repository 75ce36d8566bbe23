"""One plotting style for the whole book, and the figure pieces the chapters share.

`set_style()` is called by every chapter's setup cell. Methods keep one colour everywhere (`color(name)`), so
"BBVI-path" is the same blue in Part I and Part III.
"""
from __future__ import annotations

import re
import warnings
from typing import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib import patheffects
from matplotlib.patches import Ellipse
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

METHOD_COLORS = {  # a method's index in seaborn's colour-blind palette, or a matplotlib colour name
    "BBVI-rep": 1,
    "BBVI-path": 0,
    "Euler-ODE": 2,
    "exact ODE": 7,
    "Langevin": 4,
    "target": 7,
    "DE": 3,
    "DLE": 0,
    "DRLE": 2,
    "Q* (DLE)": 7,
    "Q* (DRLE)": 5,
    "reverse KL": 0,
    "forward KL": 1,
    "χ²": 2,
    "Hellinger": 4,
    "GFlow-VI": 0,
    "NGFlow-VI": 3,
    "SVGD": 8,
    "naive": 3,
    "aligned": 0,
    "MAP": 2,
    "VI, Wasserstein cost": 0,
    "MAP, weight matching": 2,
    "MAP, Git Re-Basin's code": 7,
    "mixture path": 4,
    "NUTS": 7,
    "rep-RKL": "black",  # beside path-RKL's blue and path-FKL's orange in Part III: not another blue or orange
    "path-RKL": 0,
    "path-FKL": 1,
    "path-χ²": 2,
    "path-Hellinger": 4,
    "BW-SGD": 2,
    "FB-GVI": 3,
    "proximal BBVI": 4,
    "NGVI": 5,
    "batch-and-match": 9,
    "batch-and-match, B = 64": 6,
}


# The book's text column is 784 px wide, and a wider figure is shrunk to fit: at 10 inches (78 px an inch) seaborn's
# 11-pt tick labels render at 12 px and the 10-pt ("small") legends at 11 px; `panels` keeps figures within it.
MAX_WIDTH = 10.0
MAX_COLUMNS = 3  # panels per row


def set_style() -> None:
    """The book's look: seaborn's whitegrid theme, colour-blind palette, compact figures, retina PNGs in notebooks
    (twice the pixels, shown at the same size, so that lines and labels stay sharp on high-resolution screens)."""
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    try:
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:  # no IPython: scripts and tests draw off-screen
        pass
    else:
        set_matplotlib_formats("retina")
    plt.rcParams.update(
        {
            "figure.figsize": (6.4, 4.0),
            "figure.dpi": 90,
            "savefig.dpi": 90,
            "axes.titlesize": "medium",
            "legend.fontsize": "small",
            "legend.frameon": True,
        }
    )


def panels(n: int, ncols: int | None = None, panel_size: tuple[float, float] = (3.3, 2.9), **subplot_kw):
    """A figure of `n` panels, at most `MAX_COLUMNS` a row and no wider than `MAX_WIDTH` inches, filled row by row.

    Args:
      n: the number of panels.
      ncols: panels per row (default: min(n, MAX_COLUMNS)); more than MAX_COLUMNS is an error.
      panel_size: (width, height) of one panel in inches; the width shrinks to fit MAX_WIDTH.
      **subplot_kw: passed to `plt.subplots` (sharex, sharey, …).
    Returns:
      fig and axes, axes a flat array of the `n` panels (the unused cells of the last row are removed).
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}")
    ncols = min(int(n), MAX_COLUMNS) if ncols is None else ncols
    if not isinstance(ncols, (int, np.integer)) or not 1 <= ncols <= MAX_COLUMNS:
        raise ValueError(f"ncols must be an integer from 1 to {MAX_COLUMNS} (the book's panels per row); got {ncols!r}")
    nrows = -(-int(n) // ncols)
    width = min(MAX_WIDTH, panel_size[0] * ncols)
    height = panel_size[1] * nrows * width / (panel_size[0] * ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, **subplot_kw)
    axes = axes.ravel()
    for ax in axes[n:]:
        ax.remove()
    return fig, axes[:n]


def diagram(ax, boxes: dict, arrows: Sequence[tuple], box_width: float = 0.26, box_height: float = 0.2):
    """A dependency diagram: labelled boxes at given centres, arrows between them (the book's map of its parts).

    Args:
      ax: the axes to draw on; its limits become [0, 1] × [0, 1], widened to hold every box, and its frame is hidden.
      boxes: name -> (x, y, text), centres in axes units, the text drawn inside the box.
      arrows: (from, to) or (from, to, label) triples of box names; the label is written at the arrow's middle.
      box_width, box_height: the boxes' size in axes units.
    Returns:
      The axes.
    """
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    unknown = sorted({n for a in arrows for n in a[:2]} - set(boxes))
    if unknown:
        raise ValueError(f"arrows name boxes that are not in boxes: {unknown}")
    patches = {}
    for name, (x, y, text) in boxes.items():
        patches[name] = ax.add_patch(FancyBboxPatch((x - box_width / 2, y - box_height / 2), box_width, box_height,
                                                    boxstyle="round,pad=0.01", fc="white", ec="0.3", lw=1.0))
        ax.text(x, y, text, ha="center", va="center", fontsize="small", wrap=True)
    for arrow in arrows:
        (x0, y0, _), (x1, y1, _) = boxes[arrow[0]], boxes[arrow[1]]
        # from centre to centre, clipped at the two boxes' borders (patchA, patchB), so no arrow crosses a box's text
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=12, color="0.35",
                                     patchA=patches[arrow[0]], patchB=patches[arrow[1]], shrinkA=2, shrinkB=2,
                                     lw=1.0))
        if len(arrow) > 2:
            ax.text((x0 + x1) / 2, (y0 + y1) / 2, arrow[2], ha="center", va="center", fontsize="x-small",
                    color="0.25", bbox=dict(fc="white", ec="none", pad=0.5))
    xs, ys = [b[0] for b in boxes.values()], [b[1] for b in boxes.values()]
    margin = 0.02
    ax.set(xlim=(min(0.0, min(xs) - box_width / 2 - margin), max(1.0, max(xs) + box_width / 2 + margin)),
           ylim=(min(0.0, min(ys) - box_height / 2 - margin), max(1.0, max(ys) + box_height / 2 + margin)))
    ax.axis("off")
    return ax


def color(name: str):
    """The colour of a named method (any other name gets a stable colour from the palette)."""
    from matplotlib.colors import to_rgb

    palette = sns.color_palette("colorblind", 10)
    index = METHOD_COLORS.get(name, sum(map(ord, name)) % 10)
    return to_rgb(index) if isinstance(index, str) else palette[index]


def density(ax, log_density: Callable, xlim: Sequence[float], ylim: Sequence[float], num: int = 200, cmap: str = "Greys", levels: int = 12):
    """Filled contours of exp(log_density) on a num×num grid (the density need not be normalised)."""
    xs, ys = np.linspace(*xlim, num), np.linspace(*ylim, num)
    xx, yy = np.meshgrid(xs, ys)
    points = np.stack([xx.ravel(), yy.ravel()], axis=-1)
    logp = np.asarray(log_density(points)).reshape(xx.shape)
    ax.contourf(xx, yy, np.exp(logp - logp.max()), levels=levels, cmap=cmap, alpha=0.6)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    return ax


def contours(ax, log_density: Callable, xlim: Sequence[float], ylim: Sequence[float], num: int = 150, levels: int = 4, **kwargs):
    """Line contours of exp(log_density) on a num×num grid, to overlay a target on a filled density."""
    xs, ys = np.linspace(*xlim, num), np.linspace(*ylim, num)
    xx, yy = np.meshgrid(xs, ys)
    values = np.exp(np.asarray(log_density(np.stack([xx.ravel(), yy.ravel()], axis=-1))).reshape(xx.shape))
    kwargs.setdefault("colors", "k")
    kwargs.setdefault("linewidths", 0.6)
    return ax.contour(xx, yy, values, levels=levels, **kwargs)


def ellipse(ax, mean, cov, num_std: float = 2.0, **kwargs):
    """The num_std-standard-deviation ellipse {x : (x - m)ᵀΣ⁻¹(x - m) = num_std²} of a 2D Gaussian."""
    cov = np.asarray(cov, dtype=np.float64)
    w, v = np.linalg.eigh(cov)
    angle = np.degrees(np.arctan2(v[1, 1], v[0, 1]))
    kwargs.setdefault("fill", False)
    kwargs.setdefault("lw", 1.5)
    patch = Ellipse(np.asarray(mean), 2 * num_std * np.sqrt(w[1]), 2 * num_std * np.sqrt(w[0]), angle=angle, **kwargs)
    ax.add_patch(patch)
    return patch


def trajectory(ax, means, label: str, **kwargs):
    """The path of a 2D mean, start marked with a circle and end with a cross."""
    means = np.asarray(means)
    kwargs.setdefault("color", color(label))
    kwargs.setdefault("lw", 1.5)
    (line,) = ax.plot(means[:, 0], means[:, 1], label=label, **kwargs)
    ax.plot(*means[0], "o", color=line.get_color(), ms=4)
    ax.plot(*means[-1], "x", color=line.get_color(), ms=6)
    return line


def curve(ax, x, y, label: str, logy: bool = True, **kwargs):
    """A convergence curve (log scale on y by default), coloured by method name."""
    kwargs.setdefault("color", color(label))
    (line,) = ax.plot(np.asarray(x), np.asarray(y), label=label, **kwargs)
    if logy:
        ax.set_yscale("log")
    return line


def band(ax, x, runs, label: str, logy: bool = True, quantiles: Sequence[float] = (0.1, 0.9), **kwargs):
    """The median over runs (seeds) as a line and the spread between two quantiles (10% and 90%) as a shaded band;
    `runs` has shape (num_runs, len(x)). Runs that diverged (NaN or inf) are left out of the median and the band
    wherever they are not finite."""
    runs = np.asarray(runs, dtype=np.float64)
    if runs.ndim != 2 or runs.shape[1] != len(x):
        raise ValueError(f"runs must have shape (num_runs, len(x)) = (n, {len(x)}); got {runs.shape}")
    finite = np.where(np.isfinite(runs), runs, np.nan)
    with warnings.catch_warnings():  # an all-NaN column (every run diverged) is left empty, silently
        warnings.simplefilter("ignore", RuntimeWarning)
        middle = np.nanmedian(finite, axis=0)
        low, high = np.nanquantile(finite, quantiles, axis=0)
    line = curve(ax, x, middle, label, logy=logy, **kwargs)
    ax.fill_between(np.asarray(x), low, high, color=line.get_color(), alpha=0.2, lw=0)
    return line


def step_size_sweep(ax, step_sizes, final, stable, label: str, cross_height: float = 1.0, **kwargs):
    """A step-size sweep on log–log axes: the median over seeds of the final distance at each stable step size,
    joined by a line, and a cross at `cross_height` (in axes units, 1 = the top edge; give each method its own)
    for each step size at which a run diverged or ended further than it started (`wvi.algorithm.stable`).
    `final` has shape (len(step_sizes), num_seeds)."""
    step_sizes, final, stable = np.asarray(step_sizes), np.asarray(final, dtype=np.float64), np.asarray(stable)
    kwargs.setdefault("color", color(label))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.where(stable, np.nanmedian(np.where(np.isfinite(final), final, np.nan), axis=1), np.nan)
    (line,) = ax.loglog(step_sizes, median, marker="o", ms=3, label=label, **kwargs)
    ax.plot(step_sizes[~stable], np.full((~stable).sum(), cross_height), "x", color=line.get_color(), ms=5,
            transform=ax.get_xaxis_transform(), clip_on=False)
    return line


def comparison(axes, result, distance_label: str, floor: float | None = None, resolution: float | None = None):
    """The two panels of a Gaussian-VI comparison (`wvi.gaussian_vi.compare`'s `Comparison`): left, the step-size
    sweep of every method (`step_size_sweep`; crosses, one row per method, where a run was unstable); right, the
    budget runs at each method's best step size against gradient evaluations (`band`: median and 10-90% of seeds).
    `floor` draws a dotted horizontal line (e.g. what two reference runs disagree by); distances below
    `resolution` (where rounding dominates the distance's computation) are drawn at it, on a grey line. Returns the
    two axes."""
    if resolution is not None:
        clip = lambda a: np.where(np.isfinite(a), np.maximum(a, resolution), a)  # noqa: E731
        result = result._replace(final={k: clip(v) for k, v in result.final.items()},
                                 curves={k: clip(v) for k, v in result.curves.items()})
    sweep_ax, budget_ax = axes
    labels = list(result.curves)
    if not labels:
        raise ValueError("result has no methods to draw")
    for i, label in enumerate(labels):
        step_size_sweep(sweep_ax, result.step_sizes, result.final[label], result.stable[label], label,
                        cross_height=1.02 + 0.035 * i)
        if np.isfinite(result.best[label]):
            band(budget_ax, result.evaluations[label], result.curves[label], label)
    sweep_ax.set_xlabel("step size")
    sweep_ax.set_ylabel(f"{distance_label} after the sweep")
    budget_ax.set_xlabel("gradient evaluations")
    budget_ax.set_ylabel(distance_label)
    budget_ax.set_xscale("log")
    if floor is not None:
        budget_ax.axhline(floor, color="k", ls=":", lw=1.0, label="reference floor")
    if resolution is not None:
        for ax in axes:
            ax.axhline(resolution, color="0.6", lw=0.8, zorder=0)
    return sweep_ax, budget_ax


def loglog(ax, x, y, label: str, slope: float | None = None, **kwargs):
    """Points on log–log axes joined by a line, the fitted slope in the legend when given."""
    kwargs.setdefault("marker", "o")
    text = label if slope is None else f"{label} (slope {slope:.2f})"
    (line,) = ax.loglog(np.asarray(x), np.asarray(y), label=text, **kwargs)
    label_log_axis(ax.xaxis, *ax.get_xlim())
    label_log_axis(ax.yaxis, *ax.get_ylim())
    return line


def label_log_axis(axis, low: float, high: float, extend: bool = False) -> None:
    """Readable labels on a log axis: at 1, 2, 5 × 10^k when it spans under three decades, else at powers of ten.
    `extend`: also widen the axis's limits to the nearest labelled values outside [low, high], so that the lowest
    and the highest curves sit between two labels (a curve that ends at 0.25 on an axis whose lowest label is 0.5
    cannot be read)."""
    short = 0 < low < high and np.log10(high / low) < 3
    if extend and not 0 < low < high:
        raise ValueError(f"low and high must satisfy 0 < low < high to extend a log axis; got {low!r}, {high!r}")
    subs = (1.0, 2.0, 5.0) if short else (1.0,)
    if extend:
        decades = range(int(np.floor(np.log10(low))) - 1, int(np.ceil(np.log10(high))) + 1)
        labelled = sorted(s * 10.0**k for k in decades for s in subs)
        limits = (max(t for t in labelled if t <= low * (1 + 1e-9)), min(t for t in labelled if t >= high * (1 - 1e-9)))
        (axis.axes.set_ylim if axis is axis.axes.yaxis else axis.axes.set_xlim)(*limits)
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def histogram(ax, samples, edges, label: str, **kwargs):
    """A density-normalised step histogram of 1D samples over `edges`, coloured by method name."""
    kwargs.setdefault("color", color(label))
    kwargs.setdefault("lw", 1.8)
    ax.hist(np.asarray(samples).ravel(), bins=np.asarray(edges), density=True, histtype="step", label=label, **kwargs)
    ax.set_ylabel("density")
    return ax


def density_line(ax, x, density, label: str, **kwargs):
    """A 1D density (a fit's marginal, say) as a line over `x`, coloured by method name."""
    kwargs.setdefault("color", color(label))
    kwargs.setdefault("lw", 1.5)
    (line,) = ax.plot(np.asarray(x), np.asarray(density), label=label, **kwargs)
    ax.set_ylabel("density")
    return line


def particles(ax, points, label: str, **kwargs):
    """A 2D particle cloud as small dots, coloured by method name."""
    points = np.asarray(points)
    kwargs.setdefault("color", color(label))
    kwargs.setdefault("s", 6)
    kwargs.setdefault("alpha", 0.7)
    return ax.scatter(points[:, 0], points[:, 1], label=label, **kwargs)


def predictive_band(ax, x, mean, std, label: str, num_std: float = 2.0, **kwargs):
    """A predictive mean with a ± num_std·std band, coloured by method name."""
    x, mean, std = (np.asarray(a).ravel() for a in (x, mean, std))
    kwargs.setdefault("color", color(label))
    (line,) = ax.plot(x, mean, label=label, lw=1.5, **kwargs)
    ax.fill_between(x, mean - num_std * std, mean + num_std * std, color=line.get_color(), alpha=0.25, lw=0)
    return line


def mixture_ellipses(ax, means, covs, weights, label: str, num_std: float = 2.0, **kwargs):
    """The components of a 2D mixture as num_std ellipses, line width growing with the weight, centres as dots."""
    means, covs, weights = np.asarray(means), np.asarray(covs), np.asarray(weights)
    kwargs.setdefault("color", color(label))
    for k, (m, c, w) in enumerate(zip(means, covs, weights)):
        ellipse(ax, m, c, num_std=num_std, lw=0.6 + 2.5 * float(w), label=label if k == 0 else None, **kwargs)
    ax.scatter(means[:, 0], means[:, 1], s=10, color=kwargs["color"], zorder=3)
    return ax


def animation(fig, draw_frame: Callable[[int], None], num_frames: int, interval_ms: int = 120):
    """An embedded JavaScript/HTML animation of a flow: `draw_frame(i)` redraws `fig` for frame i.

    Returns an `IPython.display.HTML` object (display it as a cell's last value); the figure is closed so that no
    static copy is printed below it. The figure gets matplotlib's constrained layout, so that the labels of every
    frame stay inside it. Pair it with a static figure of a few frames for readers without JavaScript.
    """
    from IPython.display import HTML
    from matplotlib.animation import FuncAnimation

    if not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
        raise ValueError(f"num_frames must be a positive integer; got {num_frames!r}")
    fig.set_layout_engine("constrained")  # every frame keeps its axis labels and title inside the image
    anim = FuncAnimation(fig, draw_frame, frames=int(num_frames), interval=interval_ms)
    html = _offline_player(anim.to_jshtml(default_mode="once"))
    plt.close(fig)
    return HTML(html)


# matplotlib's player draws its buttons with Font Awesome icons from a CDN; these characters need no network.
_PLAYER_ICONS = {"fa fa-play fa-flip-horizontal": "◀", "fa fa-minus": "−", "fa fa-fast-backward": "⇤",
                 "fa fa-step-backward": "◁", "fa fa-pause": "❚❚", "fa fa-play": "▶", "fa fa-step-forward": "▷",
                 "fa fa-fast-forward": "⇥", "fa fa-plus": "+"}


def _offline_player(html: str) -> str:
    """The player's HTML without its Font Awesome stylesheet, each icon replaced by a plain character."""
    html = re.sub(r"<link[^>]*font-awesome[^>]*>", "", html)
    for icon, char in _PLAYER_ICONS.items():
        html = html.replace(f'<i class="{icon}"></i>', char)
    return html


def barrier_curve(ax, curve, label: str, color_name: str | None = None, chord: bool = True, **kwargs):
    """A loss curve ℓ(q_τ) along a path (a `wvi.barrier.BarrierCurve`), the chord between its ends dotted and the
    barrier drawn as a vertical segment at the τ attaining it; coloured by `color_name` (default: `label`)."""
    taus, losses = np.asarray(curve.taus), np.asarray(curve.losses)
    kwargs.setdefault("color", color(color_name or label))
    kwargs.setdefault("marker", "o")
    kwargs.setdefault("ms", 3)
    (line,) = ax.plot(taus, losses, label=label, **kwargs)
    if chord:
        ax.plot([0, 1], [losses[0], losses[-1]], ":", color=line.get_color(), lw=1)
        t = curve.tau_max
        base = (1 - t) * losses[0] + t * losses[-1]
        ax.plot([t, t], [base, base + curve.barrier], "-", color=line.get_color(), lw=3, alpha=0.5)
    ax.set_xlabel("τ (position on the path)")
    ax.set_ylabel("negative log likelihood (nats / point)")
    return line


def plane_slice(ax, xs, ys, values, points: dict, levels: int = 20, cmap: str = "viridis", floor: float | None = None):
    """Filled contours of `values[i, j]` at (xs[j], ys[i]) (e.g. a log posterior on a `wvi.barrier.Plane`), values
    below `floor` clipped to it, with named points {label: (x, y)} marked and labelled; returns the colour mappable."""
    values = np.asarray(values, float)
    if floor is not None:
        values = np.maximum(values, floor)
    mappable = ax.contourf(np.asarray(xs), np.asarray(ys), values, levels=levels, cmap=cmap)
    middle = 0.5 * (np.min(xs) + np.max(xs))
    for label, (x, y) in points.items():
        ax.plot(x, y, "o", color="w", mec="k", ms=7)
        # labels point inwards (a label right of a point near the right edge would leave the axes) and carry a
        # dark outline, readable on the light and the dark end of the colour map
        right = x > middle
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(-6 if right else 6, 6),
                    ha="right" if right else "left", color="w", fontweight="bold",
                    path_effects=[patheffects.withStroke(linewidth=2.5, foreground="k")])
    ax.set_aspect("equal")
    return mappable


def _pairs_mean_sd(values: Sequence) -> tuple:
    """(the values of each point as an array, their means, their sds with ddof = 1, NaN for a single value)."""
    runs = [np.atleast_1d(np.asarray(v, float)) for v in values]
    return (runs, np.array([r.mean() for r in runs]),
            np.array([r.std(ddof=1) if r.size > 1 else np.nan for r in runs]))


def barrier_bars(ax, names: Sequence[str], naive: Sequence, aligned: Sequence, split: str = "test"):
    """Grouped bars of the naive and aligned barriers of several runs (Rossi et al.'s Figs. 4 and 11), each run
    given as one value or as the values of its replica pairs: a bar at their mean, with ±1 sd and each pair as a
    small dot when there are two or more; a missing run (NaN) leaves an empty slot labelled "not run"."""
    x = np.arange(len(names))
    for offset, (label, values) in zip((-0.2, 0.2), (("naive", naive), ("aligned", aligned))):
        runs, means, sds = _pairs_mean_sd(values)
        several = ~np.isnan(sds)
        ax.bar(x + offset, np.nan_to_num(means), width=0.4, color=color(label),
               label=label + (" (mean ± sd of the pairs)" if several.any() else ""))
        if several.any():
            ax.errorbar((x + offset)[several], means[several], yerr=sds[several], fmt="none", ecolor="0.2", capsize=3)
            for xi, r in zip(x + offset, runs):
                if r.size > 1:
                    ax.plot(np.full(r.size, xi), r, ".", color="0.2", alpha=0.5, ms=4)
        for xi in (x + offset)[np.isnan(means)]:
            ax.text(xi, 0, "not run", rotation=90, ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, names, rotation=20, ha="right")
    ax.set_ylabel(f"{split} barrier (nats / point)")
    ax.legend()


def sweep_order_barriers(ax, study, naive_barrier: float, noise_sd: float):
    """The aligned barrier of one pair under each sweep order of the alignment (a `wvi.barrier.SweepOrders`)
    against W2²(q0, P#q1), the distance the alignment minimises: order 0 filled, the others hollow, each with a bar of
    ±2 `noise_sd` (the barrier's evaluation noise); the pair's naive barrier dashed."""
    w2, barriers = np.asarray(study.w2_squared, float), np.asarray(study.barriers, float)
    ax.errorbar(w2, barriers, yerr=2 * noise_sd, fmt="none", ecolor=color("aligned"), capsize=3)
    ax.plot(w2[:1], barriers[:1], "o", color=color("aligned"), label="aligned, order 0")
    ax.plot(w2[1:], barriers[1:], "o", mfc="white", color=color("aligned"), label="aligned, other orders")
    ax.axhline(naive_barrier, ls="--", color=color("naive"), label="naive")
    # the y axis starts at 0 yet keeps autoscaling, so that panels sharing it (sharey) all fit: a fixed
    # set_ylim here would freeze the top at the first panel's range and cut off a later panel's points
    baseline = ax.axhline(0, color="0.8", lw=0.8, zorder=0)
    baseline.sticky_edges.y[:] = [0]
    ax.margins(x=0.12)
    ax.xaxis.set_major_locator(MaxNLocator(4, integer=True))
    ax.set_xlabel("W2²(q0, P#q1)")
    ax.set_ylabel("test barrier (nats / point)")


def variance_ratios(axes, curves: dict):
    """Rossi et al.'s Fig. 10: the activation-variance ratio r_l(τ) along each path (`wvi.barrier.VarianceCurve`),
    one panel per hidden layer l in `axes`; `curves` maps a path's label ("naive", "aligned") to one curve per
    replica pair, each drawn thin, and their mean drawn thick with markers. 1 (no collapse) is dotted."""
    for layer, ax in enumerate(axes):
        for label, runs in curves.items():
            ratios = np.stack([np.asarray(c.ratios)[:, layer] for c in runs])
            taus = np.asarray(runs[0].taus)
            for r in ratios:
                ax.plot(taus, r, color=color(label), lw=0.8, alpha=0.5)
            ax.plot(taus, ratios.mean(axis=0), "-o", color=color(label), ms=3, label=f"{label} (mean of {len(runs)})")
        ax.axhline(1.0, color="0.5", ls=":", lw=1)
        ax.set_ylim(0, None)
        ax.set_xlabel("τ (position on the path)")
        ax.set_title(f"hidden layer {layer + 1}", fontsize="small")
    axes[0].set_ylabel("activation variance / chord")
    axes[0].legend(fontsize="x-small")


def pairs_line(ax, xs: Sequence[float], values: Sequence, style: str, line_color, label: str):
    """One line against a swept setting from, at each point, one value or the values of its replica pairs (any
    number per point): a plain line through single values; else the points' means with a bar of ±1 standard
    deviation (none at a point with one pair) and each pair as a small dot."""
    runs, means, sds = _pairs_mean_sd(values)
    if all(r.size == 1 for r in runs):
        ax.plot(xs, means, style, marker="o", color=line_color, label=label)
        return
    sizes = {r.size for r in runs}
    ax.errorbar(xs, means, yerr=np.nan_to_num(sds), fmt=style, marker="o", capsize=3, color=line_color,
                label=f"{label} (mean ± sd of {sizes.pop()})" if len(sizes) == 1 else f"{label} (mean ± sd of the pairs)")
    for x, r in zip(xs, runs):
        if r.size > 1:
            ax.plot(np.full(r.size, x), r, ".", color=line_color, alpha=0.4, ms=4)


def barrier_sweep(ax, xs: Sequence[float], naive, aligned, xlabel: str, title: str = "", logx: bool = True,
                  excluded: Mapping[float, str] | None = None):
    """Naive and aligned barriers against a swept setting (Rossi et al.'s Figs. 5, 7, 8 and 9): one value per point,
    or the barriers of each point's replica pairs (`pairs_line`: their mean with ±1 sd, each pair a small dot).

    `excluded` maps points of `xs` that a verdict does not judge to a short reason (e.g. {0.1: "collapsed"}): each is
    drawn on a grey band with the reason written at its top, so that the plot says what the caption says."""
    excluded = dict(excluded or {})
    unknown = [x for x in excluded if x not in list(xs)]
    if unknown:
        raise ValueError(f"excluded: {unknown} are not points of xs {list(xs)}")
    for label, values, style in (("naive", naive, "--"), ("aligned", aligned, "-")):
        pairs_line(ax, xs, values, style, color(label), label)
    if logx:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    # each band half as wide as the smallest gap between points, on the axis' own scale
    where = np.log10(np.asarray(xs, float)) if logx else np.asarray(xs, float)
    half = np.diff(np.sort(where)).min() / 4 if len(xs) > 1 else 0.25
    for x, reason in excluded.items():
        centre = np.log10(x) if logx else x
        lo, hi = (10 ** (centre - half), 10 ** (centre + half)) if logx else (x - half, x + half)
        ax.axvspan(lo, hi, color="0.85", zorder=0, lw=0)
        ax.text(x, 0.98, reason, transform=ax.get_xaxis_transform(), ha="center", va="top",
                fontsize="x-small", color="0.3")
    ax.set_xticks(list(xs), [f"{x:g}" for x in xs])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test barrier (nats / point)")
    ax.set_title(title)
    ax.legend()


def alignment_times(ax, widths: Sequence[float], times: dict, title: str = "", xlabel: str = "width",
                    legend: bool = True):
    """Rossi et al.'s Fig. A14: alignment time against width, one line per method in `times` ({label: array
    (widths, pairs) of seconds}), the median over pairs with a bar from the fastest to the slowest pair; log-log.
    With `legend=False` the caller draws one legend for several panels (`ax.get_legend_handles_labels()`)."""
    for label, values in times.items():
        values = np.asarray(values, float)
        median = np.median(values, axis=1)
        ax.errorbar(widths, median, yerr=[median - values.min(axis=1), values.max(axis=1) - median], marker="o",
                    capsize=3, color=color(label), label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(list(widths), [f"{w:g}" for w in widths])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("alignment time (s)")
    ax.set_title(title)
    if legend:
        ax.legend(fontsize="x-small")
