"""The scaling laws as pure functions of numbers (numpy arrays or floats in, same out).

Chinchilla (Hoffmann et al. 2022): L(N, D) = E + A/N^alpha + B/D^beta. Minimising it under
C = 6 N D gives N_opt = G (C/6)^a and D_opt = G^-1 (C/6)^b with a = beta/(alpha+beta),
b = alpha/(alpha+beta), G = (alpha A / (beta B))^(1/(alpha+beta)) (the paper's equation 4).

Inference-aware (Sardana et al. 2023, "Beyond Chinchilla-Optimal"): a model that will serve T
tokens costs 6 N D to train and 2 N T to serve. The (N, D) reaching a target loss l at the least
total cost solves, with g = l - E, u = A/N^alpha the N term and s = u/g, the first-order condition
6 D (alpha s / (beta (1 - s)) - 1) = 2 T on the iso-loss curve. At T = 0 that is alpha u = beta
(g - u), Chinchilla's optimum (s0 = beta/(alpha+beta)); with s = s0 + (1 - s0) sigmoid(z) the left
side is increasing in z (its log is log 6 D + log((alpha+beta)/beta) + z), so bisection in z finds
the one root.

Kaplan et al. (2020): L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D (their equation 1.5),
with no irreducible term. Under C = 6 N D its minimum over N is at
N_opt = (k N_c^k C / (6 D_c))^(1/(k+1)), k = alpha_N/alpha_D (the bracket's derivative is 0 there).

Every optimum also takes a table's own FLOP convention, C = k N^gamma D: counted FLOPs per token
(embeddings, attention, logits) grow slower than 6N at small N (gamma < 1); 6ND is k 6, gamma 1.
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


def frontier_exponents_at(alpha, beta, gamma=1.0):
  """(a, b) when C = k N^gamma D: N_opt ∝ C^(beta / (alpha + gamma beta)), D_opt ∝ C^(1 - gamma a)."""
  a = beta / (alpha + gamma * beta)
  return a, 1 - gamma * a


def chinchilla_optimum(flops, A, B, alpha, beta, k=6.0, gamma=1.0):
  """(N_opt, D_opt) minimising the Chinchilla law at compute C = k N^gamma D (6ND: k 6, gamma 1).

  dL/dN = 0 on that curve: alpha A N^-alpha = gamma beta B D^-beta, so
  N_opt = (alpha A / (gamma beta B))^(1/(alpha + gamma beta)) (C/k)^(beta/(alpha + gamma beta)).
  """
  flops = np.asarray(flops)
  a, _ = frontier_exponents_at(alpha, beta, gamma)
  n = np.power(alpha * A / (gamma * beta * B), 1 / (alpha + gamma * beta)) * np.power(flops / k, a)
  return n, flops / (k * np.power(n, gamma))


def inference_optimum(target_loss, inference_tokens, E, A, B, alpha, beta, iterations=200):
  """(N, D) reaching L(N, D) = target_loss at the least 6 N D + 2 N T (T = inference_tokens);
  NaN where the target is at or below E."""
  g = np.asarray(target_loss, np.float64) - E
  t = np.asarray(inference_tokens, np.float64)
  s0 = beta / (alpha + beta)
  with np.errstate(all="ignore"):
    log_g = np.log(np.where(g > 0, g, np.nan))

    def log_d(z):  # log D on the iso-loss curve, at s = s0 + (1 - s0) sigmoid(z)
      return (np.log(B) - log_g - np.log1p(-s0) + np.logaddexp(0, z)) / beta

    target = np.log(2 * t) - np.log(6) - np.log((alpha + beta) / beta)
    low, high = np.full(np.shape(log_g), -1e3), np.full(np.shape(log_g), 1e3)
    for _ in range(iterations):  # the condition's log, log D(z) + z, increases with z
      z = (low + high) / 2
      above = log_d(z) + z > target
      high, low = np.where(above, z, high), np.where(above, low, z)
    z = np.where(t > 0, (low + high) / 2, -np.inf)  # T = 0: s = s0, Chinchilla's optimum
    s = s0 + (1 - s0) / (1 + np.exp(-z))
    return np.exp((np.log(A) - log_g - np.log(s)) / alpha), np.exp(log_d(z))


def kaplan_loss(n, d, alpha_N, alpha_D, N_c, D_c):
  return np.power(np.power(N_c / n, alpha_N / alpha_D) + D_c / d, alpha_D)


def kaplan_optimum(flops, alpha_N, alpha_D, N_c, D_c, k=6.0, gamma=1.0):
  """(N_opt, D_opt) minimising the Kaplan L(N, D) at compute C = k N^gamma D: with
  q = alpha_N/alpha_D, N_opt = (q N_c^q C / (gamma k D_c))^(1/(q + gamma))."""
  q = alpha_N / alpha_D
  flops = np.asarray(flops)
  n_opt = np.power(q * np.power(N_c, q) * flops / (gamma * k * D_c), 1 / (q + gamma))
  return n_opt, flops / (k * np.power(n_opt, gamma))


def rule_optimum(flops, tokens_per_param=TOKENS_PER_PARAM_RULE, k=6.0, gamma=1.0):
  """(N, D) with D = tokens_per_param * N and C = k N^gamma D."""
  n = np.power(np.asarray(flops) / (k * tokens_per_param), 1 / (1 + gamma))
  return n, tokens_per_param * n


def fit_power_law(x, y):
  """(coefficient, exponent) of y = coefficient * x^exponent, least squares in log-log."""
  exponent, intercept = np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)
  return float(np.exp(intercept)), float(exponent)
