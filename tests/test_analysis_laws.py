"""analysis.laws: the closed forms against hand-computed values and brute-force minimisation."""
import numpy as np
import pytest

from analysis import laws

EPOCH = {"E": 1.8172, "A": 477.8, "B": 2143.8, "alpha": 0.3473, "beta": 0.3672}


def test_frontier_exponents_and_g_by_hand():
  a, b = laws.frontier_exponents(0.34, 0.28)
  assert a == pytest.approx(0.28 / 0.62) and b == pytest.approx(0.34 / 0.62)
  assert a + b == pytest.approx(1.0)
  # G = (alpha A / (beta B))^(1/(alpha+beta)) with Chinchilla's published fit.
  assert laws.frontier_G(406.4, 410.7, 0.34, 0.28) == pytest.approx(
      (0.34 * 406.4 / (0.28 * 410.7)) ** (1 / 0.62))


def test_chinchilla_optimum_is_the_minimum_along_the_isoflop_line():
  flops = 1e21
  n_opt, d_opt = laws.chinchilla_optimum(flops, EPOCH["A"], EPOCH["B"], EPOCH["alpha"],
                                         EPOCH["beta"])
  assert 6 * n_opt * d_opt == pytest.approx(flops)
  n = n_opt * np.geomspace(0.2, 5, 2001)
  loss = laws.chinchilla_loss(n, flops / (6 * n), **EPOCH)
  assert n[np.argmin(loss)] == pytest.approx(n_opt, rel=2e-3)


def test_epoch_fit_gives_the_published_tokens_per_parameter():
  # Besiroglu et al. 2024: about 26 at 1e18, 23 at 1e20, 18 at 1e24 FLOPs.
  for flops, tokens in ((1e18, 26), (1e20, 23), (1e24, 18)):
    n_opt, d_opt = laws.chinchilla_optimum(flops, EPOCH["A"], EPOCH["B"], EPOCH["alpha"],
                                           EPOCH["beta"])
    assert d_opt / n_opt == pytest.approx(tokens, abs=0.6)


def test_kaplan_law_and_its_optimum():
  alpha_n, alpha_d, n_c, d_c = 0.076, 0.095, 8.8e13, 5.4e13
  # D -> infinity recovers L(N) = (N_c/N)^alpha_N; N -> infinity recovers L(D).
  assert laws.kaplan_loss(1e9, 1e30, alpha_n, alpha_d, n_c, d_c) == pytest.approx(
      (n_c / 1e9) ** alpha_n, rel=1e-9)
  assert laws.kaplan_loss(1e40, 1e10, alpha_n, alpha_d, n_c, d_c) == pytest.approx(
      (d_c / 1e10) ** alpha_d, rel=1e-9)
  flops = 1e20
  n_opt, d_opt = laws.kaplan_optimum(flops, alpha_n, alpha_d, n_c, d_c)
  assert 6 * n_opt * d_opt == pytest.approx(flops)
  n = n_opt * np.geomspace(0.1, 10, 4001)
  loss = laws.kaplan_loss(n, flops / (6 * n), alpha_n, alpha_d, n_c, d_c)
  assert n[np.argmin(loss)] == pytest.approx(n_opt, rel=3e-3)


def test_rule_of_20_and_power_law_fit():
  n, d = laws.rule_optimum(1.2e22)  # 6 N (20 N) = 120 N^2
  assert n == pytest.approx(1e10) and d == pytest.approx(2e11)
  x = np.geomspace(1, 1e6, 7)
  assert laws.fit_power_law(x, 3.0 * x ** -0.25) == pytest.approx((3.0, -0.25))


