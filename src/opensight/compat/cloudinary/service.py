"""The Analyze API's two operations on top of the native services, free of any HTTP framework.

The router hands over the path parameters, the ``Authorization`` header and the raw body;
this module authenticates, rate-limits, parses, calls ``AnalysisService`` (sync: run now;
async: a durable job tagged ``api="cloudinary"``) and renders the reply. Every failure is a
``CloudinaryError`` (or a native ``OpenSightError`` the router maps with ``errors.from_native``).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from ...analyzers import registry
from ...errors import Forbidden, NotFound, Unauthorized
from ...services.analysis import AnalysisRequest, Source
from ...services.container import Container
from ...services.keys import Principal
from . import analyzers, auth, requests
from .analyzers import AnalyzerMap
from .errors import CloudinaryError
from .limits import Buckets, limits
from .requests import AnalyzeBody
from .webhook import api_data, task_data

API = "cloudinary"
#: Cloud names as Cloudinary issues them (letters, digits, ``-`` and ``_``), kept to 128.
_CLOUD_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Call:
    """A validated analyze request, ready to run now or to queue."""

    principal: Principal
    cloud_name: str
    mapping: AnalyzerMap
    body: AnalyzeBody
    request_id: str
    limits: dict[str, Any] | None

    @property
    def run_async(self) -> bool:
        return self.body.run_async

    @property
    def entity(self) -> str | None:
        """Cloudinary's ``entity``: the uri or asset id as given."""
        return (
            self.body.source.uri if self.body.source.uri is not None else self.body.source.asset_id
        )

    @property
    def source(self) -> Source:
        return Source(url=self.body.source.uri, image_id=self.body.source.asset_id)


def new_request_id() -> str:
    return uuid.uuid4().hex


class CloudinaryService:
    def __init__(self, container: Container, buckets: Buckets) -> None:
        self.container = container
        self.buckets = buckets

    # ------------------------------------------------------------- admission
    def authenticate(self, authorization: str | None) -> Principal:
        """The caller behind HTTP Basic ``key:secret`` (or a bearer key); 401/403 otherwise."""
        credentials = auth.parse_authorization(authorization)
        keys = self.container.keys
        try:
            principal = keys.authenticate(credentials.key)
        except Unauthorized:  # an unknown key reads like a wrong secret
            raise auth.unauthorized(auth.INVALID) from None
        except Forbidden:  # revoked: said only to whoever holds the secret too
            record = keys.lookup(credentials.key)
            auth.check_secret(record.secret if record else "", credentials.secret)
            raise
        auth.check_secret(principal.secret, credentials.secret)
        return principal

    def admit(self, principal: Principal, limit_type: str) -> None:
        """Spend one token of the key's bucket; 429 with ``limits`` when it is empty."""
        wait = self.buckets.take(principal.key_id) if self.buckets.enabled else 0.0
        if wait > 0:
            raise CloudinaryError(
                429,
                "rate_limited",
                f"rate limit of {self.buckets.rate:g} requests/s exceeded; retry in {wait:.1f} s",
                retry_after=wait,
                limits=limits(self.buckets, principal.key_id, limit_type, used=0),
            )

    @staticmethod
    def check_cloud_name(cloud_name: str) -> str:
        if not _CLOUD_NAME.fullmatch(cloud_name):
            raise CloudinaryError(
                400,
                "invalid_request",
                "the cloud name must be 1-128 letters, digits, '-' or '_'",
            )
        return cloud_name

    # --------------------------------------------------------------- analyze
    def prepare(
        self,
        principal: Principal,
        cloud_name: str,
        mapping: AnalyzerMap,
        raw_body: bytes,
        request_id: str,
    ) -> Call:
        """Validate a request (cheap, no I/O beyond the registry); run it with ``run``/``submit``."""
        body = requests.parse(mapping.body, raw_body)
        self.check_cloud_name(cloud_name)
        if mapping.feature not in registry.all_analyzers():
            raise CloudinaryError(
                500,
                "analyzer_unavailable",
                f"`{mapping.name}` runs the native `{mapping.feature}` analyzer, "
                "which is not installed in this server",
                details={"feature": mapping.feature},
            )
        return Call(
            principal=principal,
            cloud_name=cloud_name,
            mapping=mapping,
            body=body,
            request_id=request_id,
            limits=limits(self.buckets, principal.key_id, mapping.limit_type),
        )

    def run(self, call: Call) -> Reply:
        """A sync analysis: run the native pipeline now and render its result (200)."""
        mapping, body = call.mapping, call.body
        request = AnalysisRequest(features=[mapping.feature], options=mapping.options(body))
        outcome = self.container.analysis.analyze_now(call.principal, call.source, request)
        result = outcome["result"].get(mapping.feature) or {}
        analysis = mapping.render(result, mapping.params(body))
        return Reply(
            200,
            {
                "data": {"entity": call.entity, "analysis": analysis},
                "request_id": call.request_id,
                "limits": call.limits,
            },
        )

    def submit(self, call: Call) -> Reply:
        """An async analysis: a durable job tagged ``api="cloudinary"`` (202 with its task id)."""
        mapping, body = call.mapping, call.body
        request = AnalysisRequest(
            features=[mapping.feature],
            options=mapping.options(body),
            webhook_url=body.notification_url,
            api=API,
            api_data={
                "analyzer": mapping.name,
                "request_id": call.request_id,
                "cloud_name": call.cloud_name,
                "entity": call.entity,
                "params": mapping.params(body),
                "notification_url": body.notification_url,
                "limits": call.limits,
            },
        )
        job, _ = self.container.analysis.submit(call.principal, call.source, request)
        return Reply(
            202,
            {"data": {"task_id": job.id, "status": "pending"}, "request_id": call.request_id},
            headers={"Location": f"/v2/analysis/{call.cloud_name}/tasks/{job.id}"},
        )

    # ----------------------------------------------------------------- tasks
    def task(self, principal: Principal, cloud_name: str, task_id: str, request_id: str) -> Reply:
        """A task of this tenant made through this API; any other id is 404."""
        self.check_cloud_name(cloud_name)
        not_found = CloudinaryError(404, "not_found", f"no task {task_id[:100]!r}")
        if len(task_id) > 100:
            raise not_found
        try:
            job = self.container.jobs.get(task_id, principal.tenant_id)
        except NotFound:
            raise not_found from None
        if (job.options or {}).get("api") != API:
            raise not_found
        mapping = analyzers.get(str(api_data(job).get("analyzer")))
        self.admit(principal, mapping.limit_type)
        return Reply(200, {"data": task_data(job), "request_id": request_id})
