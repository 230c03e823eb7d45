"""One contract for every WebhookSecrets: SQLite (local) and Secrets Manager (moto)."""

from __future__ import annotations

import base64
import binascii
import threading
import time

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws
from standardwebhooks.webhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from clipline.adapters.aws.secrets_manager_webhook_secrets import SecretsManagerWebhookSecrets
from clipline.adapters.local.sqlite_webhook_secrets import SqliteWebhookSecrets
from clipline.domain.errors import ServiceUnavailableError
from clipline.domain.use_cases.webhooks import signed_headers
from clipline.domain.webhooks import SECRET_BYTES
from tests.fakes import FixedClock

PREFIX = "clipline/webhook-secrets"


@pytest.fixture
def aws_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
def secretsmanager(aws_credentials):
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


@pytest.fixture(params=["sqlite", "secretsmanager"])
def open_secrets(request, tmp_path):
    """Opens the store: called again, a second adapter on the same data, as another process would have."""
    if request.param == "sqlite":
        clock = FixedClock()
        yield lambda: SqliteWebhookSecrets(tmp_path / "clipline.sqlite3", clock.now)
    else:
        client = request.getfixturevalue("secretsmanager")
        yield lambda: SecretsManagerWebhookSecrets(client, PREFIX)


@pytest.fixture
def secrets(open_secrets):
    return open_secrets()


def key_bytes(secret: str) -> bytes:
    assert secret.startswith("whsec_"), secret
    try:
        return base64.b64decode(secret[len("whsec_") :], validate=True)
    except binascii.Error as error:
        raise AssertionError(f"{secret!r} is not whsec_ and base64") from error


def test_first_use_makes_a_whsec_secret_and_then_returns_the_same_one(secrets, open_secrets):
    secret = secrets.secret_for("key-1")
    assert len(key_bytes(secret)) == SECRET_BYTES == 32
    assert secrets.secret_for("key-1") == secret
    # And it is stored, not remembered: a second adapter on the same store finds the same secret
    assert open_secrets().secret_for("key-1") == secret


def test_each_owner_has_a_secret_of_its_own(secrets):
    first, second = secrets.secret_for("key-1"), secrets.secret_for("key-2")
    assert first != second
    assert key_bytes(first) != key_bytes(second)
    assert secrets.secret_for("key-1") == first and secrets.secret_for("key-2") == second


def test_rotate_replaces_the_secret(secrets, open_secrets):
    old = secrets.secret_for("key-1")
    other = secrets.secret_for("key-2")
    new = secrets.rotate("key-1")
    assert new != old
    assert len(key_bytes(new)) == SECRET_BYTES
    assert secrets.secret_for("key-1") == new
    assert open_secrets().secret_for("key-1") == new
    # Only that owner's secret changed
    assert secrets.secret_for("key-2") == other


def test_rotate_on_an_owner_without_a_secret_makes_one(secrets):
    new = secrets.rotate("fresh")
    assert len(key_bytes(new)) == SECRET_BYTES
    assert secrets.secret_for("fresh") == new
    assert secrets.rotate("fresh") != new


def test_the_secret_signs_what_a_standard_webhooks_receiver_verifies(secrets):
    secret = secrets.secret_for("key-1")
    body = b'{"type":"job.succeeded","data":{"id":"j1"}}'
    headers = signed_headers(secret, "msg_1", int(time.time()), body)
    assert Verifier(secret).verify(body, headers) == {"type": "job.succeeded", "data": {"id": "j1"}}
    # Another owner's secret, an altered body, and the secret rotated away all fail verification
    with pytest.raises(WebhookVerificationError):
        Verifier(secrets.secret_for("key-2")).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Verifier(secret).verify(body.replace(b"j1", b"j2"), headers)
    rotated = secrets.rotate("key-1")
    with pytest.raises(WebhookVerificationError):
        Verifier(rotated).verify(body, headers)


