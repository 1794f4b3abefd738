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


def test_live_controls_redraw_when_moved():
    calls = []

    def update(a=1.0):
        calls.append(a)
        return go.Figure(go.Scatter(y=[a]))

    ui, out = build_live_controls(update, a=(0.0, 2.0, 0.5, 1.0))
    ui.children[0].value = 1.5
    assert calls[-1] == 1.5
