"""CloudSight API compatibility: ``/image_requests`` and ``/image_responses/{token}``.

``request`` parses CloudSight's form fields, ``oauth`` verifies its OAuth 1.0
signatures, ``render`` turns native jobs into CloudSight job bodies, ``errors``
holds its ``{"error": ...}`` shape, and ``service`` maps all of it onto the
native analysis service (quality and moderation gates, then the caption).
See docs/compat/cloudsight.md.
"""
