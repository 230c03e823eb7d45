from datetime import UTC, datetime, timedelta

import pytest

from clipline.domain.errors import InternalError
from clipline.domain.record_versions import DEFAULT_RETENTION, document_expiry, upgrade_document
from clipline.settings import Settings


def test_a_document_from_before_retention_expires_after_its_creation_plus_retention():
    # Given a stored document without an expiry
    old = {"id": "j1", "created_at": "2025-06-01T12:00:00Z"}
    # When it is upgraded
    upgraded = upgrade_document(old, timedelta(days=3))
    # Then it expires three days after it was created, and the original is left as it was
    assert document_expiry(upgraded) == datetime(2025, 6, 4, 12, 0, tzinfo=UTC)
    assert "expires_at" not in old


@pytest.mark.parametrize("name", ["expires_at", "expiresAt"])
def test_a_document_with_an_expiry_keeps_it(name):
    current = {"id": "j1", "created_at": "2025-06-01T12:00:00Z", name: "2025-06-02T00:00:00Z"}
    assert upgrade_document(current, timedelta(days=3)) == current


def test_a_document_without_expiry_or_creation_time_is_refused():
    with pytest.raises(InternalError):
        upgrade_document({"id": "j1"}, timedelta(days=3))


def test_the_default_retention_is_the_settings_default():
    assert timedelta(days=Settings.model_fields["retention_days"].default) == DEFAULT_RETENTION
