"""Which Lambda serves which API route: read by the local gateway and by the CDK stack."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ApiRoute:
    method: str
    resource: str  # API Gateway resource path, with {param} segments
    handler: str  # module exposing lambda_handler
    # The name of the clipline.api.schemas model of its body, which API Gateway validates it against.
    body_model: str | None = None

    @property
    def takes_body(self) -> bool:
        return self.body_model is not None


API_ROUTES: tuple[ApiRoute, ...] = (
    ApiRoute("POST", "/api/jobs", "clipline.handlers.create_job", body_model="CreateJobBody"),
    ApiRoute("GET", "/api/jobs", "clipline.handlers.list_jobs"),
    ApiRoute("GET", "/api/jobs/{id}", "clipline.handlers.get_job"),
    ApiRoute("DELETE", "/api/jobs/{id}", "clipline.handlers.delete_job"),
    ApiRoute("GET", "/api/jobs/{id}/result", "clipline.handlers.get_job_result"),
    ApiRoute("POST", "/api/jobs/{id}/webhook/redeliver", "clipline.handlers.redeliver_webhook"),
    ApiRoute("POST", "/api/uploads", "clipline.handlers.create_upload", body_model="CreateUploadBody"),
)
