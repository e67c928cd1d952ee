"""Model runtime: catalog of models, the install store, pulls, shared sessions, batching.

Analyzers ask this package for a model by id; it answers with a loaded,
shared object or the typed ``ModelUnavailable`` error naming the pull command.
"""
