"""Translators for foreign image APIs: parse their requests, render native results in their shape.

One package per API; pure Python, no HTTP framework. The routers in ``api/routers`` call them.
"""
