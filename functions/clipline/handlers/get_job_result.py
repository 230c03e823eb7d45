"""API Lambda for GET /api/jobs/{id}/result."""

from ._api import api_handler

lambda_handler = api_handler()
