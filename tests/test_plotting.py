import plotly.graph_objects as go
import pytest

from ncrepro.plotting import build_live_controls, slider_figure


def test_slider_switches_groups_and_keeps_fixed_traces():
    steps = [(str(i), [go.Scatter(y=[i, i]), go.Scatter(y=[0, i])]) for i in range(3)]
    fig = slider_figure(steps, fixed=[go.Scatter(y=[1, 2])], active=1)
    assert len(fig.data) == 7
    assert [t.visible for t in fig.data[1:]] == [False, False, True, True, False, False]
    vis = [s.args[0]["visible"] for s in fig.layout.sliders[0].steps]
    assert vis[2] == [True, False, False, False, False, True, True]
    with pytest.raises(ValueError, match="same number"):
        slider_figure([("a", [go.Scatter()]), ("b", [])])


def test_single_step_gets_no_slider_but_names_its_setting():
    # plotly draws no slider for one position, so the figure must not carry a dead one.
    fig = slider_figure([("width 1/16", [go.Scatter(y=[1, 2])])], prefix="setting: ")
    assert not fig.layout.sliders
    assert fig.data[0].visible is True
    assert "setting: width 1/16" in fig.layout.title.text


def test_live_controls_redraw_when_moved():
    calls = []

    def update(a=1.0):
        calls.append(a)
        return go.Figure(go.Scatter(y=[a]))

    ui, out = build_live_controls(update, a=(0.0, 2.0, 0.5, 1.0))
    ui.children[0].value = 1.5
    assert calls[-1] == 1.5


def test_html_table_renders_a_table_not_markdown():
    from ncrepro.plotting import html_table

    t = html_table(["loss", "acc", "link"], [["CE", 0.91234, ("html", '<a href="x.html">x</a>')], ["<b>", None, "y"]],
                   formats=[None, ".1%", None], caption="A & B")
    html = t._repr_html_()
    assert html.startswith('<table class="table ncrepro-table"><caption>A &amp; B</caption>')
    assert "<td class=\"text\">&lt;b&gt;</td>" in html and '<a href="x.html">x</a>' in html
    assert "91.2%" in html and "–" in html and "|" not in repr(t)
    with pytest.raises(ValueError, match="cells for 3 columns"):
        html_table(["a", "b", "c"], [[1, 2]])


def test_scene_traces_are_3d():
    import numpy as np

    from ncrepro.plotting import scene_traces

    traces = scene_traces(np.eye(3), np.eye(3), np.arange(3))
    assert len(traces) == 6 and all(t.type == "scatter3d" for t in traces)
    with pytest.raises(ValueError, match="3-D"):
        scene_traces(np.eye(4), np.eye(4), np.arange(4))


def test_log_ticks_fit_their_range():
    from ncrepro.plotting import log_ticks

    short = log_ticks([0.3, 0.6])
    assert short["tickvals"] == [0.2, 0.5] and short["ticktext"] == ["0.2", "0.5"]
    assert log_ticks([1e-3, 1.0])["dtick"] == 1
    assert log_ticks([1e-12, 1e2])["dtick"] == 2 and log_ticks([1e-20, 1.0])["dtick"] == 3
    assert log_ticks([0.0, None])["dtick"] == 1  # nothing positive: powers of ten


def test_slider_rail_is_inset_by_half_its_end_labels():
    # End labels are centred on the end ticks; without an inset a long one is cut off at the
    # figure's edge (seen at 1,280 px with 'width 1/4 (1 seed)').
    import plotly.graph_objects as go

    from ncrepro.plotting import slider_figure

    steps = [(label, [go.Scatter(x=[0], y=[0])]) for label in ("0.1", "width 1/4 (1 seed)")]
    pad = slider_figure(steps, fig=go.Figure(layout=dict(margin=dict(l=70, r=10)))).layout.sliders[0].pad
    assert pad.l == 0  # the left margin holds half of '0.1'
    assert pad.r + 10 >= 3 * len("width 1/4 (1 seed)")
    # Only what the margin lacks: a wide right margin needs no inset (a shorter rail would make
    # plotly drop labels that no longer fit).
    assert slider_figure(steps, fig=go.Figure(layout=dict(margin=dict(r=80)))).layout.sliders[0].pad.r == 0


def test_twin_figure_draws_each_run_beside_its_twin():
    """Reference solid, twin dashed, one colour per loss; a fitted run's zero misclassified
    training images is drawn at half an image on the log axis."""
    from ncrepro.plotting import LOSS_COLORS, twin_figure

    def run(loss, precision, accs, seed=0):
        return {"config": {"loss": loss, "precision": precision, "seed": seed},
                "provenance": {"dataset": {"train_size": 1_000}},
                "epochs": [{"epoch": 5 * (i + 1), "clean_train_acc": a, "test_acc": 0.7, "nc1": 0.5 / (i + 1)}
                           for i, a in enumerate(accs)]}

    pairs = [(run("ce", "bf16", [0.9, 1.0]), run("ce", "fp32", [0.91, 0.999])),
             (run("mse", "bf16", [0.8, 0.99]), run("mse", "fp32", [0.8, 0.995]))]
    fig = twin_figure(pairs, "precision", names={"bf16": "bfloat16", "fp32": "float32"})
    assert len(fig.data) == 2 * 2 * 3
    assert [t.name for t in fig.data if t.showlegend] == ["CE", "MSE"]   # one entry per loss toggles both
    assert {t.legendgroup for t in fig.data[:6]} == {"ce"} and "MSE, float32" in fig.data[-1].hovertemplate
    wrong = [t for t in fig.data if t.yaxis == "y"]
    assert [list(t.y) for t in wrong] == [[100, 0.5], [90, 1], [200, 10], [200, 5]]
    assert [t.line.dash for t in wrong] == ["solid", "dash", "solid", "dash"]
    assert wrong[0].line.color == wrong[1].line.color == LOSS_COLORS["ce"] != wrong[2].line.color
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis3.type == "log" and fig.layout.yaxis2.type != "log"
    assert list(fig.data[1].y) == [70.0, 70.0]
    # Twins of a second seed join their loss's legend entry; the hover text names the seed.
    second = (run("ce", "bf16", [0.9, 1.0], seed=1), run("ce", "fp32", [0.9, 1.0], seed=1))
    fig = twin_figure(pairs + [second], "precision", names={"bf16": "bfloat16", "fp32": "float32"})
    assert [t.name for t in fig.data if t.showlegend] == ["CE", "MSE"]
    assert "CE, seed 1, float32" in fig.data[-1].hovertemplate and "CE, seed 0, bfloat16" in fig.data[0].hovertemplate
    # Twins at a second width: the hover text names the width too.
    wide = tuple({**r, "config": {**r["config"], "width": 0.25}} for r in pairs[0])
    narrow = [tuple({**r, "config": {**r["config"], "width": 0.125}} for r in pair) for pair in pairs]
    fig = twin_figure(narrow + [wide], "precision", names={"bf16": "bfloat16", "fp32": "float32"})
    assert "CE, width 1/4, float32" in fig.data[-1].hovertemplate
    assert "CE, width 1/8, bfloat16" in fig.data[0].hovertemplate
