"""Figures: graphical models, training curves, piano rolls, mel spectrograms, generated trajectories.

Every function returns a :class:`matplotlib.figure.Figure` built without
``pyplot``: nothing switches the global backend, so the same figures display
inline in a notebook (IPython shows a ``Figure`` as PNG) and are saved by the
scripts with :func:`save_figure`. Graphs of the models come from Pyro's own
inspection tools (:func:`pyro.infer.inspect.get_model_relations`, the engine of
:func:`pyro.render_model`).
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ["new_figure", "save_figure", "model_relations", "render_model_graph", "has_graphviz_dot",
           "model_graph_figure", "curves_figure", "piano_roll_figure", "mel_spectrogram_figure",
           "generation_figure", "histogram_steps"]


def new_figure(rows: int = 1, cols: int = 1, size: Tuple[float, float] = (4.0, 3.0), **subplot_kw):
    """A ``Figure`` with a ``rows x cols`` grid of axes, each ``size`` inches; returns ``(fig, axes)``.

    ``axes`` is always a 2-D object array ``(rows, cols)``.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * cols, size[1] * rows))
    axes = fig.subplots(rows, cols, squeeze=False, **subplot_kw)
    return fig, axes


def save_figure(fig, path: Union[str, Path], dpi: int = 90) -> None:
    """Write ``fig`` as a PNG, atomically (a reader never sees half a file)."""
    from .utils import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    atomic_write_bytes(Path(path), buf.getvalue())


# ---------------------------------------------------------------- graphical models
def model_relations(model, num_steps: int = 3) -> Dict[str, Any]:
    """The sample-site dependencies of a DSSM unrolled over ``num_steps`` steps.

    The model runs in generation mode, so that Pyro's provenance tracking sees
    every dependency, those on past observations included (with data given,
    ``x`` enters as a constant and its edges vanish); the ``x`` sites are then
    marked observed, as in the papers' figures.

    Returns:
        :func:`pyro.infer.inspect.get_model_relations`'s dict; ``sample_sample``
        maps each site (``z_1``, ``x_1``, ...) to its parents.
    """
    from pyro.infer.inspect import get_model_relations

    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    rel = get_model_relations(model, model_kwargs={"num_steps": num_steps, "batch_size": 1})
    rel["observed"] = sorted(s for s in rel["sample_sample"] if s.startswith("x_"))
    return rel


def render_model_graph(model, num_steps: int = 3, render_distributions: bool = False):
    """The :func:`pyro.render_model` picture of ``model`` over ``num_steps`` steps: a ``graphviz.Digraph``.

    Needs the ``graphviz`` Python package; showing or saving it as an image
    also needs Graphviz's ``dot`` program (:func:`has_graphviz_dot`); without it
    use :func:`model_graph_figure`, which draws the same relations with matplotlib.
    """
    from pyro.infer.inspect import generate_graph_specification, render_graph

    rel = model_relations(model, num_steps)
    return render_graph(generate_graph_specification(rel), render_distributions=render_distributions)


def has_graphviz_dot() -> bool:
    """Whether Graphviz's ``dot`` program is on ``PATH`` (needed to display a ``Digraph``)."""
    return shutil.which("dot") is not None


def _site(name: str) -> Tuple[str, int]:
    kind, t = name.split("_")
    return kind, int(t)


def _draw_relations(ax, rel: Mapping[str, Any], title: str) -> None:
    """Time runs left to right, ``z`` on the top row, ``x`` (shaded: observed) below."""
    from matplotlib.patches import Circle

    parents = rel["sample_sample"]
    observed = set(rel.get("observed", ()))
    pos = {s: (_site(s)[1], 1.0 if _site(s)[0] == "z" else 0.0) for s in parents}
    T = max(p[0] for p in pos.values())
    for child, ps in parents.items():
        (tc, yc) = pos[child]
        for parent in ps:
            (tp, yp) = pos[parent]
            gap = tc - tp
            if yc == yp:  # same row: skip connections arc away from the other row
                rad = 0.0 if gap == 1 else (0.35 if yc == 0 else -0.35)
            else:
                rad = 0.0 if gap <= 1 else (0.2 if yc == 0 else -0.2)
            ax.annotate("", xy=(tc, yc), xytext=(tp, yp),
                        arrowprops=dict(arrowstyle="-|>", color="0.25", lw=0.9, shrinkA=11, shrinkB=11,
                                        connectionstyle=f"arc3,rad={rad}"))
    for s, (t, y) in pos.items():
        ax.add_patch(Circle((t, y), 0.22, facecolor="0.8" if s in observed else "white", edgecolor="black", zorder=3))
        kind, step = _site(s)
        ax.text(t, y, f"${kind}_{step}$", ha="center", va="center", fontsize=9, zorder=4)
    ax.set_xlim(0.4, T + 0.6)
    ax.set_ylim(-0.9, 1.9)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=9)


