"""API Lambda for DELETE /api/jobs/{id}: cancel a job, or delete an ended job's artifacts."""

from ._api import api_handler

lambda_handler = api_handler()
