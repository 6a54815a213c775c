"""SimAM itself: agreement with the reference formula and with the energy function, the analytic
gradient, the edge cases where the reference formula fails, memory formats, mixed precision,
TorchScript and torch.compile, the bytes saved for backward, and bad input."""

from __future__ import annotations

import io
import math
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import simam.attention.simam as simam_module
from simam.attention.simam import (
    SIGMOID_HALF,
    SimAM,
    simam,
    simam_compiled,
    simam_exact,
    simam_reference,
)
from simam.bench.modules import saved_bytes
from simam.energy import importance

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

# 1-D, 2-D and 3-D spatial; N = 1 and C = 1; odd sizes; M = 2 (the smallest with a variance).
SHAPES = [
    (2, 3, 7),
    (2, 3, 5, 6),
    (1, 2, 3, 4, 5),
    (1, 1, 9, 9),
    (3, 1, 2, 3),
    (2, 4, 1, 7),
    (2, 2, 2),
]


@pytest.fixture(autouse=True)
def seed() -> None:
    torch.manual_seed(0)


def feature_map(shape, dtype=torch.float64, device="cpu", scale=1.0, offset=0.0) -> torch.Tensor:
    """Random activations with a per-channel offset, as after a conv (offsets stress the
    centring)."""
    x = torch.randn(shape, dtype=dtype, device=device)
    shift = torch.randn(shape[:2] + (1,) * (len(shape) - 2), dtype=dtype, device=device)
    return (x + offset * shift) * scale


def input_grad(fn, x: torch.Tensor, g: torch.Tensor, **kwargs) -> torch.Tensor:
    x = x.detach().requires_grad_()
    return torch.autograd.grad(fn(x, **kwargs), x, g)[0]


# --- the default form equals the reference code's formula ----------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("lambda_", [1e-4, 0.1, 0.0])
def test_matches_reference_formula_in_float64(device: str, shape, lambda_: float) -> None:
    x = feature_map(shape, device=device, offset=3.0)
    torch.testing.assert_close(simam(x, lambda_), simam_reference(x, lambda_), rtol=0, atol=1e-12)
    torch.testing.assert_close(
        SimAM(lambda_=lambda_)(x), simam_reference(x, lambda_), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("device", DEVICES)
def test_matches_reference_formula_in_float32(device: str) -> None:
    x = feature_map((4, 8, 13, 11), dtype=torch.float32, device=device, offset=2.0)
    torch.testing.assert_close(simam(x), simam_reference(x), rtol=1e-6, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.integers(1, 5), min_size=3, max_size=5).filter(
        lambda s: math.prod(s[2:]) >= 2
    ),
    log_scale=st.integers(-6, 6),
    offset=st.floats(0, 100),
    lambda_=st.sampled_from([0.0, 1e-4, 0.1]),
)
def test_matches_reference_formula_on_random_inputs(
    shape, log_scale: int, offset: float, lambda_: float
) -> None:
    x = feature_map(tuple(shape), offset=offset, scale=10.0**log_scale)
    expected = simam_reference(x, lambda_)
    y = simam(x, lambda_)
    # Agreement to round-off of the computation: relative to |x| and to the channel's offset.
    bound = 1e-11 * (1 + offset) * x.abs().amax().item()
    assert (y - expected).abs().max().item() <= bound
    weight = y[x != 0] / x[x != 0]
    assert weight.min() >= SIGMOID_HALF * (1 - 1e-12) and weight.max() <= 1.0


def test_the_weight_lies_in_its_range() -> None:
    """sigmoid(1/e*) with 1/e* >= 1/2: weights in [sigmoid(1/2), 1), the lower end at the mean."""
    x = feature_map((4, 8, 7, 7))
    weight = simam(x) / x
    assert weight.min() >= SIGMOID_HALF and weight.max() < 1
    assert SIGMOID_HALF == pytest.approx(0.6224593312018546, abs=1e-15)
    # A neuron exactly at the mean of its channel gets the lowest weight.
    at_mean = torch.tensor([[[1.0, 2.0, 3.0]]], dtype=torch.float64)
    assert simam(at_mean)[0, 0, 1].item() == pytest.approx(2 * SIGMOID_HALF, rel=1e-15)