def model_graph_figure(models: Mapping[str, Any], num_steps: int = 3, cols: int = 4):
    """The graphical models of several DSSMs side by side (the papers' Figs. 1, 3-5).

    Args:
        models: ``{title: model}``; each model is unrolled with :func:`model_relations`.
        num_steps: time steps drawn.
        cols: panels per row.
    """
    if not models:
        raise ValueError("models is empty: pass {title: model}")
    n = len(models)
    rows = -(-n // cols)
    fig, axes = new_figure(rows, min(cols, n), size=(0.8 * num_steps + 0.4, 2.0))
    flat = axes.ravel()
    for ax, (title, model) in zip(flat, models.items()):
        _draw_relations(ax, model_relations(model, num_steps), title)
    for ax in flat[n:]:
        ax.axis("off")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- curves and data
def curves_figure(curves: Mapping[str, Sequence[float]], ylabel: str = "negative ELBO per step",
                  xlabel: str = "epoch", panels: bool = True):
    """Training curves: one panel per run (``panels=True``, shared y axis) or all on one axis.

    Args:
        curves: ``{run name: values}``, one value per epoch.
    """
    if not curves:
        raise ValueError("curves is empty: pass {name: values}")
    n = len(curves) if panels else 1
    fig, axes = new_figure(1, n, size=(3.6, 2.8), sharey=True)
    for i, (name, values) in enumerate(curves.items()):
        ax = axes[0, i if panels else 0]
        v = np.asarray(values, dtype=float)
        ax.plot(np.arange(1, len(v) + 1), v, marker="o" if len(v) < 15 else None, ms=3, label=name)
        ax.set_xlabel(xlabel)
        ax.set_title(name if panels else "", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel(ylabel)
    if not panels:
        axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def piano_roll_figure(groups: Sequence[Tuple[str, Sequence[np.ndarray]]], lowest_midi: int = 21):
    """Rows of piano rolls: ``groups`` is ``[(row title, [roll (T, 88), ...]), ...]``.

    Time steps run left to right (x axis, "time step"); the y axis is the MIDI pitch,
    ticked at each C (C1 = 24, ..., C8 = 108).
    """
    groups = [(title, list(seqs)) for title, seqs in groups if len(seqs)]
    if not groups:
        raise ValueError("no piano rolls to draw")
    cols = max(len(seqs) for _, seqs in groups)
    fig, axes = new_figure(len(groups), cols, size=(3.0, 2.2))
    for r, (title, seqs) in enumerate(groups):
        for c in range(cols):
            ax = axes[r, c]
            if c >= len(seqs):
                ax.axis("off")
                continue
            roll = np.asarray(seqs[c])
            top = lowest_midi + roll.shape[1]
            ax.imshow(roll.T, aspect="auto", origin="lower", cmap="Greys", interpolation="nearest",
                      extent=(0, roll.shape[0], lowest_midi, top))
            cs = [m for m in range(lowest_midi, top + 1) if m % 12 == 0]
            ax.set_yticks(cs)
            ax.set_yticklabels([f"C{m // 12 - 1}" for m in cs] if c == 0 else [], fontsize=6)
            ax.tick_params(axis="x", labelsize=6)
            if r == len(groups) - 1 or c >= len(groups[r + 1][1]):
                ax.set_xlabel("time step", fontsize=7)
            if c == 0:
                ax.set_ylabel(f"{title}\nMIDI pitch", fontsize=7)
    fig.tight_layout()
    return fig


def mel_spectrogram_figure(items: Sequence[Dict[str, Any]], names: Sequence[str], stft_cfg, n_mels: int = 80):
    """The taxonomy paper's Fig. 2: mel spectrograms (dB) of originals (top) and reconstructions (bottom).

    Args:
        items: per utterance ``{"power": (T, F), "power_hat": (T, F)}`` power spectrograms.
        names: one title per item.
        stft_cfg: the :class:`~pyro_dssm.data.speech.STFTConfig` of the spectrograms.
    """
    import librosa

    if not items:
        raise ValueError("no spectrograms to draw")
    fig, axes = new_figure(2, len(items), size=(4.0, 2.5))
    for c, (item, name) in enumerate(zip(items, names)):
        mels = [librosa.feature.melspectrogram(S=np.asarray(item[k]).T, sr=stft_cfg.sample_rate,
                                               n_fft=stft_cfg.n_fft, n_mels=n_mels)
                for k in ("power", "power_hat")]
        ref = max(float(mels[0].max()), 1e-10)
        for r, (m, label) in enumerate(zip(mels, ("original", "reconstruction"))):
            db = librosa.power_to_db(m, ref=ref, top_db=80)
            extent = (0, m.shape[1] * stft_cfg.hop / stft_cfg.sample_rate, 0, n_mels)
            axes[r, c].imshow(db, origin="lower", aspect="auto", cmap="magma", extent=extent, vmin=-80, vmax=0)
            axes[r, c].set_title(f"{name}: {label}", fontsize=8)
            axes[r, c].set_xlabel("time (s)")
            axes[r, c].set_ylabel("mel band")
    fig.tight_layout()
    return fig


def histogram_steps(L: int, count: int = 4) -> np.ndarray:
    """``count`` steps equally spaced in log scale between 0.5% and 10% of ``L`` (LS4 Fig. 1b)."""
    return np.unique(np.clip(np.round(np.geomspace(0.005 * L, 0.1 * L, count)).astype(int), 0, L - 1))


def generation_figure(real: np.ndarray, fake: np.ndarray, dim: int = 0, shown: int = 20,
                      steps: Optional[Sequence[int]] = None):
    """LS4's Fig. 1 for feature ``dim``: trajectories and means (left), marginal histograms (right).

    Args:
        real, fake: ``(N, L, x_dim)`` real and generated sequences (the counts may differ).
        shown: trajectories drawn of each.
        steps: time steps of the histograms; default :func:`histogram_steps`.
    """
    real, fake = np.asarray(real), np.asarray(fake)
    if real.ndim != 3 or fake.ndim != 3 or real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"real and fake must be (N, L, x_dim) with equal L and x_dim, "
                         f"got {real.shape} and {fake.shape}")
    steps = histogram_steps(real.shape[1]) if steps is None else np.asarray(steps)
    fig, axes = new_figure(1, 1 + len(steps), size=(2.5, 3.0))
    axes = axes[0]
    t = np.arange(real.shape[1])
    for data, colour, label in ((real, "tab:blue", "real"), (fake, "tab:orange", "generated")):
        axes[0].plot(t, data[:shown, :, dim].T, color=colour, alpha=0.15, lw=0.8)
        axes[0].plot(t, np.nanmean(data[:, :, dim], 0), color=colour, lw=2, label=f"{label} mean")
    axes[0].set_xlabel("t")
    axes[0].legend(fontsize=7)
    for ax, s in zip(axes[1:], steps):
        r, f = real[:, s, dim], fake[:, s, dim]
        r, f = r[np.isfinite(r)], f[np.isfinite(f)]
        both = np.concatenate([r, f])
        lo, hi = (float(both.min()), float(both.max())) if both.size else (0.0, 1.0)
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 30)
        ax.hist(r, bins, alpha=0.5, density=True, label="real")
        ax.hist(f, bins, alpha=0.5, density=True, label="generated")
        ax.set_title(f"t = {s}", fontsize=8)
    if len(steps):
        axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig
