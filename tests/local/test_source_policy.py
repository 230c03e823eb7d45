"""A service with the production default: private and loopback sources are refused at creation."""

import pytest

from tests.local.conftest import start_service


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    running = start_service(tmp_path_factory.mktemp("strict"), allow_private_sources=False)
    yield running
    running.service.stop()


def test_start_service_really_refuses_private_sources(strict):
    assert strict.service.settings.allow_private_sources is False


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9/a.mp4", "http://localhost/a.mp4", "http://169.254.169.254/latest/meta-data", "http://[::1]/a.mp4", "http://10.0.0.7/a.mp4"],
)
def test_private_sources_are_refused_and_nothing_is_stored(strict, url):
    reply = strict.client.create(url, 0, 5)
    assert reply.status == 400 and reply.code == "SOURCE_NOT_ALLOWED", reply.body
    assert strict.job_count() == 0
