"""Training: the frozen probe, the fine-tuning trainer, recipes and cross-validation."""
