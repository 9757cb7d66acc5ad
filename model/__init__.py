"""The model only: the NNX transformer and its families' objectives, sizing and FLOP counting,
hyperparameter rules, corruption, generation, quantization and loading a trained run's weights."""
