"""The report's figures are readable where they are read: in a notebook cell (at most ~900 px wide)
and on the report's page, no text of any figure is under 9 px high. A 17-inch strip of panels
with 7-pt legends showed them at 5-6 px."""

import pytest

from engine import experiments as ex
from reports import figures


@pytest.fixture(scope="module")
def mpl():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    yield matplotlib
    plt.close("all")


@pytest.mark.parametrize("name", sorted(figures.FIGURES))
def test_every_text_of_the_reports_figures_is_at_least_9_px_where_it_is_read(name, mpl):
    figs = figures.make_figures(ex.load_results(name))
    assert figs
    for key, fig in figs.items():
        fig.canvas.draw()
        texts = [t for t in fig.findobj(mpl.text.Text) if t.get_visible() and t.get_text().strip()]
        assert texts
        small = {t.get_text(): round(figures.readable_px(fig, t.get_fontsize()), 1) for t in texts
                 if figures.readable_px(fig, t.get_fontsize()) < 9}
        assert not small, f"{key}: text under 9 px in a {figures.NOTEBOOK_PX}-px cell: {small}"


def test_the_legend_of_many_runs_lies_below_the_panels_not_over_a_curve(mpl):
    fig = figures.make_figures(ex.load_results("mlp"))["mlp_fashion-mnist"]
    fig.canvas.draw()
    legend = fig.legends[0].get_window_extent()
    assert all(legend.y1 <= ax.get_window_extent().y0 for ax in fig.axes if ax.get_visible())
    assert len(fig.legends[0].get_texts()) == 12          # every condition, the baselines included
    styles = [(line.get_color(), line.get_linestyle()) for line in fig.legends[0].get_lines()]
    assert len(set(styles)) == 12                          # no two drawn alike
