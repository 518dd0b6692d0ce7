import math

import numpy as np
import pytest

from tinynet import optim


def one_param(value, grad):
    w = np.array([value], dtype=np.float64)
    g = {"g": np.array([grad], dtype=np.float64)}
    return w, g, [(w, lambda: g["g"])]


def test_sgd_step_is_w_minus_lr_times_grad():
    w, _, params = one_param(1.0, 0.5)
    optim.SGD(params, lr=0.1).step()
    assert w[0] == pytest.approx(0.95)


def test_sgd_momentum_accumulates_velocity():
    w, _, params = one_param(1.0, 0.5)
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    opt.step()  # v = 0.5, w = 0.95
    opt.step()  # v = 0.9 * 0.5 + 0.5 = 0.95, w = 0.95 - 0.095
    assert w[0] == pytest.approx(0.855)


def test_sgd_nesterov_looks_ahead():
    w, _, params = one_param(1.0, 0.5)
    optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True).step()
    # v = 0.5; step = g + 0.9 v = 0.95
    assert w[0] == pytest.approx(0.905)


def test_sgd_weight_decay_adds_l2_gradient():
    w, _, params = one_param(1.0, 0.5)
    optim.SGD(params, lr=0.1, weight_decay=0.1).step()
    assert w[0] == pytest.approx(1.0 - 0.1 * (0.5 + 0.1))


def test_adam_first_two_steps_by_hand():
    w, g, params = one_param(1.0, 0.5)
    opt = optim.Adam(params, lr=0.1)
    opt.step()
    # m_hat = 0.5, v_hat = 0.25: the first step is lr * sign(g)
    assert w[0] == pytest.approx(1 - 0.1 * 0.5 / (0.5 + 1e-8), abs=1e-12)
    w1 = w[0]
    g["g"][0] = -0.5
    opt.step()
    m = 0.9 * 0.05 + 0.1 * -0.5
    v = 0.999 * 0.00025 + 0.001 * 0.25
    m_hat, v_hat = m / (1 - 0.9**2), v / (1 - 0.999**2)
    assert w[0] == pytest.approx(w1 - 0.1 * m_hat / (math.sqrt(v_hat) + 1e-8), abs=1e-12)
    assert w[0] == pytest.approx(0.9052632, abs=1e-6)


def test_adamw_decays_weights_independently_of_the_gradient():
    w, _, params = one_param(2.0, 0.0)
    optim.Adam(params, lr=0.1, weight_decay=0.5).step()
    assert w[0] == pytest.approx(2.0 * (1 - 0.05))


def test_optimizer_keeps_float32():
    w = np.ones(3, dtype=np.float32)
    opt = optim.Adam([(w, lambda: np.full(3, 0.1, dtype=np.float32))])
    opt.step()
    assert w.dtype == np.float32


def test_optimizer_state_round_trip_continues_identically():
    w1, g1, p1 = one_param(1.0, 0.3)
    w2, g2, p2 = one_param(1.0, 0.3)
    a, b = optim.Adam(p1, lr=0.01), optim.Adam(p2, lr=0.01)
    a.step()
    b.load_state_dict({k: [x.copy() for x in v] if isinstance(v, list) else v
                       for k, v in a.state_dict().items()})
    w2[...] = w1
    a.step()
    b.step()
    assert w1[0] == w2[0]


def test_cosine_schedule_warms_up_and_decays():
    s = optim.cosine(1.0, total_steps=110, warmup_steps=10)
    assert s(0) == pytest.approx(0.1)
    assert s(9) == pytest.approx(1.0)
    assert s(60) == pytest.approx(0.5)
    assert s(110) == pytest.approx(0.0)


def test_one_cycle_rises_then_falls():
    s = optim.one_cycle(1.0, total_steps=100, pct_start=0.25, div=25, final_div=1e4)
    assert s(0) == pytest.approx(0.04)
    assert s(25) == pytest.approx(1.0)
    assert s(100) == pytest.approx(1e-4)
    assert s(10) < s(20) < s(25) > s(50) > s(90)


def test_empty_parameter_list_is_an_error():
    with pytest.raises(ValueError, match="no parameters"):
        optim.SGD([])
