"""The ``ser_metrics`` evaluate module. Load it by path with
:func:`ser_hf.evaluation.load_ser_metric`; this file only makes setuptools ship the folder."""
