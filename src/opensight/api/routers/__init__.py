"""Routers: one module per API surface; they translate HTTP to service calls."""
