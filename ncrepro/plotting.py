"""Plotly figures that work in the static book and in a live notebook.

:func:`show` emits each figure as HTML that calls the global ``Plotly`` (the book ships
plotly.js with its pages, so nothing comes from a CDN); in a live kernel it adds plotly's own
mimetype, which JupyterLab renders for readers running the notebook. :func:`slider_figure` builds the
book's sliders: every step's traces are precomputed and a plotly slider switches which are
visible, so the slider works in static HTML with no kernel. :func:`live_controls` gives
readers who run a notebook ipywidgets sliders that recompute a figure.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Callable, Sequence

import plotly.graph_objects as go
import plotly.io as pio

from .prose import width as width_label

pio.templates.default = "plotly_white"

__all__ = [
    "show",
    "slider_figure",
    "live_controls",
    "build_live_controls",
    "is_static_build",
    "html_table",
    "scene_traces",
    "accuracy_heatmaps",
    "nc_curves",
    "nc_curves_slider",
    "seed_band_figure",
    "twin_figure",
    "pair_heatmap",
    "LOG_AXIS",
    "log_ticks",
    "METRIC_AXES",
    "PALETTE",
    "LOSS_COLORS",
    "LOSS_LABELS",
]

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


class _RegistryView(Mapping):
    """A live read-only view of one attribute of every registered loss (so a loss registered
    later is plotted with its own label and colour)."""

    def __init__(self, attribute: str) -> None:
        self._attribute = attribute

    def __getitem__(self, name: str) -> str:
        from .losses import LOSSES

        return getattr(LOSSES[name], self._attribute)

    def __iter__(self):
        from .losses import LOSSES

        return iter(LOSSES)

    def __len__(self) -> int:
        from .losses import LOSSES

        return len(LOSSES)


LOSS_COLORS: Mapping[str, str] = _RegistryView("color")
LOSS_LABELS: Mapping[str, str] = _RegistryView("label")


def is_static_build() -> bool:
    """True when a chapter is executed to build the static book or under tests (``NCREPRO_STATIC=1``)."""
    return os.environ.get("NCREPRO_STATIC", "0") == "1"


def show(fig: go.Figure, *, height: int | None = None) -> None:
    """Display ``fig`` as self-contained HTML (needs the page's plotly.js) plus plotly's mimetype."""
    from IPython.display import display

    height = height or fig.layout.height or 450
    fig.update_layout(height=height)
    if fig.layout.legend.orientation is None and fig.layout.showlegend is not False:
        # A legend beside the plot takes half a phone's width; above it, it takes a line or two.
        fig.update_layout(legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))
    html = fig.to_html(include_plotlyjs=False, full_html=False, default_height=f"{height}px",
                       config={"displaylogo": False, "responsive": True,
                               # Selection tools do nothing on these figures; without them the bar
                               # no longer covers a subplot's label on a phone.
                               "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"]})
    bundle = {"text/html": html}
    if not is_static_build():
        # JupyterLab renders plotly's own mimetype; the static book must not carry it, because
        # myst-nb renders every mimetype of a bundle and warns on this one.
        bundle["application/vnd.plotly.v1+json"] = json.loads(fig.to_json())
    display(bundle, raw=True)


def slider_figure(steps: Sequence[tuple[str, Sequence[go.BaseTraceType]]], *, fixed: Sequence[go.BaseTraceType] = (),
                  prefix: str = "", active: int = 0, fig: go.Figure | None = None,
                  rows_cols: Sequence[tuple[int, int]] | None = None) -> go.Figure:
    """A figure whose slider shows one precomputed group of traces at a time.

    Args:
        steps: ``(label, traces)`` per slider position; every group must have the same length.
        fixed: traces shown at every position (reference curves). Traces already in ``fig``
            are likewise shown at every position.
        prefix: the slider's caption, e.g. ``"alpha = "``.
        active: the position shown first.
        fig: a figure to add to (e.g. from ``make_subplots``).
        rows_cols: for subplots, the (row, col) of each trace in a group, in order.
    """
    fig = fig or go.Figure()
    for t in fixed:
        fig.add_trace(t)
    n_fixed = len(fig.data)
    sizes = {len(traces) for _, traces in steps}
    if len(sizes) != 1:
        raise ValueError("every slider step must have the same number of traces")
    per_step = sizes.pop()
    for i, (_, traces) in enumerate(steps):
        for j, t in enumerate(traces):
            t.visible = i == active
            if rows_cols:
                fig.add_trace(t, row=rows_cols[j][0], col=rows_cols[j][1])
            else:
                fig.add_trace(t)
    if len(steps) == 1:
        # plotly draws no slider with a single position; say which setting is shown instead.
        label = steps[0][0]
        for t in fig.data[n_fixed:]:
            t.visible = True
        fig.update_layout(title=dict(text=f"{fig.layout.title.text + ' · ' if fig.layout.title.text else ''}"
                                          f"{prefix}{label}"))
        return fig
    slider_steps = []
    for i, (label, _) in enumerate(steps):
        visible = [True] * n_fixed + [k // per_step == i for k in range(per_step * len(steps))]
        slider_steps.append({"method": "update", "label": label, "args": [{"visible": visible}]})
    # A step's label is centred on its tick, so the end labels reach half their width (about 3.5 px
    # a character at plotly's 12 px font) past the rail. Where the figure's margin is narrower than
    # that, inset the rail by the difference, so that a long label ("width 1/4 (1 seed)") is not
    # cut off at the figure's edge; no more, or plotly drops labels that no longer fit a short rail.
    # Set a figure's left and right margins before calling this.
    margin = fig.layout.margin
    inset = [max(0, round(3.5 * len(steps[i][0])) - (m if m is not None else 80))  # plotly's default
             for i, m in ((0, margin.l), (-1, margin.r))]
    fig.update_layout(sliders=[{"active": active, "currentvalue": {"prefix": prefix},
                                "pad": {"t": 50, "l": inset[0], "r": inset[1]}, "steps": slider_steps}])
    # The slider takes the space below the plot, so the legend goes above it.
    fig.update_layout(legend=dict(orientation="h", yanchor="bottom", y=1.08, x=0), margin=dict(t=130),
                      title_y=0.985, title_yanchor="top")
    return fig


def live_controls(update: Callable[..., go.Figure], **controls):
    """ipywidgets controls that redraw ``update(**values)`` whenever a control moves.

    Each control is ``name=(min, max, step, value)`` (a float slider) or a ready widget.
    Returns ``(interactive, output)``. In a static build (``NCREPRO_STATIC=1``: the book build and
    the tests) only a note is shown and nothing is returned, because widgets need a live kernel
    with a front end (a headless kernel waits on them forever).
    """
    from IPython.display import Markdown, display

    if is_static_build():
        display(Markdown("*Live controls: run this notebook in Jupyter to drag these values and "
                         "recompute the figure.*"))
        return None
    ui, out = build_live_controls(update, **controls)
    import ipywidgets as widgets

    display(widgets.VBox([ui, out]))
    return ui, out


def build_live_controls(update: Callable[..., go.Figure], **controls):
    """The widgets behind :func:`live_controls`, not displayed: ``(interactive, output)``."""
    import ipywidgets as widgets

    controls = {name: widgets.FloatSlider(min=c[0], max=c[1], step=c[2], value=c[3], continuous_update=False)
                if isinstance(c, tuple) else c for name, c in controls.items()}
    out = widgets.Output()

    def redraw(**values):
        out.clear_output(wait=True)
        with out:
            show(update(**values))

    return widgets.interactive(redraw, **controls), out


class HTMLTable:
    """A table that renders as HTML in the book and in Jupyter (see :func:`html_table`)."""

    def __init__(self, html: str, rows: list[list[str]]) -> None:
        self.html = html
        self.rows = rows

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:  # the text/plain form: tab-separated rows, never Markdown pipes
        return "\n".join("\t".join(r) for r in self.rows)


def html_table(columns: Sequence[str], rows: Sequence[Sequence], *, caption: str | None = None,
               formats: Sequence[str | Callable | None] | None = None, align_numbers: bool = True) -> HTMLTable:
    """An HTML table for a notebook output: ``columns`` are header cells, ``rows`` the body.

    ``formats`` gives one format spec (``".3g"``) or function per column (None: ``str``; a None
    cell shows as a dash). Every cell is HTML-escaped, except one given as ``("html", markup)``
    (a link, say), whose markup is used as it is. Numbers are right-aligned.

    Example:
        >>> html_table(["loss", "accuracy"], [["CE", 0.9123]], formats=[None, ".1%"]).rows
        [['loss', 'accuracy'], ['CE', '91.2%']]
    """
    import html

    formats = list(formats) if formats is not None else [None] * len(columns)
    if len(formats) != len(columns):
        raise ValueError(f"{len(formats)} formats for {len(columns)} columns")
    text_rows = [[str(c) for c in columns]]
    body = []
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"a row has {len(row)} cells for {len(columns)} columns: {row}")
        cells, texts = [], []
        for value, fmt in zip(row, formats):
            raw = isinstance(value, tuple) and len(value) == 2 and value[0] == "html"
            if raw:
                text, markup = value[1], value[1]
            else:
                text = fmt(value) if callable(fmt) else (format(value, fmt) if fmt and value is not None else
                                                         ("–" if value is None else str(value)))
                markup = html.escape(text)
            numeric = align_numbers and isinstance(value, (int, float)) and not isinstance(value, bool)
            cells.append(f'<td class="{"num" if numeric else "text"}">{markup}</td>')
            texts.append(text)
        body.append("<tr>" + "".join(cells) + "</tr>")
        text_rows.append(texts)
    head = "<tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in columns) + "</tr>"
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    markup = (f'<table class="table ncrepro-table">{cap}<thead>{head}</thead><tbody>{"".join(body)}</tbody>'
              f"</table>")
    return HTMLTable(markup, text_rows)


def scene_traces(W, H, labels, *, scale: float | None = None, point_size: float = 3.0):
    """3-D traces of features (points, one colour per class) and classifier rows (lines from the
    origin, scaled to ``scale``) for a problem with d = 3."""
    import numpy as np

    W, H, labels = np.asarray(W), np.asarray(H), np.asarray(labels)
    if W.shape[1] != 3 or H.shape[1] != 3:
        raise ValueError(f"scene_traces draws 3-D features, got d = {W.shape[1]}")
    scale = scale or float(np.abs(H).max()) * 1.1 or 1.0
    traces = []
    for k in range(W.shape[0]):
        pts = H[labels == k]
        color = PALETTE[k % len(PALETTE)]
        traces.append(go.Scatter3d(x=pts[:, 0], y=pts[:, 1], z=pts[:, 2], mode="markers",
                                   marker=dict(size=point_size, color=color, opacity=0.7), name=f"class {k}"))
        w = W[k] / max(np.linalg.norm(W[k]), 1e-12) * scale * 0.9
        traces.append(go.Scatter3d(x=[0, w[0]], y=[0, w[1]], z=[0, w[2]], mode="lines",
                                   line=dict(color=color, width=7), name=f"w_{k}"))
    return traces


def accuracy_heatmaps(grid, *, reference: str = "ce"):
    """The paper's summary of a results grid, one panel per row: for each loss X other than
    ``reference``, a heatmap over width (rows) and epochs (columns) of ``|acc_ref - acc_X|`` in
    points (mean over the seeds both have; the text shows ``mean ± sd, n seeds`` when there are
    several), then a heatmap of the variance of all (loss, seed) accuracies per cell (points²).
    The gap panels share one colour bar, the variance has its own. Cells without results are
    blank. Several architectures are drawn side by side."""
    from plotly.subplots import make_subplots

    others = [loss for loss in grid.losses if loss != reference]
    archs = sorted({c[0] for c in grid.cells})
    titles = []
    for panel in others + ["variance"]:
        for arch in archs:
            prefix = f"{arch}: " if len(archs) > 1 else ""
            titles.append(prefix + (f"|{LOSS_LABELS[reference]} − {LOSS_LABELS[panel]}| (points)" if panel != "variance"
                                    else "variance across losses and seeds (points²)"))
    rows = len(others) + 1
    fig = make_subplots(rows=rows, cols=len(archs), subplot_titles=titles, vertical_spacing=0.32 / rows,
                        horizontal_spacing=0.08)
    for col, arch in enumerate(archs, 1):
        cells = [c for c in grid.cells if c[0] == arch]
        widths = sorted({c[1] for c in cells})
        epochs = sorted({c[2] for c in cells})
        x = [f"{e} epochs" for e in epochs]
        y = [f"width {width_label(w)}" for w in widths]
        for row, other in enumerate(others, 1):
            z, text = [], []
            for w in widths:
                z_row, t_row = [], []
                for e in epochs:
                    gap = grid.gap_to((arch, w, e), other, reference)
                    z_row.append(None if gap is None else 100 * gap[0])
                    t_row.append("" if gap is None else (f"{100 * gap[0]:.1f}" if gap[2] == 1 else
                                                         f"{100 * gap[0]:.1f}±{100 * gap[1]:.1f} (n={gap[2]})"))
                z.append(z_row)
                text.append(t_row)
            fig.add_trace(go.Heatmap(z=z, x=x, y=y, text=text, texttemplate="%{text}", coloraxis="coloraxis",
                                     hovertemplate="%{y}, %{x}: %{text} points<extra></extra>"), row=row, col=col)
        z, text = [], []
        for w in widths:
            z_row, t_row = [], []
            for e in epochs:
                v = grid.variance_across_losses((arch, w, e))
                z_row.append(None if v is None else 1e4 * v[0])
                t_row.append("" if v is None else f"{1e4 * v[0]:.2f}")
            z.append(z_row)
            text.append(t_row)
        fig.add_trace(go.Heatmap(z=z, x=x, y=y, text=text, texttemplate="%{text}", coloraxis="coloraxis2",
                                 hovertemplate="%{y}, %{x}: variance %{text} points²<extra></extra>"),
                      row=rows, col=col)
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category")
    # Each colour bar beside the rows it explains.
    gap_domains = [fig.layout[f"yaxis{'' if r == 1 else (r - 1) * len(archs) + 1}"].domain for r in range(1, rows)]
    var_domain = fig.layout[f"yaxis{(rows - 1) * len(archs) + 1}"].domain
    top, bottom = max(d[1] for d in gap_domains), min(d[0] for d in gap_domains)
    fig.update_layout(
        coloraxis=dict(colorscale="Blues", colorbar=dict(title="points", y=(top + bottom) / 2, len=top - bottom,
                                                         thickness=14)),
        coloraxis2=dict(colorscale="Greys", colorbar=dict(title="points²", y=sum(var_domain) / 2,
                                                          len=var_domain[1] - var_domain[0], thickness=14)),
        margin=dict(l=90, r=10, t=40, b=30))
    fig.update_annotations(font_size=13)
    return fig


def _nc_traces(results: list, baselines: dict | None, keys, x_key: str) -> list:
    """The traces of :func:`nc_curves`, each placed on its panel through its axis names."""
    traces = []
    for r in results:
        loss = r["config"]["loss"]
        color = LOSS_COLORS[loss] if loss in LOSS_COLORS else "#7f7f7f"
        pts = [e for e in r["epochs"] if e.get("nc1") is not None]
        for col, key in enumerate(keys, 1):
            axis = "" if col == 1 else str(col)
            traces.append(go.Scatter(x=[e[x_key] for e in pts], y=[e[key] for e in pts],
                                     name=LOSS_LABELS.get(loss, loss), legendgroup=loss, showlegend=col == 1,
                                     line=dict(color=color, width=2.5), xaxis=f"x{axis}", yaxis=f"y{axis}"))
        axis = str(len(keys) + 1)
        traces.append(go.Scatter(x=[e[x_key] for e in pts], y=[e["test_acc"] for e in pts], name=f"{loss} test",
                                 legendgroup=loss, showlegend=False, line=dict(color=color, width=3),
                                 xaxis=f"x{axis}", yaxis=f"y{axis}"))
        traces.append(go.Scatter(x=[e[x_key] for e in r["epochs"]], y=[e["train_acc"] for e in r["epochs"]],
                                 name=f"{loss} train", legendgroup=loss, showlegend=False,
                                 line=dict(color=color, width=1), xaxis=f"x{axis}", yaxis=f"y{axis}"))
    steps = [e[x_key] for r in results for e in r["epochs"]]
    span = [min(steps), max(steps)]
    for col, key in enumerate(keys, 1):
        axis = "" if col == 1 else str(col)
        value = (baselines or {}).get(key)
        # A dashed line at the value random geometry has (invisible where there is none).
        traces.append(go.Scatter(x=span, y=[value, value] if value is not None else [None, None], mode="lines",
                                 name="random geometry", showlegend=False,
                                 line=dict(color="grey", dash="dash", width=1), xaxis=f"x{axis}", yaxis=f"y{axis}"))
    return traces


def _nc_layout(keys):
    from plotly.subplots import make_subplots

    titles = [key.upper() for key in keys] + ["test (thick), train (thin) accuracy"]
    fig = make_subplots(rows=1, cols=len(titles), subplot_titles=titles, horizontal_spacing=0.06)
    for col in range(1, len(keys) + 1):
        fig.update_yaxes(type="log", row=1, col=col)
    fig.update_xaxes(title_text="epoch")
    return fig


def nc_curves(results: list, *, baselines: dict | None = None, keys=("nc1", "nc2", "nc3"), x_key: str = "epoch"):
    """NC metrics and accuracies over training for a set of runs (one per loss, same setting):
    one panel per metric plus test (thick) and training (thin) accuracy. ``baselines`` maps a
    metric to the value random geometry has (drawn dashed)."""
    fig = _nc_layout(keys)
    for t in _nc_traces(results, baselines, keys, x_key):
        fig.add_trace(t)
    return fig


def nc_curves_slider(groups: dict, *, baselines=None, label=str, keys=("nc1", "nc2", "nc3"), active: int | None = None):
    """:func:`nc_curves` for several settings at once, one slider position per setting.

    Args:
        groups: ``{setting: [results of that setting]}`` (from ``sweep.group_results``).
        baselines: ``setting -> {metric: value}`` for the dashed random-geometry lines.
        label: ``setting -> slider label``.
    """
    steps = [(label(key), _nc_traces(group, baselines(key) if baselines else None, keys, "epoch"))
             for key, group in groups.items()]
    size = max(len(t) for _, t in steps)
    padded = []
    for name, traces in steps:
        # Settings with fewer losses get empty traces, so every position has the same number.
        padded.append((name, traces + [go.Scatter(x=[None], y=[None], showlegend=False)] * (size - len(traces))))
    return slider_figure(padded, prefix="setting: ", active=len(padded) - 1 if active is None else active,
                         fig=_nc_layout(keys))


#: Axis settings for a log axis of a dimensionless quantity: one tick per decade, written as a
#: power of ten (never SI prefixes such as "100μ", never bare mantissa digits).
LOG_AXIS = dict(type="log", dtick=1, exponentformat="power", showexponent="all")

def log_ticks(values) -> dict:
    """Axis settings for a log axis over ``values``: ticks at powers of ten when they span two
    decades or more (every second or third power over long ranges); otherwise ticks at 1, 2 and 5
    times powers of ten (a short range would get one tick or none from powers alone), labelled as
    plain numbers."""
    import math

    positive = [float(v) for v in values if v is not None and math.isfinite(v) and v > 0]
    if not positive:
        return dict(LOG_AXIS)
    lo, hi = min(positive), max(positive)
    decades = math.log10(hi / lo)
    if decades >= 2:
        # Every decade labelled, or every second or third over long ranges (a panel of 14
        # decades in a few hundred pixels has no room for 14 labels).
        return dict(LOG_AXIS, dtick=1 if decades <= 7 else (2 if decades <= 14 else 3))
    ticks = [m * 10.0 ** e for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
             for m in (1, 2, 5)]
    inside = [t for t in ticks if lo / 1.5 <= t <= hi * 1.5]
    return dict(type="log", tickvals=inside, ticktext=[f"{t:.3g}" for t in inside])


#: What each per-epoch metric is called on an axis, and whether it is drawn on a log axis.
METRIC_AXES = {
    "clean_train_acc": ("training accuracy (%)", False),
    "test_acc": ("test accuracy (%)", False),
    "nc1": ("NC1", True),
    "nc2": ("NC2", True),
    "nc3": ("NC3", True),
    "nc4": ("NC4", True),
}


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    return f"rgba({int(h[0:2], 16)}, {int(h[2:4], 16)}, {int(h[4:6], 16)}, {alpha})"


def _band_traces(runs_by_loss: dict, keys, baselines: dict | None, onsets: dict | None, floors: dict) -> list:
    """Traces of :func:`seed_band_figure` for one setting, each on its panel's axes."""
    from .results import seed_band

    def floored(runs, key):
        if key not in floors:
            return runs
        # A log axis cannot show 0 (NC4 when no image disagrees): draw it at the floor.
        return [dict(r, epochs=[dict(e, **{key: max(e[key], floors[key])}) if e.get(key) is not None else e
                                for e in r["epochs"]]) for r in runs]

    traces = []
    for row, key in enumerate(keys, 1):
        axis = "" if row == 1 else str(row)
        _, log = METRIC_AXES[key]
        scale = 1.0 if log else 100.0
        for loss, runs in runs_by_loss.items():
            color = LOSS_COLORS[loss] if loss in LOSS_COLORS else "#7f7f7f"
            band = seed_band(floored(runs, key), key, log=log)
            x = band.epochs
            common = dict(legendgroup=loss, xaxis=f"x{axis}", yaxis=f"y{axis}", hoverinfo="skip")
            # The band: lowest to highest seed, drawn as one closed polygon.
            traces.append(go.Scatter(x=x + x[::-1], y=[scale * v for v in band.high + band.low[::-1]],
                                     fill="toself", fillcolor=_rgba(color, 0.18), line=dict(width=0),
                                     mode="lines", showlegend=False, name=f"{LOSS_LABELS.get(loss, loss)} seeds",
                                     **common))
            label = LOSS_LABELS.get(loss, loss)
            traces.append(go.Scatter(x=x, y=[scale * v for v in band.mean], mode="lines+markers",
                                     marker=dict(size=4), line=dict(color=color, width=2),
                                     name=f"{label} ({band.seeds} seed{'s' if band.seeds != 1 else ''})",
                                     showlegend=row == 1, legendgroup=loss, xaxis=f"x{axis}", yaxis=f"y{axis}",
                                     hovertemplate=f"{label}, epoch %{{x}}: %{{y:.4g}}<extra></extra>"))
            if onsets and loss in onsets and onsets[loss] is not None:
                # Where the terminal phase starts for this loss (mean onset over seeds).
                lo = min(scale * v for v in band.low)
                hi = max(scale * v for v in band.high)
                traces.append(go.Scatter(x=[onsets[loss]] * 2, y=[lo, hi], mode="lines", showlegend=False,
                                         line=dict(color=color, width=1.5, dash="dot"), legendgroup=loss,
                                         xaxis=f"x{axis}", yaxis=f"y{axis}", hoverinfo="skip"))
        value = (baselines or {}).get(key)
        epochs = [e for runs in runs_by_loss.values() for r in runs for e in (r["epochs"][0]["epoch"],
                                                                               r["epochs"][-1]["epoch"])]
        traces.append(go.Scatter(x=[min(epochs), max(epochs)], y=[value, value] if value is not None else [None] * 2,
                                 mode="lines", name="random geometry", showlegend=False, hoverinfo="skip",
                                 line=dict(color="grey", dash="dash", width=1), xaxis=f"x{axis}", yaxis=f"y{axis}"))
    return traces


def seed_band_figure(settings: dict, *, keys=("clean_train_acc", "nc1", "nc2", "nc3", "nc4"), baselines=None,
                     onsets=None, floors: dict | None = None, label=str, panel_height: int = 190):
    """Metrics over training, one panel per metric stacked in a single column (readable at any
    width), one colour per loss: the mean over seeds as a line and the lowest-to-highest seed as
    a band; dotted vertical lines where the terminal phase starts (``onsets``); dashed grey the
    value random geometry has (``baselines``). Several settings get a slider.

    Args:
        settings: ``{setting: {loss: [results]}}``.
        baselines: ``setting -> {metric: value}``.
        onsets: ``setting -> {loss: epoch}``.
        floors: ``{metric: value}`` drawn in place of smaller values (zeros) on a log axis; say
            so in the caption.
        label: ``setting -> slider label``.
    """
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=len(keys), cols=1, shared_xaxes=True, vertical_spacing=0.035,
                        subplot_titles=None)
    for row, key in enumerate(keys, 1):
        title, log = METRIC_AXES[key]
        shown = [max(e[key], (floors or {}).get(key, 0.0)) for runs_by_loss in settings.values()
                 for runs in runs_by_loss.values() for r in runs for e in r["epochs"] if e.get(key) is not None]
        fig.update_yaxes(title_text=title, row=row, col=1, **(log_ticks(shown) if log else {}))
    fig.update_xaxes(title_text="epoch", row=len(keys), col=1)
    steps = []
    for setting, runs_by_loss in settings.items():
        steps.append((label(setting), _band_traces(runs_by_loss, keys, baselines(setting) if baselines else None,
                                                   onsets(setting) if onsets else None, floors or {})))
    size = max(len(t) for _, t in steps)
    steps = [(name, t + [go.Scatter(x=[None], y=[None], showlegend=False)] * (size - len(t))) for name, t in steps]
    fig.update_layout(margin=dict(l=70, r=10))  # before the slider, which fits its end labels to them
    fig = slider_figure(steps, prefix="", active=0, fig=fig)
    fig.update_layout(height=panel_height * len(keys) + 190, legend=dict(orientation="h", yanchor="bottom", y=1.01,
                                                                        x=0), margin=dict(t=90, b=50))
    if len(steps) == 1:
        # One setting: its name is the title, above the legend rather than on it.
        fig.update_layout(title=dict(y=0.995, yanchor="top", x=0.0, xanchor="left", font=dict(size=14)))
    return fig


