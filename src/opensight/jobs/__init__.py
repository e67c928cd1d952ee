"""Durable jobs: the store (truth), the worker pool, and webhook delivery."""
