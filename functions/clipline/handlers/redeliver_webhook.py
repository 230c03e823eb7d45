"""API Lambda for POST /api/jobs/{id}/webhook/redeliver."""

from ._api import api_handler

lambda_handler = api_handler()
