"""The scaling laws as pure functions of numbers (numpy arrays or floats in, same out).

Chinchilla (Hoffmann et al. 2022): L(N, D) = E + A/N^alpha + B/D^beta. Minimising it under
C = 6 N D gives N_opt = G (C/6)^a and D_opt = G^-1 (C/6)^b with a = beta/(alpha+beta),
b = alpha/(alpha+beta), G = (alpha A / (beta B))^(1/(alpha+beta)) (the paper's equation 4).

Kaplan et al. (2020): L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D (their equation 1.5),
with no irreducible term. Under C = 6 N D its minimum over N is at
N_opt = (k N_c^k C / (6 D_c))^(1/(k+1)), k = alpha_N/alpha_D (the bracket's derivative is 0 there).
"""
import numpy as np

TOKENS_PER_PARAM_RULE = 20.0  # Hoffmann et al.'s rule of thumb


def chinchilla_loss(n, d, E, A, B, alpha, beta):
  return E + A / np.power(n, alpha) + B / np.power(d, beta)


def frontier_exponents(alpha, beta):
  """(a, b): N_opt ∝ C^a and D_opt ∝ C^b."""
  return beta / (alpha + beta), alpha / (alpha + beta)


def frontier_G(A, B, alpha, beta):
  return np.power(alpha * A / (beta * B), 1 / (alpha + beta))


def chinchilla_optimum(flops, A, B, alpha, beta):
  """(N_opt, D_opt) minimising the Chinchilla law at compute C = 6 N D."""
  a, b = frontier_exponents(alpha, beta)
  G = frontier_G(A, B, alpha, beta)
  return G * np.power(np.asarray(flops) / 6, a), np.power(np.asarray(flops) / 6, b) / G


def kaplan_loss(n, d, alpha_N, alpha_D, N_c, D_c):
  return np.power(np.power(N_c / n, alpha_N / alpha_D) + D_c / d, alpha_D)


def kaplan_optimum(flops, alpha_N, alpha_D, N_c, D_c):
  """(N_opt, D_opt) minimising the Kaplan L(N, D) at compute C = 6 N D."""
  k = alpha_N / alpha_D
  n_opt = np.power(k * np.power(N_c, k) * np.asarray(flops) / (6 * D_c), 1 / (k + 1))
  return n_opt, np.asarray(flops) / (6 * n_opt)


def rule_optimum(flops, tokens_per_param=TOKENS_PER_PARAM_RULE):
  """(N, D) with D = tokens_per_param * N and C = 6 N D."""
  n = np.sqrt(np.asarray(flops) / (6 * tokens_per_param))
  return n, tokens_per_param * n


def fit_power_law(x, y):
  """(coefficient, exponent) of y = coefficient * x^exponent, least squares in log-log."""
  exponent, intercept = np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)
  return float(np.exp(intercept)), float(exponent)
