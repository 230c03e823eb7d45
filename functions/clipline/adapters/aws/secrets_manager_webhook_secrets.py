"""Webhook signing secrets in AWS Secrets Manager: one secret per API key id, encrypted at rest by KMS."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ...domain.errors import ServiceUnavailableError
from ...domain.webhooks import new_secret


def secret_name(prefix: str, owner: str) -> str:
    """The secret of API key ``owner``: under one prefix, which the delivery function's role is scoped to."""
    return f"{prefix.rstrip('/')}/{owner}"


class SecretsManagerWebhookSecrets:
    """WebhookSecrets on Secrets Manager, each key's secret named ``<prefix>/<API key id>``.

    Made on first use. Only the delivery function's role may read them (and the
    operator, through ``clipline keys webhook-secret --aws``); the value never goes
    into a log, a job record or an execution's input.
    """

    def __init__(self, client: Any, prefix: str) -> None:
        self._client = client
        self._prefix = prefix

    def secret_for(self, owner: str) -> str:
        name = secret_name(self._prefix, owner)
        try:
            return self._client.get_secret_value(SecretId=name)["SecretString"]
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceNotFoundException":
                raise _unavailable(name, error) from error
        except BotoCoreError as error:
            raise _unavailable(name, error) from error
        secret = new_secret()
        try:
            self._client.create_secret(
                Name=name, SecretString=secret, Description="clipline: signs the webhooks of one API key"
            )
            return secret
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceExistsException":
                raise _unavailable(name, error) from error
        except BotoCoreError as error:
            raise _unavailable(name, error) from error
        # Another first use made it a moment ago: that one is the key's secret.
        return self.secret_for(owner)

    def rotate(self, owner: str) -> str:
        name = secret_name(self._prefix, owner)
        secret = new_secret()
        try:
            self._client.put_secret_value(SecretId=name, SecretString=secret)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceNotFoundException":
                raise _unavailable(name, error) from error
            self.secret_for(owner)
            return self.rotate(owner)
        except BotoCoreError as error:
            raise _unavailable(name, error) from error
        return secret


def _unavailable(name: str, error: Exception) -> ServiceUnavailableError:
    # The error names the secret, never its value.
    return ServiceUnavailableError(f"could not use the webhook secret {name}: {error}")
