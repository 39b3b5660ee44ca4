"""Pretrained speech backbones: the model factory, presets and conversion of offline weights."""
