"""API Lambda for GET /api/jobs."""

from ._api import api_handler

lambda_handler = api_handler()
