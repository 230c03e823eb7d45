"""API Lambda for POST /api/jobs."""

from ._api import api_handler

lambda_handler = api_handler()
