"""The old name of pipelines.exit_gc, kept only because trainer/train.py and trainer/predict.py import it."""

from pipelines.exit_gc import skip_final_gc

__all__ = ["skip_final_gc"]
