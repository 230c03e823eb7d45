"""API Lambda for POST /api/uploads: a signed link to PUT a source straight into storage."""

from ._api import api_handler

lambda_handler = api_handler()
