"""openwen: a local-first personal AI assistant on open-weight models, Qwen first."""

__version__ = "0.1.0"
