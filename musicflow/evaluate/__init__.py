"""Evaluation: musical metrics, an independent genre classifier, likelihood reports."""
