"""The cluster suite needs PostgreSQL (the cluster's only coordinator), on either pass of ./test.sh."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster.stack import ClusterStack, postgres_reachable
from tests.support import db as testdb

NO_POSTGRES = ("a cluster needs PostgreSQL (CONTRACT §4) and none answers at LEADMASTER_TEST_PG_DSN / "
               "127.0.0.1:5432; ./test.sh starts one")


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterStack]:
    if not postgres_reachable():
        pytest.skip(NO_POSTGRES)
    stack = ClusterStack(tmp_path_factory.mktemp("cluster"))
    try:
        stack.start(n_hubs=getattr(request.module, "N_HUBS", 2), **dict(getattr(request.module, "SM_ENV", {})))
        yield stack
    finally:
        stack.close()


@pytest.fixture
def cluster_db() -> Iterator[str]:
    """A throwaway PostgreSQL database for one test's session-managers."""
    if not postgres_reachable():
        pytest.skip(NO_POSTGRES)
    url = testdb.create_database("leadmaster_test_cluster")
    try:
        yield url
    finally:
        testdb.drop_database(url)