def test_module_options_and_repr() -> None:
    assert repr(SimAM()) == "SimAM(lambda_=0.0001)"
    assert repr(SimAM(64, lambda_=0.1, exact=True)) == "SimAM(64, lambda_=0.1, exact=True)"
    assert list(SimAM(64).parameters()) == [] and list(SimAM(64).buffers()) == []
    x = feature_map((2, 6, 5, 5))
    torch.testing.assert_close(SimAM(6, lambda_=0.1)(x), simam(x, 0.1), rtol=0, atol=0)
    torch.testing.assert_close(SimAM(6, exact=True)(x), simam_exact(x), rtol=0, atol=0)


# --- the analytic gradient -----------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(2, 3, 5), (1, 2, 3, 4), (1, 1, 2, 2, 3), (2, 2, 2)])
@pytest.mark.parametrize("lambda_", [1e-4, 0.5, 0.0])
def test_gradcheck(shape, lambda_: float) -> None:
    x = feature_map(shape, offset=1.0).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: simam(t, lambda_), (x,))


@pytest.mark.parametrize("shape", [(2, 3, 5), (1, 2, 3, 4)])
def test_gradgradcheck(shape) -> None:
    """Double backward (gradient penalties, ...) goes through the same maths in plain ops."""
    x = feature_map(shape, offset=1.0).requires_grad_()
    assert torch.autograd.gradgradcheck(lambda t: simam(t, 0.01), (x,))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", SHAPES + [(8, 16, 8, 8)])
@pytest.mark.parametrize("lambda_", [1e-4, 0.1])
def test_gradient_equals_autograd_through_the_reference(device: str, shape, lambda_: float) -> None:
    x = feature_map(shape, device=device, offset=3.0)
    g = torch.randn_like(x)
    expected = input_grad(simam_reference, x, g, lambda_=lambda_)
    torch.testing.assert_close(
        input_grad(simam, x, g, lambda_=lambda_), expected, rtol=0, atol=1e-12
    )


def test_gradient_in_float32_is_close_to_float64() -> None:
    x = feature_map((4, 8, 9, 9), offset=2.0)
    g = torch.randn_like(x)
    expected = input_grad(simam, x, g)
    torch.testing.assert_close(
        input_grad(simam, x.float(), g.float()).double(), expected, rtol=1e-5, atol=1e-5
    )


