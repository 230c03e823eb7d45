"""Which Lambda serves which API route: read by the local gateway and by the CDK stack."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ApiRoute:
    method: str
    resource: str  # API Gateway resource path, with {param} segments
    handler: str  # module exposing lambda_handler
    # Takes the job creation body, which API Gateway validates against clipline's model.
    takes_body: bool = False


API_ROUTES: tuple[ApiRoute, ...] = (
    ApiRoute("POST", "/api/jobs", "clipline.handlers.create_job", takes_body=True),
    ApiRoute("GET", "/api/jobs", "clipline.handlers.list_jobs"),
    ApiRoute("GET", "/api/jobs/{id}", "clipline.handlers.get_job"),
    ApiRoute("DELETE", "/api/jobs/{id}", "clipline.handlers.delete_job"),
    ApiRoute("GET", "/api/jobs/{id}/result", "clipline.handlers.get_job_result"),
    ApiRoute("POST", "/api/jobs/{id}/webhook/redeliver", "clipline.handlers.redeliver_webhook"),
)
