"""The constant peak, and the schedules built on it: wsd (warmup-stable-decay, Hägele et al. 2024:
one cooldown at the end) and wsd_s (WSD-S, Wen et al. 2024: cooldowns at several points of one
run, by default OLMo's ladder's 0.5, 1, 2, 5 and 10x Chinchilla of a 10x run)."""
from training.schedules import Schedule, register


def decay(step, warmup, total, peak_lr, min_lr_ratio):
  return peak_lr


register(Schedule("constant", decay, length_free=True))
register(Schedule("wsd", decay, length_free=True, points=(1.0,)))
register(Schedule("wsd_s", decay, length_free=True, points=(0.05, 0.1, 0.2, 0.5, 1.0)))
