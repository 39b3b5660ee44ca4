"""Inference with saved ser_hf / Hugging Face audio-classification checkpoints (batch prediction)."""