def test_inference_optimum_by_hand_and_against_brute_force():
  # E = 0, A = B = alpha = beta = 1, target loss 1 (g = 1), T = 3: N = 1/s, D = 1/(1 - s) and
  # the cost 6/(s(1-s)) + 6/s is least where s^2 - 4s + 2 = 0, s = 2 - sqrt(2).
  n, d = laws.inference_optimum(1.0, 3.0, 0.0, 1.0, 1.0, 1.0, 1.0)
  assert n == pytest.approx(1 + np.sqrt(2) / 2, rel=1e-12)
  assert d == pytest.approx(1 + np.sqrt(2), rel=1e-12)
  # T = 0 is Chinchilla's optimum for the loss that optimum reaches.
  n_opt, d_opt = laws.chinchilla_optimum(1e21, EPOCH["A"], EPOCH["B"], EPOCH["alpha"],
                                         EPOCH["beta"])
  target = laws.chinchilla_loss(n_opt, d_opt, **EPOCH)
  assert laws.inference_optimum(target, 0.0, **EPOCH) == pytest.approx((n_opt, d_opt), rel=1e-9)
  for tokens in (1e11, 1e13):
    n, d = laws.inference_optimum(target, tokens, **EPOCH)
    assert laws.chinchilla_loss(n, d, **EPOCH) == pytest.approx(target, rel=1e-12)
    assert n < n_opt and d > d_opt  # smaller models, trained longer
    # Brute force along the iso-loss curve: D(N) = (B / (target - E - A/N^alpha))^(1/beta).
    grid = n * np.geomspace(0.5, 2, 200001)
    gap = target - EPOCH["E"] - EPOCH["A"] / grid ** EPOCH["alpha"]
    grid, gap = grid[gap > 0], gap[gap > 0]
    cost = 6 * grid * (EPOCH["B"] / gap) ** (1 / EPOCH["beta"]) + 2 * grid * tokens
    assert grid[np.argmin(cost)] == pytest.approx(n, rel=1e-4)
  assert np.isnan(laws.inference_optimum(EPOCH["E"], 1e11, **EPOCH)).all()  # unreachable loss


@pytest.mark.parametrize("k, gamma", [(6.0, 1.0), (34.4, 0.869)])
def test_optima_under_a_flop_convention_minimise_the_laws_on_their_compute_curve(k, gamma):
  """C = k N^gamma D (counted FLOPs per token grow slower than 6N at small N): the closed forms
  equal a brute-force minimum along the curve, and reduce to the 6ND ones at k 6, gamma 1."""
  chinchilla = dict(A=477.8, B=2143.8, alpha=0.3473, beta=0.3672)
  kaplan = dict(alpha_N=0.076, alpha_D=0.095, N_c=8.8e13, D_c=5.4e13)
  for flops in (1e12, 1e20):
    n, d = laws.chinchilla_optimum(flops, **chinchilla, k=k, gamma=gamma)
    assert n ** gamma * k * d == pytest.approx(flops)
    grid = np.geomspace(n / 10, n * 10, 200_001)
    loss = laws.chinchilla_loss(grid, flops / (k * grid ** gamma), 0.0, **chinchilla)
    assert grid[np.argmin(loss)] == pytest.approx(n, rel=1e-4)
    n_k, _ = laws.kaplan_optimum(flops, **kaplan, k=k, gamma=gamma)
    grid = np.geomspace(n_k / 10, n_k * 10, 200_001)
    loss = laws.kaplan_loss(grid, flops / (k * grid ** gamma), **kaplan)
    assert grid[np.argmin(loss)] == pytest.approx(n_k, rel=1e-4)
    n_rule, d_rule = laws.rule_optimum(flops, k=k, gamma=gamma)
    assert d_rule == pytest.approx(20 * n_rule) and k * n_rule ** gamma * d_rule == pytest.approx(flops)
  a, b = laws.frontier_exponents_at(0.3473, 0.3672, gamma)
  n1, _ = laws.chinchilla_optimum(1e12, **chinchilla, k=k, gamma=gamma)
  n2, _ = laws.chinchilla_optimum(1e13, **chinchilla, k=k, gamma=gamma)
  assert np.log10(n2 / n1) == pytest.approx(a) and gamma * a + b == pytest.approx(1.0)
  if gamma == 1.0:  # Chinchilla's equation 4
    G = laws.frontier_G(477.8, 2143.8, 0.3473, 0.3672)
    assert n1 == pytest.approx(G * (1e12 / 6) ** (0.3672 / (0.3473 + 0.3672)))
