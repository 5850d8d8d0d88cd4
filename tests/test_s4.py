"""S4D layers: HiPPO initialisation, discretisation against matrix exponentials, convolution against recurrence."""

import math

import pytest
import torch

from pyro_dssm.nn.s4 import (S4D, S4DKernel, TwoStreamS4D, cached_discretisation, causal_fft_conv, hippo_legs,
                             s4d_init)


def test_hippo_legs_normal_part_and_its_modes():
    A, B, P = hippo_legs(8)
    assert A[3, 1] == -math.sqrt(7 * 3) and A[3, 3] == -4 and A[1, 3] == 0 and B[2] == math.sqrt(5)
    S = A + torch.outer(P, P)
    skew = S + 0.5 * torch.eye(8)
    torch.testing.assert_close(skew, -skew.T)  # normal part: -I/2 + skew-symmetric
    a, b = s4d_init(8, "legs")
    assert a.shape == b.shape == (4,)
    torch.testing.assert_close(a.real, torch.full((4,), -0.5, dtype=torch.float64))
    assert bool((a.imag > 0).all())
    # the kept modes and their conjugates are all the eigenvalues of S
    full = torch.cat([a, a.conj()])
    ev = torch.linalg.eigvals(S)
    assert torch.allclose(torch.sort(full.imag).values, torch.sort(ev.imag).values, atol=1e-8)
    a, b = s4d_init(6, "lin")
    torch.testing.assert_close(a.imag, math.pi * torch.arange(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="even integer"):
        s4d_init(5)
    with pytest.raises(ValueError, match="unknown S4D initialisation"):
        s4d_init(4, "inv")


def _real_ssm(kern: S4DKernel, h: int):
    """The channel's SSM as a real 2(N/2)-dimensional system: each complex mode a 2x2 rotation block."""
    a = kern.modes()[h].detach().to(torch.complex128)
    b = torch.view_as_complex(kern.B[h].detach().double().contiguous())
    n = a.shape[0]
    A = torch.zeros(2 * n, 2 * n, dtype=torch.float64)
    for i in range(n):
        A[2 * i:2 * i + 2, 2 * i:2 * i + 2] = torch.tensor([[a[i].real, -a[i].imag], [a[i].imag, a[i].real]])
    Bv = torch.stack([b.real, b.imag], -1).reshape(-1)
    return A, Bv


@pytest.mark.parametrize("disc", ["zoh", "bilinear"])
def test_discretisation_matches_the_matrix_formulas(disc):
    torch.manual_seed(0)
    kern = S4DKernel(3, 6, discretisation=disc, dt_min=0.05, dt_max=0.5).double()
    with torch.no_grad():
        dA, dB = kern.discretise()
    for h in range(3):
        A, Bv = _real_ssm(kern, h)
        dt = float(torch.exp(kern.log_dt[h].detach()))
        eye = torch.eye(A.shape[0], dtype=torch.float64)
        if disc == "zoh":  # Abar = e^{A dt}, Bbar = A^{-1}(e^{A dt} - I) B (LS4 Sec. 3.1)
            Ad = torch.linalg.matrix_exp(A * dt)
            Bd = torch.linalg.solve(A, (Ad - eye) @ Bv)
        else:  # bilinear: (I - A dt/2)^{-1}(I + A dt/2), (I - A dt/2)^{-1} dt B
            Ad = torch.linalg.solve(eye - A * dt / 2, eye + A * dt / 2)
            Bd = torch.linalg.solve(eye - A * dt / 2, dt * Bv)
        # complex mode i acts on the real pair (2i, 2i+1) as multiplication by dA[h, i]
        for i in range(dA.shape[1]):
            block = Ad[2 * i:2 * i + 2, 2 * i:2 * i + 2]
            assert complex(block[0, 0], block[1, 0]) == pytest.approx(complex(dA[h, i]), abs=1e-10)
            assert complex(Bd[2 * i], Bd[2 * i + 1]) == pytest.approx(complex(dB[h, i]), abs=1e-10)


def test_kernel_is_the_impulse_response_of_the_real_ssm():
    torch.manual_seed(1)
    layer = S4D(2, 6, discretisation="zoh").double()
    L = 12
    K = layer.kernel(L)
    C = torch.view_as_complex(layer.C.detach().contiguous())
    for h in range(2):
        A, Bv = _real_ssm(layer.ssm, h)
        dt = float(torch.exp(layer.ssm.log_dt[h].detach()))
        Ad = torch.linalg.matrix_exp(A * dt)
        Bd = torch.linalg.solve(A, (Ad - torch.eye(A.shape[0], dtype=torch.float64)) @ Bv)
        # y = 2 Re(C s) = 2 (Re C . Re s - Im C . Im s) on the real pairs
        Cv = 2 * torch.stack([C[h].real, -C[h].imag], -1).reshape(-1)
        ref = torch.stack([Cv @ torch.linalg.matrix_power(Ad, k) @ Bd for k in range(L)])
        # float64; the reference goes through matrix_exp and a solve, whose rounding differs by BLAS
        # build and CPU (1e-9 relative was exceeded on one machine); a wrong kernel is off by O(1)
        torch.testing.assert_close(K[h].detach(), ref, rtol=1e-7, atol=1e-10)


def test_causal_fft_conv_against_direct_sum():
    torch.manual_seed(2)
    u, k = torch.randn(2, 3, 9, dtype=torch.float64), torch.randn(3, 9, dtype=torch.float64)
    ref = torch.stack([sum(k[:, t - j] * u[..., j] for j in range(t + 1)) for t in range(9)], -1)
    torch.testing.assert_close(causal_fft_conv(u, k), ref)


@pytest.mark.parametrize("init", ["legs", "lin"])
@pytest.mark.parametrize("disc", ["zoh", "bilinear"])
@pytest.mark.parametrize("shift", [False, True])
def test_convolution_equals_recurrence(init, disc, shift):
    """float32 layer, N = 64, 2048 steps: the recurrence in complex64 (the default) agrees with the
    convolution to 3e-5 relative, in complex128 to 1e-5; both convolution modes are close to float64."""
    import copy

    torch.manual_seed(3)
    layer = S4D(4, 64, init=init, discretisation=disc, shift=shift)
    u = torch.randn(2, 2048, 4)
    errors = {}
    with torch.no_grad():
        y_conv = layer(u)
        ref = copy.deepcopy(layer).double()(u.double())
        for dtype in (None, torch.complex128):
            state = layer.default_state(2, dtype=dtype)
            assert state.shape == (2, 4, 32) and state.dtype == (dtype or torch.complex64)
            ys = []
            for t in range(u.shape[1]):
                y_t, state = layer.step(u[:, t], state)
                ys.append(y_t)
            y_rec = torch.stack(ys, 1)
            assert y_rec.dtype == torch.float32 and state.dtype == (dtype or torch.complex64)
            errors[dtype] = float((y_conv - y_rec).norm() / y_rec.norm())
        # and the convolution is close to the same layer in float64
        assert float((y_conv.double() - ref).norm() / ref.norm()) < 2e-6
    assert errors[None] < 3e-5 and errors[torch.complex128] < 1e-5
    # a float64 layer steps in complex128 by default
    assert copy.deepcopy(layer).double().default_state(1).dtype == torch.complex128


def test_shifted_layer_is_strictly_causal_and_plain_layer_causal():
    torch.manual_seed(4)
    for shift in (False, True):
        layer = S4D(3, 8, shift=shift).double()
        u = torch.randn(1, 20, 3, dtype=torch.float64, requires_grad=True)
        layer(u)[0, 10].sum().backward()
        g = u.grad[0].abs().sum(-1)
        scale = float(g[:10].max())
        # exact zeros up to the FFT's round-off
        assert float(g[11:].max()) < 1e-12 * scale
        assert (float(g[10]) < 1e-12 * scale) == shift  # the shifted layer does not see the present input
        assert float(g[9]) > 1e-6 * scale


@pytest.mark.parametrize("disc", ["zoh", "bilinear"])
def test_two_stream_layer(disc):
    torch.manual_seed(5)
    layer = TwoStreamS4D(3, 8, discretisation=disc)
    x, z = torch.randn(2, 500, 3), torch.randn(2, 500, 3)
    with torch.no_grad():
        y = layer(x, z)
        state = layer.default_state(2)
        ys = []
        for t in range(500):
            y_t, state = layer.step(x[:, t], z[:, t], state)
            ys.append(y_t)
    assert float((y - torch.stack(ys, 1)).norm() / y.norm()) < 1e-5
    # linear in each stream; with E = 0 and F = 0 the z stream is silent
    torch.testing.assert_close(layer(x, z), layer(x, torch.zeros_like(z)) + layer(torch.zeros_like(x), z),
                               rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        layer.E.zero_()
        layer.F.zero_()
    torch.testing.assert_close(layer(x, z), layer(x, torch.zeros_like(z)))
    with pytest.raises(ValueError, match="equal shape"):
        layer(x, z[:, :10])


def test_gradients_reach_every_parameter_and_bad_input():
    layer = S4D(3, 8)
    layer(torch.randn(2, 10, 3)).pow(2).sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name
    with pytest.raises(ValueError, match="H=3 channels"):
        layer(torch.randn(2, 10, 4))
    with pytest.raises(ValueError, match="unknown discretisation"):
        S4D(3, 8, discretisation="euler")
    with pytest.raises(ValueError, match="dt_min"):
        S4D(3, 8, dt_min=0.1, dt_max=0.01)


def test_discretisation_cache_is_scoped_to_its_context():
    """Outside cached_discretisation every step sees the current parameters, however they were changed."""
    torch.manual_seed(6)
    layer = TwoStreamS4D(2, 4)
    x, z = torch.randn(3, 2), torch.randn(3, 2)
    s0 = layer.default_state(3)
    with torch.no_grad():
        y1, _ = layer.step(x, z, s0)
        with cached_discretisation(layer):
            assert layer._step_params() is layer._step_params()  # discretised once inside
            y_in, _ = layer.step(x, z, s0)
        assert layer._step_params() is not layer._step_params()
        torch.testing.assert_close(y_in, y1)
        layer.C.data.mul_(2.0)  # through .data: no version bump (as weight averaging swaps weights)
        layer.E.data.add_(0.5)
        y2, _ = layer.step(x, z, s0)
    fresh = TwoStreamS4D(2, 4)
    fresh.load_state_dict(layer.state_dict())
    with torch.no_grad():
        y_ref, _ = fresh.step(x, z, s0)
    torch.testing.assert_close(y2, y_ref)
    assert not torch.allclose(y1, y2)
    with pytest.raises(RuntimeError, match="no_grad"):
        with cached_discretisation(layer):
            pass
    # with autograd on, gradients reach the parameters
    y3, _ = layer.step(x, z, s0)
    y3.sum().backward()
    assert layer.C.grad is not None and layer.E.grad is not None and float(layer.ssm.log_dt.grad.abs().sum()) > 0


@pytest.mark.parametrize("L", [1, 7, 64, 1000])
def test_blocked_kernel_equals_the_full_vandermonde_product(L):
    """kernel() contracts sqrt(L)-sized factors; it must equal 2 Re(sum_n C_n Bbar_n Abar_n^l) built in full."""
    torch.manual_seed(7)
    k = S4DKernel(3, 8)
    C = torch.randn(3, 4, dtype=torch.complex64)
    _, dB = k.discretise()
    full = 2 * torch.einsum("hn,hnl->hl", C * dB, k.vandermonde(L)).real
    assert k.vandermonde(L).shape == (3, 4, L)
    torch.testing.assert_close(k.kernel(C, L), full, rtol=1e-5, atol=1e-6)
    # and Abar^l itself against repeated multiplication, in double precision
    dA = k.discretise(dtype=torch.float64)[0]
    ref = torch.stack([dA ** i for i in range(min(L, 50))], -1)
    torch.testing.assert_close(k.vandermonde(L)[..., :50].to(torch.complex128), ref, rtol=1e-5, atol=1e-6)
