"""Figures and run histories: what they draw is what the models and logs say."""

import numpy as np
import pytest

import pyro_dssm as pd
from pyro_dssm import plots
from pyro_dssm.training import training_history

from conftest import TINY


def _model(name):
    return pd.create_model(name, x_dim=2, **TINY)


@pytest.mark.parametrize("name", ["hmm", "arhmm", "fhmm", "dmm_aug", "arssm", "vrnn", "srnn", "fssm", "rssm"])
def test_model_relations_show_every_spec_dependency_including_past_observations(name):
    model = _model(name)
    rel = plots.model_relations(model, num_steps=3)
    assert rel["observed"] == ["x_1", "x_2", "x_3"]
    for t in (1, 2, 3):
        for kind in ("z", "x"):
            want = {pd.site_name(k, s) for (k, s) in model.spec.parents((kind, t))}
            assert set(rel["sample_sample"][pd.site_name(kind, t)]) == want, (name, kind, t)


def test_model_relations_rejects_no_steps():
    with pytest.raises(ValueError, match="num_steps"):
        plots.model_relations(_model("hmm"), num_steps=0)


def test_model_graph_figure_draws_one_arrow_per_dependency_and_shades_observations():
    from matplotlib.patches import Circle

    models = {"arhmm": _model("arhmm"), "srnn": _model("srnn")}
    fig = plots.model_graph_figure(models, num_steps=3, cols=2)
    for ax, model in zip(fig.axes, models.values()):
        edges = sum(len(v) for v in plots.model_relations(model, 3)["sample_sample"].values())
        arrows = [c for c in ax.get_children() if type(c).__name__ == "Annotation"]
        assert len(arrows) == edges
        circles = [p for p in ax.patches if isinstance(p, Circle)]
        shaded = [c for c in circles if c.get_facecolor()[:3] != (1.0, 1.0, 1.0)]
        assert len(circles) == 6 and len(shaded) == 3
    with pytest.raises(ValueError, match="empty"):
        plots.model_graph_figure({})


def test_render_model_graph_is_pyros_digraph_of_the_same_relations():
    pytest.importorskip("graphviz")
    source = plots.render_model_graph(_model("arssm"), num_steps=3).source
    assert "x_1 -> x_2" in source and "z_1 -> x_3" in source and "x_1 -> z_2" not in source
    assert "x_1 [label=x_1 fillcolor=gray" in source


def test_curves_and_piano_roll_figures_plot_the_given_values():
    fig = plots.curves_figure({"a": [3.0, 2.0, 1.0], "b": [4.0, 3.5]})
    lines = [ax.get_lines()[0] for ax in fig.axes]
    assert [list(ln.get_ydata()) for ln in lines] == [[3.0, 2.0, 1.0], [4.0, 3.5]]
    assert list(lines[0].get_xdata()) == [1, 2, 3]
    one = plots.curves_figure({"a": [1.0], "b": [2.0]}, panels=False)
    assert len(one.axes) == 1 and len(one.axes[0].get_lines()) == 2
    roll = np.zeros((5, 88))
    roll[2, 40] = 1
    fig = plots.piano_roll_figure([("data", [roll, roll]), ("samples", [roll])])
    assert len(fig.axes) == 4
    shown = fig.axes[0].get_images()[0].get_array()
    assert shown.shape == (88, 5) and shown[40, 2] == 1  # keys up, time to the right
    with pytest.raises(ValueError, match="empty"):
        plots.curves_figure({})
    with pytest.raises(ValueError, match="no piano rolls"):
        plots.piano_roll_figure([("data", [])])


def test_generation_figure_checks_shapes_and_ignores_nan(tmp_path):
    real = np.random.default_rng(0).normal(size=(10, 200, 1))
    real[0, 5, 0] = np.nan  # an unobserved entry
    fig = plots.generation_figure(real, real[:4] + 1)
    assert len(fig.axes) == 1 + len(pd.plots.histogram_steps(200))  # the figure's own choice of steps
    plots.save_figure(fig, tmp_path / "g.png")
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="equal L"):
        plots.generation_figure(real, real[:, :100])


def test_training_history_reads_epochs_and_keeps_the_last_value_of_a_resumed_epoch(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "metrics.csv").write_text(
        "epoch,step,train/loss,val/nelbo_per_step\n"
        "0,10,,21.0\n0,10,44.9,\n1,21,,12.5\n1,21,15.4,\n"
        "2,32,14.0,\n"            # no validation this epoch
        "2,32,13.0,\n2,32,,11.0\n")  # epoch 2 again after a resume
    h = training_history(tmp_path)
    assert h["epoch"] == [0, 1, 2]
    assert h["train"] == [44.9, 15.4, 13.0]
    assert h["val"] == [21.0, 12.5, 11.0]
    (logs / "metrics.csv").write_text("epoch,step,train/loss,val/nelbo_per_step\n0,10,2.0,\n")
    assert np.isnan(training_history(tmp_path)["val"][0])
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        training_history(tmp_path / "nowhere")
