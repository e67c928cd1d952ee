"""Image Intelligence (``/v2``): OAuth2 client-credential tokens, detect requests, HITL.

``schemas`` parses requests, ``tokens`` signs and checks access tokens, ``render`` turns
native job data into the API's job JSON, ``hitl`` picks the objects a person must review,
``service`` groups one native job per image into a detect request, ``webhook`` renders the
completion webhook. The HTTP layer is ``opensight.api.routers.imageintelligence``.
"""
