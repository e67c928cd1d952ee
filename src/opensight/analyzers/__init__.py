"""Analyzers: one module per feature, each registering itself with ``registry``."""

from .base import AnalysisContext, Analyzer, Readiness

__all__ = ["AnalysisContext", "Analyzer", "Readiness"]