# --- the exact leave-one-out energy --------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("lambda_", [1e-4, 0.1, 0.0])
def test_exact_equals_the_energy_functions_importance(shape, lambda_: float) -> None:
    x = feature_map(shape, offset=2.0)
    expected = x * torch.sigmoid(importance(x, lambda_, "exact"))
    torch.testing.assert_close(simam_exact(x, lambda_), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(SimAM(lambda_=lambda_, exact=True)(x), expected, rtol=0, atol=1e-12)


def test_exact_differs_from_the_shared_statistics_and_has_a_gradient() -> None:
    x = feature_map((2, 3, 4, 4), offset=1.0)
    assert not torch.allclose(simam_exact(x), simam(x))
    x.requires_grad_()
    assert torch.autograd.gradcheck(lambda t: simam_exact(t, 0.01), (x,))


def test_exact_with_lambda_zero_gives_an_outlier_among_equals_weight_one() -> None:
    """e* = 0 for a neuron whose M - 1 others are all equal: importance +inf, weight exactly 1."""
    x = torch.tensor([[[1.0, 1.0, 1.0, 5.0]]], dtype=torch.float64)
    y = simam_exact(x, 0.0)
    assert y[0, 0, 3].item() == 5.0
    assert torch.isfinite(y).all()


# --- edge cases where the reference formula fails ------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 3, 1, 1), (2, 5, 1), (2, 3, 1, 1, 1)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16])
def test_a_single_position_gets_weight_sigmoid_half(shape, dtype: torch.dtype) -> None:
    x = feature_map(shape).to(dtype)
    g = torch.randn_like(x)
    for fn in (simam, simam_exact, SimAM(shape[1]), SimAM(exact=True)):
        torch.testing.assert_close(fn(x), x * SIGMOID_HALF, rtol=0, atol=0)
        torch.testing.assert_close(input_grad(fn, x, g), g * SIGMOID_HALF, rtol=0, atol=0)
    assert torch.isnan(simam_reference(x.double())).all()  # 0 / 0 in the reference formula


@pytest.mark.parametrize("lambda_", [1e-4, 0.0])
@pytest.mark.parametrize("value", [0.0, 0.1, -3.7, 1e4, 1e30])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_constant_channels_get_weight_sigmoid_half(
    lambda_: float, value: float, dtype: torch.dtype
) -> None:
    x = feature_map((3, 4, 5, 7), dtype=dtype)
    x[:, 1] = value
    x[2, 3] = value
    g = torch.randn_like(x)
    y, grad = simam(x, lambda_), input_grad(simam, x, g, lambda_=lambda_)
    for n, c in [(0, 1), (1, 1), (2, 1), (2, 3)]:
        torch.testing.assert_close(y[n, c], x[n, c] * SIGMOID_HALF, rtol=1e-15, atol=0)
        torch.testing.assert_close(grad[n, c], g[n, c] * SIGMOID_HALF, rtol=1e-15, atol=0)
    torch.testing.assert_close(
        simam_exact(x, lambda_)[:, 1], x[:, 1] * SIGMOID_HALF, rtol=1e-15, atol=0
    )
    # The other channels are untouched by their neighbours.
    torch.testing.assert_close(y[0, 0], simam(x[:1, :1], lambda_)[0, 0], rtol=0, atol=0)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype, tolerance", [(torch.float16, 2**-10), (torch.bfloat16, 2**-7)])
def test_16_bit_inputs_match_float32(device: str, dtype: torch.dtype, tolerance: float) -> None:
    """Statistics in float32, one rounding to the input's dtype at the end: within one half-ulp of
    the float32 result (relative ``tolerance``), where the reference formula overflows in
    float16."""
    x = feature_map((2, 8, 16, 16), dtype=torch.float32, device=device, scale=60.0).to(dtype)
    expected = simam(x.float())
    y = simam(x)
    assert y.dtype == dtype
    assert ((y.float() - expected).abs() <= tolerance * expected.abs() + 1e-6).all()
    g = torch.randn_like(x)
    grad = input_grad(simam, x, g)
    assert grad.dtype == dtype
    torch.testing.assert_close(
        grad.float(), input_grad(simam, x.float(), g.float()), rtol=4 * tolerance, atol=1e-3
    )
    if dtype == torch.float16:
        # 256 squared deviations of about 60^2 sum to far more than float16's 65504: the reference's
        # variance is inf and every weight collapses to sigmoid(1/2).
        torch.testing.assert_close(simam_reference(x), x * SIGMOID_HALF, rtol=2**-10, atol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_autocast_keeps_the_input_dtype_and_computes_in_float32(device: str) -> None:
    low = torch.bfloat16 if device == "cpu" else torch.float16
    conv = torch.nn.Conv2d(3, 8, 3, padding=1).to(device)
    images = torch.randn(2, 3, 12, 12, device=device)
    module = SimAM(8)
    with torch.autocast(device, dtype=low):
        features = conv(images)
        assert features.dtype == low
        y = module(features)
        assert y.dtype == low
        y32 = module(features.float())
        assert y32.dtype == torch.float32
    torch.testing.assert_close(y.float(), simam(features.float()), rtol=2**-7, atol=1e-3)
    torch.testing.assert_close(y32, simam(features.float()), rtol=1e-6, atol=1e-6)
    y.float().sum().backward()
    assert torch.isfinite(conv.weight.grad).all()


@pytest.mark.parametrize("scale", [1e30, 1e-30, 3e38, 1e-38, 1e-42])
def test_extreme_magnitudes_do_not_overflow(scale: float) -> None:
    """With lambda = 0 SimAM is scale-invariant: the weights of c x equal those of x."""
    x = feature_map((2, 4, 8, 8), offset=1.0)
    x = x / x.abs().amax()  # |x| <= 1, so that c x stays finite for c = 3e38
    big = (x * scale).float()
    expected = simam(big.double(), 0.0)
    y = simam(big, 0.0)
    assert torch.isfinite(y).all()
    # Below ~1e-38 the inputs are subnormal: the output rounds to a multiple of 2^-149 ~ 1.4e-45.
    atol = 0.0 if scale > 1e-37 else 2**-149
    torch.testing.assert_close(y.double(), expected, rtol=1e-5, atol=atol)
    g = torch.randn_like(big)
    grad = input_grad(simam, big, g, lambda_=0.0)
    assert torch.isfinite(grad).all()
    if scale > 1e-37:
        torch.testing.assert_close(
            grad.double(),
            input_grad(simam, big.double(), g.double(), lambda_=0.0),
            rtol=1e-4,
            atol=1e-4,
        )
    assert torch.isfinite(simam_exact(big, 0.0)).all()


def test_lambda_is_an_absolute_variance() -> None:
    """Far below sqrt(lambda) the deviations do not register: every weight is sigmoid(1/2)."""
    x = feature_map((2, 4, 8, 8), dtype=torch.float32) * 1e-30
    torch.testing.assert_close(simam(x), x * SIGMOID_HALF, rtol=1e-6, atol=0)
    big = feature_map((2, 4, 8, 8), dtype=torch.float32) * 1e30
    torch.testing.assert_close(simam(big), simam(big, 0.0), rtol=1e-6, atol=0)
    # The reference overflows: (x - mean)^2 = inf and inf / inf = NaN.
    assert not torch.isfinite(simam_reference(big)).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_a_huge_lambda_flattens_every_weight_to_sigmoid_half(dtype: torch.dtype) -> None:
    x = feature_map((2, 3, 4, 4)).to(dtype)
    for fn in (simam, simam_exact):
        torch.testing.assert_close(fn(x, 1e300), x * SIGMOID_HALF, rtol=1e-6, atol=0)
    grad = input_grad(simam, x, torch.ones_like(x), lambda_=1e300)
    torch.testing.assert_close(grad, torch.full_like(x, SIGMOID_HALF), rtol=1e-6, atol=0)


def test_non_finite_values_stay_in_their_channel() -> None:
    x = feature_map((2, 3, 4, 4), dtype=torch.float32)
    x[0, 1, 2, 2] = float("nan")
    x[1, 2, 0, 0] = float("inf")
    y = simam(x)
    assert torch.isnan(y[0, 1]).all() and torch.isnan(y[1, 2]).all()
    mask = torch.ones(2, 3, dtype=torch.bool)
    mask[0, 1] = mask[1, 2] = False
    torch.testing.assert_close(y[mask], simam_reference(x)[mask], rtol=1e-6, atol=1e-6)


def test_empty_batches_and_inference_mode() -> None:
    for shape in [(0, 3, 4, 4), (2, 0, 5)]:
        x = torch.randn(shape, requires_grad=True)
        assert simam(x).shape == shape and SimAM()(x).shape == shape
    x = feature_map((2, 3, 4, 4), dtype=torch.float32)
    with torch.inference_mode():
        torch.testing.assert_close(simam(x), simam_reference(x), rtol=1e-6, atol=1e-6)


# --- bad input -----------------------------------------------------------------------------------


def test_bad_input_raises_a_clear_error() -> None:
    module = SimAM(8)
    with pytest.raises(TypeError, match="floating-point"):
        module(torch.ones(2, 8, 4, 4, dtype=torch.int64))
    with pytest.raises(TypeError, match="floating-point"):
        simam(torch.ones(2, 8, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="torch.Tensor"):
        simam([[[1.0, 2.0]]])
    with pytest.raises(ValueError, match=r"\(N, C, \*spatial\)"):
        module(torch.randn(2, 8))
    with pytest.raises(ValueError, match=r"built for 8 channels, got input with 4 channels"):
        module(torch.randn(2, 4, 4, 4))
    with pytest.raises(ValueError, match="spatial size 0"):
        simam(torch.randn(2, 8, 0, 4))
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="lambda_"):
            SimAM(lambda_=bad)
        with pytest.raises(ValueError, match="lambda_"):
            simam(torch.randn(2, 3, 4), bad)
        with pytest.raises(ValueError, match="lambda_"):
            simam_exact(torch.randn(2, 3, 4), bad)
    with pytest.raises(TypeError, match="lambda_"):
        SimAM(lambda_=True)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="channels"):
            SimAM(bad)


# --- memory formats, export, compile -------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, memory_format",
    [((2, 8, 9, 7), torch.channels_last), ((2, 8, 3, 5, 4), torch.channels_last_3d)],
)
@pytest.mark.parametrize("exact", [False, True])
def test_channels_last_in_channels_last_out(shape, memory_format, exact: bool) -> None:
    x = feature_map(shape, dtype=torch.float32, offset=1.0)
    xl = x.to(memory_format=memory_format)
    module = SimAM(8, exact=exact)
    y = module(xl)
    assert y.is_contiguous(memory_format=memory_format)
    torch.testing.assert_close(y, module(x), rtol=1e-6, atol=1e-6)
    g = torch.randn_like(x)
    torch.testing.assert_close(
        input_grad(module, xl, g), input_grad(module, x, g), rtol=1e-5, atol=1e-6
    )
    y16 = module(xl.half())
    assert y16.dtype == torch.float16 and y16.is_contiguous(memory_format=memory_format)


