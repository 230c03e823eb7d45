"""API Lambda for GET /api/jobs/{id}."""

from ._api import api_handler

lambda_handler = api_handler()
