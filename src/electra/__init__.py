"""ELECTRA pretraining and GLUE finetuning in PyTorch."""

__version__ = "0.1.0"