def test_non_contiguous_input() -> None:
    x = feature_map((3, 4, 6, 8), offset=1.0)
    view = x.transpose(2, 3)[::2]
    assert not view.is_contiguous()
    torch.testing.assert_close(simam(view), simam_reference(view), rtol=0, atol=1e-12)
    g = torch.randn_like(view)
    torch.testing.assert_close(
        input_grad(simam, view, g), input_grad(simam_reference, view, g), rtol=0, atol=1e-12
    )


def _round_trip(module: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    buffer.seek(0)
    return torch.jit.load(buffer)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # TorchScript is deprecated but still shipped
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # a trace fixes shapes, as intended
def test_torchscript_export_reproduces_the_output() -> None:
    x = feature_map((2, 8, 7, 7), offset=1.0)
    module = SimAM(8)
    scripted = _round_trip(torch.jit.script(module))
    traced = _round_trip(torch.jit.trace(module, x))
    for exported in (scripted, traced):
        torch.testing.assert_close(exported(x), module(x), rtol=0, atol=1e-12)
    other = feature_map((3, 8, 5), offset=1.0)  # scripting keeps shapes and dims free
    torch.testing.assert_close(scripted(other), module(other), rtol=0, atol=1e-12)
    torch.testing.assert_close(
        scripted(other[:, :, :1]), other[:, :, :1] * SIGMOID_HALF, rtol=0, atol=0
    )
    half = other.half()
    assert scripted(half).dtype == torch.float16
    torch.testing.assert_close(scripted(half), module(half), rtol=2**-10, atol=1e-3)
    with pytest.raises(Exception, match="built for"):
        scripted(torch.randn(2, 4, 5))
    for bad in (torch.randn(2, 8), torch.ones(2, 8, 3, dtype=torch.int64)):
        with pytest.raises(Exception, match=r"floating-point tensor of shape \(N, C, \*spatial\)"):
            scripted(bad)
    exact = SimAM(8, exact=True)
    # Traced, the shape arithmetic of the leave-one-out statistics runs on tensors,
    # M / (M - 1) in float32.
    torch.testing.assert_close(
        _round_trip(torch.jit.trace(exact, x))(x), exact(x), rtol=1e-6, atol=1e-6
    )
    with pytest.raises(Exception, match="exact=True"):
        torch.jit.script(exact)(x)


def test_torch_export_reproduces_the_output() -> None:
    module = SimAM(8)
    x = feature_map((2, 8, 5, 6), dtype=torch.float32, offset=1.0)
    exported = torch.export.export(module, (x,))  # records the plain-ops form: equal to round-off
    torch.testing.assert_close(exported.module()(x), module(x), rtol=1e-6, atol=1e-6)


def test_torch_compile_matches_eager() -> None:
    """One compile on CPU (inductor's C++ backend, gcc): about 30 s on two cores."""
    module = SimAM(8)
    compiled = torch.compile(module, fullgraph=True)
    x = feature_map((2, 8, 5, 6), dtype=torch.float32, offset=1.0)
    g = torch.randn_like(x)
    torch.testing.assert_close(compiled(x), module(x), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(
        input_grad(compiled, x, g), input_grad(module, x, g), rtol=1e-5, atol=1e-6
    )


def test_compiled_module_matches_the_eager_function_and_its_gradient() -> None:
    """SimAM(compiled=True): the same formula through torch.compile, one compile for this shape."""
    module = SimAM(8, compiled=True)
    x = feature_map((2, 8, 5, 6), dtype=torch.float32, offset=1.0)
    g = torch.randn_like(x)
    torch.testing.assert_close(module(x), simam(x), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(
        input_grad(module, x, g), input_grad(SimAM(8), x, g), rtol=1e-5, atol=1e-6
    )
    assert "compiled" not in repr(SimAM(8)) and SimAM(8).compiled is False


@pytest.fixture
def fresh_compiled_simam(monkeypatch):
    """Compiled SimAM as in a new process: no compiled code, nothing given up."""
    torch._dynamo.reset()
    monkeypatch.setattr(simam_module, "_compiled_simam_ops", None)
    monkeypatch.setattr(simam_module, "_function_compiled", simam_module._CompiledSimAM())
    yield
    torch._dynamo.reset()


def test_more_simam_shapes_than_the_recompile_limit_stay_compiled(fresh_compiled_simam) -> None:
    """Ten feature-map shapes, trained and evaluated (20 signatures, MobileNetV2 has as many), under
    torch's recompile limit of 8: compiled with sizes as arguments, they need one graph per grad
    mode. Should the limit be reached all the same (here: a new dtype once the limit is lowered to
    the graphs made), the module that met it warns once and computes with its eager form; the other
    modules, and the function simam_compiled, go on with the compiled code until they meet it
    too."""
    from torch._dynamo.utils import counters

    limit = torch._dynamo.config.recompile_limit
    shapes = [
        (2, c, s, s)
        for c, s in zip((3, 4, 6, 8, 12, 16, 24, 32, 48, 64), (5, 8, 6, 7, 4, 5, 3, 4, 2, 3))
    ]
    assert len(shapes) > limit
    graphs_before = counters["stats"]["unique_graphs"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fallback would warn
        for shape in shapes:
            x = feature_map(shape, dtype=torch.float32, offset=1.0)
            g = torch.randn_like(x)
            torch.testing.assert_close(
                input_grad(simam_compiled, x, g), input_grad(simam, x, g), rtol=1e-5, atol=1e-6
            )
            with torch.no_grad():
                torch.testing.assert_close(simam_compiled(x), simam(x), rtol=1e-6, atol=1e-6)
    graphs = counters["stats"]["unique_graphs"] - graphs_before
    assert 2 <= graphs < limit  # under the limit: every signature ran compiled

    x = feature_map((2, 3, 5, 5), dtype=torch.float64, offset=1.0)
    # a signature with its graph
    compiled_before = feature_map(shapes[0], dtype=torch.float32, offset=1.0)
    met_it, other = SimAM(compiled=True), SimAM(compiled=True)
    with torch._dynamo.config.patch(recompile_limit=graphs):
        with pytest.warns(
            RuntimeWarning, match="recompile limit .* this SimAM runs uncompiled from now on"
        ):
            torch.testing.assert_close(met_it(x), simam(x), rtol=0, atol=0)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # said once, and by this module alone
            torch.testing.assert_close(met_it(x), simam(x), rtol=0, atol=0)
            with torch.no_grad():
                torch.testing.assert_close(
                    other(compiled_before), simam(compiled_before), rtol=1e-6, atol=1e-6
                )
        assert met_it._compiled_form.gave_up is not None and other._compiled_form.gave_up is None
        for caller in (other, simam_compiled):  # each meets the limit on its own
            with pytest.warns(RuntimeWarning, match="recompile limit"):
                torch.testing.assert_close(caller(x), simam(x), rtol=0, atol=0)


def test_exact_energy_has_no_compiled_form() -> None:
    with pytest.raises(ValueError, match="exact=True"):
        SimAM(exact=True, compiled=True)


# --- memory --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, dtype, memory_format",
    [
        ((8, 16, 8, 8), torch.float32, torch.contiguous_format),
        ((8, 16, 8, 8), torch.float32, torch.channels_last),
        ((4, 32, 16, 16), torch.float16, torch.contiguous_format),
        ((2, 16, 4, 8, 8), torch.float64, torch.contiguous_format),
    ],
)
def test_saved_for_backward_is_the_input_and_three_numbers_per_channel(
    shape, dtype, memory_format
) -> None:
    x = feature_map(shape, dtype=dtype).contiguous(memory_format=memory_format)
    input_bytes = x.numel() * x.element_size()
    per_channel = (
        3 * shape[0] * shape[1] * torch.finfo(simam_module._compute_dtype(dtype)).bits // 8
    )
    assert saved_bytes(simam, x) == input_bytes + per_channel
    assert saved_bytes(simam, x) <= 1.25 * input_bytes
    assert saved_bytes(simam_reference, x) >= 2 * input_bytes  # for comparison
    one_position = x[(slice(None), slice(None)) + (slice(0, 1),) * (x.dim() - 2)]
    assert saved_bytes(simam, one_position) == 0  # y = x sigmoid(1/2)
    with torch.no_grad():
        assert saved_bytes(simam, x) == 0


def test_each_forward_leaves_a_single_autograd_node() -> None:
    x = feature_map((2, 3, 4, 4)).requires_grad_()
    y = simam(x)
    assert type(y.grad_fn).__name__ == "_SimAMFunctionBackward"
    assert [type(f[0]).__name__ for f in y.grad_fn.next_functions] == ["AccumulateGrad"]


def test_no_warnings_in_normal_use() -> None:
    x = feature_map((2, 3, 4, 4), dtype=torch.float32).requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SimAM(3)(x).sum().backward()