def twin_figure(pairs: Sequence[tuple[dict, dict]], setting: str, *, names: Mapping | None = None,
                panel_height: int = 210):
    """Twin runs over training: each reference run (solid) beside its twin (dashed), which differs
    from it only in ``setting``, one colour per loss, in three stacked panels: training images
    still misclassified (log axis, none drawn at half an image), test accuracy and NC1 (log axis),
    at every evaluated epoch. The legend names the losses, one entry toggling every twin of a loss
    (so it stays two rows on a phone, whatever the seeds); the hover text (with the seed, where
    pairs have several, and the width, where they span several) and the caption say which line is
    which.

    Args:
        pairs: ``(reference run, its twin)`` results, for instance from
            :func:`ncrepro.twins.twin_pairs`.
        setting: the config key the twins differ in (``"precision"``).
        names: how each value of ``setting`` reads in the legend (default: as stored).
    """
    from plotly.subplots import make_subplots

    names = names or {}
    panels = (("wrong", "training images wrong", True), ("test_acc", "test accuracy (%)", False),
              ("nc1", "NC1", True))
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.05)
    shown: dict[str, list[float]] = {key: [] for key, _, _ in panels}
    several_seeds = len({reference["config"]["seed"] for reference, _ in pairs}) > 1
    several_widths = len({reference["config"].get("width") for reference, _ in pairs}) > 1
    in_legend: set[str] = set()
    for reference, twin in pairs:
        loss = reference["config"]["loss"]
        color = LOSS_COLORS.get(loss, "#7f7f7f")
        for run, dash in ((reference, "solid"), (twin, "dash")):
            value = run["config"][setting]
            where = f", width {width_label(run['config']['width'])}" if several_widths else ""
            seed = f", seed {run['config']['seed']}" if several_seeds else ""
            label = f"{LOSS_LABELS.get(loss, loss)}{where}{seed}, {names.get(value, value)}"
            first = loss not in in_legend  # one legend entry per loss, however many seeds
            in_legend.add(loss)
            size = run["provenance"]["dataset"]["train_size"]
            evaluated = [e for e in run["epochs"] if e.get("clean_train_acc") is not None]
            x = [e["epoch"] for e in evaluated]
            series = {"wrong": [max(0.5, round((1 - e["clean_train_acc"]) * size)) for e in evaluated],
                      "test_acc": [100 * e["test_acc"] for e in evaluated],
                      "nc1": [e["nc1"] for e in evaluated]}
            for row, (key, _, _) in enumerate(panels, 1):
                shown[key] += series[key]
                fig.add_trace(go.Scatter(x=x, y=series[key], mode="lines+markers", marker=dict(size=4),
                                         line=dict(color=color, dash=dash, width=2),
                                         name=LOSS_LABELS.get(loss, loss), legendgroup=loss,
                                         showlegend=row == 1 and first,
                                         hovertemplate=f"{label}, epoch %{{x}}: %{{y:.4g}}<extra></extra>"),
                              row=row, col=1)
    for row, (key, title, log) in enumerate(panels, 1):
        fig.update_yaxes(title_text=title, row=row, col=1, **(log_ticks(shown[key]) if log else {}))
    fig.update_xaxes(title_text="epoch", row=len(panels), col=1)
    # The top margin holds a two-row legend on a phone and, above it, the mode bar.
    fig.update_layout(height=panel_height * len(panels) + 140, margin=dict(l=70, r=10, t=90, b=50),
                      legend=dict(orientation="h", yanchor="bottom", y=1.01, x=0))
    return fig


