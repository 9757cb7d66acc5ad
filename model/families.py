"""The model families and the objective each is trained on (model/objectives.py implements them)."""
FAMILIES = ("decoder", "encoder", "encoder_decoder")
OBJECTIVES = {"decoder": "causal_lm", "encoder": "masked_lm", "encoder_decoder": "span_corruption"}