def test_first_uses_at_once_agree_on_one_secret(open_secrets):
    # Given several first deliveries for the same key at the same moment, each with its own adapter
    adapters = [open_secrets() for _ in range(6)]
    barrier = threading.Barrier(len(adapters))
    found: list[str] = []
    failures: list[BaseException] = []

    def first_use(adapter) -> None:
        barrier.wait(5)
        try:
            found.append(adapter.secret_for("key-1"))
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(error)

    threads = [threading.Thread(target=first_use, args=(adapter,)) for adapter in adapters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    # Then they all got the one secret the store keeps
    assert failures == []
    assert len(found) == len(adapters)
    assert set(found) == {adapters[0].secret_for("key-1")}


def test_secrets_manager_stores_the_secret_under_the_prefix_and_owner(secretsmanager):
    secrets = SecretsManagerWebhookSecrets(secretsmanager, PREFIX)
    secret = secrets.secret_for("key-1")
    assert secretsmanager.get_secret_value(SecretId=f"{PREFIX}/key-1")["SecretString"] == secret
    rotated = secrets.rotate("key-1")
    assert secretsmanager.get_secret_value(SecretId=f"{PREFIX}/key-1")["SecretString"] == rotated
    # A prefix given with a trailing slash names the same secrets
    assert SecretsManagerWebhookSecrets(secretsmanager, PREFIX + "/").secret_for("key-1") == rotated
    names = {entry["Name"] for entry in secretsmanager.list_secrets()["SecretList"]}
    assert names == {f"{PREFIX}/key-1"}


def test_secrets_manager_first_use_that_loses_the_race_takes_the_winner_s_secret(secretsmanager):
    # Given another first use that creates the key's secret just before this one's create reaches the store
    winner = "whsec_" + base64.b64encode(b"w" * 32).decode()
    other_process = boto3.client("secretsmanager", region_name="us-east-1")

    def create_first(**_: object) -> None:
        secretsmanager.meta.events.unregister("before-call.secrets-manager.CreateSecret", create_first)
        other_process.create_secret(Name=f"{PREFIX}/key-1", SecretString=winner)

    secretsmanager.meta.events.register("before-call.secrets-manager.CreateSecret", create_first)
    # When this one's create finds the secret made, it reads and returns that one: one secret per key
    assert SecretsManagerWebhookSecrets(secretsmanager, PREFIX).secret_for("key-1") == winner
    assert secretsmanager.get_secret_value(SecretId=f"{PREFIX}/key-1")["SecretString"] == winner


def test_secrets_manager_reads_a_secret_made_outside_the_adapter(secretsmanager):
    # As when the operator's CLI made it: the adapter returns what is stored, and makes nothing new
    secretsmanager.create_secret(Name=f"{PREFIX}/key-9", SecretString="whsec_" + base64.b64encode(b"k" * 32).decode())
    assert SecretsManagerWebhookSecrets(secretsmanager, PREFIX).secret_for("key-9") == "whsec_" + base64.b64encode(
        b"k" * 32
    ).decode()


@pytest.fixture
def unreachable_secretsmanager(aws_credentials):
    """A client for a Secrets Manager endpoint nothing listens on, with one attempt and short timeouts."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = Config(connect_timeout=1, read_timeout=1, retries={"mode": "standard", "total_max_attempts": 1})
    return boto3.client(
        "secretsmanager", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{port}", config=config
    )


@pytest.mark.parametrize("call", ["secret_for", "rotate"])
def test_an_unreachable_secrets_manager_is_unavailable_and_the_error_names_no_secret(unreachable_secretsmanager, call):
    secrets = SecretsManagerWebhookSecrets(unreachable_secretsmanager, PREFIX)
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError) as raised:
        getattr(secrets, call)("key-1")
    assert time.monotonic() - started < 5
    message = raised.value.message
    # It names the secret, so an operator can find it, and carries no secret value
    assert f"{PREFIX}/key-1" in message, message
    assert "whsec_" not in message and "whsec_" not in str(raised.value), message
    assert raised.value.code == "SERVICE_UNAVAILABLE"
