"""FLAME data: the quadrature-and-shift construction against a stiff ODE solver."""

import numpy as np
import pytest

from pyro_dssm.data.flame import flame_time_of_state, flame_trajectories, load_flame


@pytest.mark.parametrize("p", [3, 6, 10])
def test_trajectories_match_a_stiff_solver(p):
    solve_ivp = pytest.importorskip("scipy.integrate").solve_ivp
    deltas = [2e-3, 7e-3, 2e-2]
    x = flame_trajectories(p, deltas)
    assert x.shape == (3, 1001)
    np.testing.assert_allclose(x[:, 0], deltas, rtol=1e-6)
    for d, row in zip(deltas, x):
        sol = solve_ivp(lambda t, y: y ** 2 - y ** p, (0, 1000), [d], method="Radau", t_eval=np.arange(1001),
                        rtol=1e-10, atol=1e-13)
        assert np.abs(row - sol.y[0]).max() < 1e-5
        # the jump to 1 comes at t ~ 1/delta, and the state never decreases
        assert abs(int(np.argmax(row > 0.5)) - 1 / d) < 0.1 / d
        assert (np.diff(row) >= 0).all() and row[-1] > 0.999


def test_time_of_state_and_bad_input():
    s, t = flame_time_of_state(4, x_min=1e-3)
    assert t[0] == 0 and (np.diff(t) > 0).all()
    # far below 1 the time from x_min to s is about 1/x_min - 1/s
    i = np.searchsorted(s, 1e-2)
    assert t[i] == pytest.approx(1 / 1e-3 - 1 / s[i], rel=1e-3)
    with pytest.raises(ValueError, match="p >= 3"):
        flame_time_of_state(2)
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        flame_trajectories(3, [0.0])


def test_flame_corpus():
    c = load_flame(powers=(3, 5), per_power=50, seed=1)
    assert c.x_dim == 1 and sum(len(c.splits[s]) for s in c.splits) == 100
    assert (len(c.splits["test"]), len(c.splits["valid"])) == (20, 10)
    assert all(x.shape == (1001, 1) for x in c.splits["train"])
    ids = [i for s in c.splits for i in c.ids[s]]
    assert len(set(ids)) == 100 and {i.split("-")[0] for i in ids} == {"p3", "p5"}
    again = load_flame(powers=(3, 5), per_power=50, seed=1)
    np.testing.assert_array_equal(c.splits["test"][0], again.splits["test"][0])
    # deltas log-uniform in [2e-3, 2e-2]: every start inside, jumps inside the window
    starts = np.array([x[0, 0] for s in c.splits for x in c.splits[s]])
    assert starts.min() >= 2e-3 * (1 - 1e-6) and starts.max() <= 2e-2 * (1 + 1e-6)
    assert all(x[-1, 0] > 0.99 for s in c.splits for x in c.splits[s])
    with pytest.raises(ValueError, match="delta_range"):
        load_flame(delta_range=(0.0, 0.1))


def test_a_coarser_time_step_samples_the_same_trajectories():
    """201 steps of 5 time units are every fifth step of the paper's 1001 unit steps (same seed, same deltas)."""
    fine = load_flame(powers=(3, 7), per_power=12, seed=2)
    coarse = load_flame(powers=(3, 7), per_power=12, seed=2, num_steps=201, stride=5.0)
    for split in fine.splits:
        assert coarse.ids[split] == fine.ids[split]
        for a, b in zip(fine.splits[split], coarse.splits[split]):
            assert b.shape == (201, 1)
            np.testing.assert_allclose(b, a[::5], atol=1e-6)
    assert "201 steps of 5 time units" in coarse.source
    with pytest.raises(ValueError, match="time between steps"):
        flame_trajectories(3, [0.01], stride=0.0)
    with pytest.raises(ValueError, match="num_steps >= 2"):
        load_flame(per_power=4, num_steps=1)


def test_flame_data_options_reach_the_loader():
    from pyro_dssm.data.catalog import FlameOptions
    from pyro_dssm.data.registry import load_corpus

    c = load_corpus("flame-p4", {"flame_steps": 51, "flame_stride": 2.0, "flame_per_power": 20,
                                 "flame_delta_min": 0.02, "flame_delta_max": 0.05})
    xs = np.stack([x for s in c.splits for x in c.splits[s]])
    assert xs.shape == (20, 51, 1)
    assert xs[:, 0, 0].min() >= 0.02 * (1 - 1e-6) and xs[:, 0, 0].max() <= 0.05 * (1 + 1e-6)
    for bad, match in (({"flame_stride": -1.0}, "flame_stride must be > 0"),
                       ({"flame_steps": 1}, "flame_steps must be >= 2"),
                       ({"flame_per_power": 0}, "flame_per_power"),
                       ({"flame_delta_min": 0.1, "flame_delta_max": 0.01}, "flame_delta_min <= flame_delta_max")):
        with pytest.raises(ValueError, match=match):
            FlameOptions(**bad)
