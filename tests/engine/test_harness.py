"""The test harness gives each test a real, empty database on both backends."""

import sqlalchemy as sa


def test_database_is_real_and_empty(database_url, request):
    expected_dialect = request.node.callspec.params["database_url"]
    engine = sa.create_engine(database_url)
    try:
        assert engine.dialect.name == expected_dialect
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