def pair_heatmap(matrix: dict, losses: Sequence[str], *, title: str, scale: float = 1.0, fmt: str = ".3f",
                 colorscale: str = "Blues", reverse: bool = False, zrange: tuple[float, float] | None = None):
    """A loss-by-loss heatmap of a measure between networks (:func:`ncrepro.comparison.pair_matrix`):
    off the diagonal, networks of two losses; on it, networks of one loss from different seeds.
    Each cell shows its mean (times ``scale``); the colour bar is titled ``title`` and spans
    ``zrange`` (a fixed scale, so that one value or two do not stretch it)."""
    labels = [LOSS_LABELS.get(loss, loss) for loss in losses]
    z, text = [], []
    for a in losses:
        z_row, t_row = [], []
        for b in losses:
            e = matrix.get((a, b))
            z_row.append(None if e is None else scale * e.mean)
            t_row.append("" if e is None else format(scale * e.mean, fmt))
        z.append(z_row)
        text.append(t_row)
    bounds = {} if zrange is None else {"zmin": zrange[0], "zmax": zrange[1]}
    fig = go.Figure(go.Heatmap(z=z, x=labels, y=labels, text=text, texttemplate="%{text}", colorscale=colorscale,
                               reversescale=reverse, colorbar=dict(title=dict(text=title, side="right")),
                               hovertemplate="%{y} and %{x}: %{text}<extra></extra>", **bounds))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(margin=dict(l=60, r=10, t=30, b=40))
    if not any(v is not None for row in z for v in row):
        fig.add_annotation(text="No two networks to compare yet:<br>each pair appears here once both have "
                                "finished training", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return fig
