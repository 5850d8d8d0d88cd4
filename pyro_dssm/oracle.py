"""The correctness experiment: variational bounds against the exact likelihood of a linear-Gaussian SSM.

The HMM base with linear maps and Gaussian noise,

.. math::
    z_t = A z_{t-1} + \\epsilon_t,\\ \\epsilon_t \\sim N(0, \\mathrm{diag}(q^2)), \\qquad
    x_t = C z_t + \\eta_t,\\ \\eta_t \\sim N(0, \\mathrm{diag}(r^2)),

has an exact marginal likelihood (the Kalman filter, :func:`pyro_dssm.kalman_log_likelihood`).
:func:`oracle_experiment` fixes such a model, draws sequences from it, fits a guide
alone (the model stays the truth) and reports, per time step, how far the ELBO
(eq. (9) of the taxonomy paper) and the importance-weighted bound with K particles
(Burda et al. 2016) lie below ``log p(x)`` as K grows. Both gaps must be >= 0 up to
Monte-Carlo error; the IWAE gap must shrink with K; the ELBO gap measures how far the
guide is from the exact posterior, which the full-alignment guide can represent.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Sequence

import torch

import pyro

from .infer import LeanTraceMeanField_ELBO, kalman_log_likelihood, linear_gaussian_log_likelihood, log_weights

__all__ = ["linear_gaussian_dssm", "fit_guide", "fit_model", "system_log_likelihood", "broad_initial_system",
           "initial_state_experiment", "bound_gaps", "oracle_experiment", "oracle_table"]


def linear_gaussian_dssm(z_dim: int = 2, x_dim: int = 3, seed: int = 0):
    """A frozen linear-Gaussian HMM-base :class:`~pyro_dssm.models.DSSM` with a rotation-like, non-symmetric A.

    With ``z_dim=2, x_dim=3`` the parameters are fixed numbers (A a 0.9-scaled rotation by
    0.3 rad, q = (0.5, 0.3), C = [[1, 0], [0.5, 1], [-1, 0.3]], r = (0.4, 0.3, 0.5),
    z_0 = (0.7, -0.4)); other sizes draw them from ``seed``. The initial distribution is
    ``p(z_1) = N(A z_0, diag q^2)``, the transition from ``z_0``.
    """
    from .models import create_model

    torch.manual_seed(seed)
    m = create_model("hmm", x_dim=x_dim, z_dim=z_dim, transition_net="linear", emission_net="linear")
    with torch.no_grad():
        if (z_dim, x_dim) == (2, 3):
            th = 0.3
            A = 0.9 * torch.tensor([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
            q, C = torch.tensor([0.5, 0.3]), torch.tensor([[1.0, 0.0], [0.5, 1.0], [-1.0, 0.3]])
            r, z0 = torch.tensor([0.4, 0.3, 0.5]), torch.tensor([0.7, -0.4])
        else:
            Q, _ = torch.linalg.qr(torch.randn(z_dim, z_dim))
            A, q, C = 0.9 * Q, 0.2 + 0.4 * torch.rand(z_dim), torch.randn(x_dim, z_dim) / math.sqrt(z_dim)
            r, z0 = 0.2 + 0.4 * torch.rand(x_dim), torch.randn(z_dim)
        m.transition.weight.weight.copy_(A)
        m.transition.raw_scale.copy_(q.expm1().log())  # softplus^-1
        m.emitter.body.weight.weight.copy_(C)
        m.emitter.body.raw_scale.copy_(r.expm1().log())
        m.initial.loc.copy_(A @ z0)
        m.initial.raw_scale.copy_((q - m.initial.min_scale).expm1().log())
    m.requires_grad_(False).train(False)
    return m


def fit_guide(model, guide, x: torch.Tensor, steps: int, lr: float = 1e-2, particles: int = 4) -> List[float]:
    """Fit ``guide`` alone to ``x`` ``(B, T, x_dim)`` by Adam on the ELBO; returns the loss per step."""
    return _fit(model, guide, x, steps, lr, particles, fit_model=False)


def fit_model(model, guide, x: torch.Tensor, steps: int, lr: float = 1e-2, particles: int = 4) -> List[float]:
    """Fit ``model`` *and* ``guide`` to ``x`` ``(B, T, x_dim)`` by Adam on the ELBO; returns the loss per step.

    Used to check the model class, not only the guide: on data from a linear-Gaussian SSM
    the Kalman likelihood of the learned linear HMM must come close to the truth's.
    """
    return _fit(model, guide, x, steps, lr, particles, fit_model=True)


def _fit(model, guide, x, steps, lr, particles, fit_model: bool) -> List[float]:
    guide(x)  # create every parameter before the optimiser sees them
    params = (list(model.parameters()) if fit_model else []) + list(guide.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    loss_fn = LeanTraceMeanField_ELBO(num_particles=particles, vectorize_particles=True, max_plate_nesting=1)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn.differentiable_loss(model, guide, x)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def system_log_likelihood(system, x: torch.Tensor) -> torch.Tensor:
    """Exact ``log p(x)`` ``(B,)`` under a :class:`~pyro_dssm.data.LinearGaussianSSM` (the truth)."""
    loc1, scale1 = system.initial()
    return linear_gaussian_log_likelihood(system.A, system.q, system.C, system.r, None, x,
                                          initial=(torch.as_tensor(loc1), torch.as_tensor(scale1)))


def broad_initial_system():
    """A linear-Gaussian SSM whose first state ``N((1.5, -1), diag(2.0, 1.5)^2)`` is far broader than its
    transition noise (q = 0.3): A a 0.9-scaled rotation by 0.3 rad, C = [[1, 0], [0.5, 1], [-1, 0.3]], r = 0.4."""
    import numpy as np

    from .data.synthetic import LinearGaussianSSM

    th = 0.3
    A = 0.9 * np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    return LinearGaussianSSM(A=A, q=np.array([0.3, 0.3]), C=np.array([[1.0, 0.0], [0.5, 1.0], [-1.0, 0.3]]),
                             r=np.array([0.4, 0.4, 0.4]), z0=np.zeros(2), z1_loc=np.array([1.5, -1.0]),
                             z1_scale=np.array([2.0, 1.5]))


def initial_state_experiment(*, seeds: Sequence[int] = (0, 1, 2), initials: Sequence[str] = ("learned", "transition"),
                             num_sequences: int = 256, length: int = 12, fit_steps: int = 600, lr: float = 2e-2,
                             log=print) -> List[Dict[str, Any]]:
    """Fit the linear HMM preset, model *and* full guide, to data from :func:`broad_initial_system`.

    One record per (seed, initial): the exact log p(x) per step on held-out sequences under
    the truth and under the learned parameters (Kalman), and the ELBO per step (50 particles).
    ``initial="learned"`` has its own ``p(z_1)``; ``"transition"`` draws ``z_1`` from the transition.
    """
    from .guides import create_guide
    from .infer import elbo_per_sequence
    from .models import create_model

    system, records = broad_initial_system(), []
    for seed in seeds:
        x_train = torch.as_tensor(system.sample(num_sequences, length, seed=2 * seed + 1))
        x_test = torch.as_tensor(system.sample(num_sequences, length, seed=2 * seed + 2))
        truth = float(system_log_likelihood(system, x_test).mean()) / length
        for initial in initials:
            pyro.set_rng_seed(seed)
            m = create_model("hmm", x_dim=3, z_dim=2, transition_net="linear", emission_net="linear",
                             initial=initial)
            g = create_guide("full", m, rnn_dim=16, hidden_dim=16)
            fit_model(m, g, x_train, fit_steps, lr=lr)
            with torch.no_grad():
                learned = float(kalman_log_likelihood(m, x_test).mean()) / length
                elbo = float(elbo_per_sequence(m, g, x_test, num_particles=50)[0].mean()) / length
            records.append({"seed": seed, "initial": initial, "fit_steps": fit_steps, "log_p_truth": truth,
                            "log_p_learned": learned, "elbo": elbo})
            log(f"seed {seed} initial={initial}: log p(x)/step truth {truth:.4f}, learned {learned:.4f} "
                f"(gap {truth - learned:.4f}), ELBO {elbo:.4f}")
    return records


def bound_gaps(model, guide, x: torch.Tensor, particles: Sequence[int], exact: torch.Tensor,
               repeats: int = 1) -> Dict[int, Dict[str, float]]:
    """For each K: mean per-step gaps ``(log p(x) - bound) / T`` of the K-sample ELBO and IWAE bounds.

    Both bounds are computed from the same ``K`` log-weights ``(K, B)``: the ELBO as their mean,
    IWAE as ``logsumexp - log K``; ``repeats`` independent draws are averaged.
    """
    T = x.shape[1]
    out = {}
    with torch.no_grad():
        for K in particles:
            elbo_gap, iwae_gap = 0.0, 0.0
            for _ in range(repeats):
                lw = log_weights(model, guide, x, num_particles=K)
                elbo_gap += ((exact - lw.mean(0)) / T).mean().item() / repeats
                iwae_gap += ((exact - (torch.logsumexp(lw, 0) - math.log(K))) / T).mean().item() / repeats
            out[K] = {"elbo_gap": elbo_gap, "iwae_gap": iwae_gap}
    return out


def oracle_experiment(*, seeds: Sequence[int] = (0, 1, 2), guides: Sequence[str] = ("full",),
                      num_sequences: int = 64, length: int = 20, fit_steps: int = 500, lr: float = 1e-2,
                      particles: Sequence[int] = (1, 10, 100, 1000), repeats: int = 3, rnn_dim: int = 32,
                      hidden_dim: int = 32, z_dim: int = 2, x_dim: int = 3,
                      log=print) -> List[Dict[str, Any]]:
    """One record per (seed, guide, fitted or not): exact log p(x) per step and the gaps per K.

    Each seed draws ``num_sequences`` sequences of ``length`` steps from
    :func:`linear_gaussian_dssm` and builds a fresh guide per name; the guide is scored
    untrained, then after ``fit_steps`` Adam steps on the ELBO.
    """
    from .guides import create_guide

    if fit_steps < 0 or num_sequences < 1 or length < 1 or not particles or min(particles) < 1:
        raise ValueError("fit_steps >= 0, num_sequences >= 1, length >= 1 and particles >= 1 are required")
    records = []
    for seed in seeds:
        model = linear_gaussian_dssm(z_dim, x_dim)
        pyro.set_rng_seed(seed)
        x, _ = model.generate(length, batch_size=num_sequences)
        exact = kalman_log_likelihood(model, x)
        for name in guides:
            pyro.set_rng_seed(1000 + seed)
            guide = create_guide(name, model, rnn_dim=rnn_dim, hidden_dim=hidden_dim)
            for fitted in (False, True):
                if fitted:
                    fit_guide(model, guide, x, fit_steps, lr=lr)
                pyro.set_rng_seed(2000 + seed)
                gaps = bound_gaps(model, guide, x, particles, exact, repeats=repeats)
                records.append({"seed": seed, "guide": name, "fitted": fitted, "fit_steps": fit_steps if fitted else 0,
                                "log_p_per_step": (exact / length).mean().item(),
                                "gaps": {str(k): v for k, v in gaps.items()}})
                log(f"seed {seed} {name} ({'fitted' if fitted else 'untrained'}): "
                    + ", ".join(f"K={k}: ELBO gap {v['elbo_gap']:.4f}, IWAE gap {v['iwae_gap']:.4f}"
                                for k, v in gaps.items()))
    return records


def oracle_table(records: Sequence[Dict[str, Any]]) -> str:
    """Markdown: per guide state and K, mean ± std over seeds of the per-step gaps to log p(x)."""
    from .metrics.stats import mean_std

    groups: Dict[tuple, List[Dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["guide"], r["fitted"], r["fit_steps"]), []).append(r)
    lines = ["| guide | K | log p(x) / step (exact) | ELBO gap / step | IWAE gap / step | seeds |",
             "|---|---|---|---|---|---|"]

    def fmt(ms):
        return f"{ms['mean']:.4f} ± {ms['std']:.4f}"

    for (guide, fitted, steps), rs in groups.items():
        label = f"{guide}, " + (f"fitted ({steps} steps)" if fitted else "untrained")
        lp = fmt(mean_std([r["log_p_per_step"] for r in rs]))
        for k in rs[0]["gaps"]:
            e = mean_std([r["gaps"][k]["elbo_gap"] for r in rs])
            i = mean_std([r["gaps"][k]["iwae_gap"] for r in rs])
            lines.append(f"| {label} | {k} | {lp} | {fmt(e)} | {fmt(i)} | {len(rs)} |")
    return "\n".join(lines)
