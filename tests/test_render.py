"""pgbell.render_v2, pgbell.render_one_v1 and render_one_v2 render exactly what
pgbell.render_v1 does, on random templates and data, in the real
PostgreSQL: the set-based and one-pass renderers may replace the loop only
if no template or data tells them apart."""

from __future__ import annotations

import json

import psycopg
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

EXAMPLES = 400

# text PostgreSQL can hold: no NUL, no lone surrogates
_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
_keys = st.one_of(
    st.sampled_from(["title", "amount", "deal_id", "a", "_", "A1", "x_9"]),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True),
)
# what a template is made of: placeholders, near misses, and any other text
_pieces = st.one_of(
    _keys.map(lambda k: "{" + k + "}"),
    _keys.map(lambda k: "{" + k + ":money}"),
    _keys.map(lambda k: "{" + k + ":Money}"),
    _keys.map(lambda k: "{" + k + ":money"),
    st.sampled_from(["{", "}", "{}", ":money}", "{1a}", "{ a}", "{a }", "{{a}}", "{a:}", "{é}"]),
    st.text(_chars, max_size=8),
)
templates = st.one_of(st.none(), st.lists(_pieces, max_size=8).map("".join))

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(_chars, max_size=8),
    st.sampled_from(["{title}", "{amount:money}", "12", ""]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(_chars, max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)
# mostly objects; sometimes NULL, JSON null, an array or a scalar
documents = st.one_of(
    st.dictionaries(_keys, _values, max_size=6).map(json.dumps),
    st.dictionaries(_keys, _values, max_size=6).map(json.dumps),
    st.none(),
    _values.map(json.dumps),
)

COMPARE = """
    SELECT v2.event, v2.field, v2.rendered, v2.missing, v1.rendered, v1.missing,
           one.rendered, one.missing, one2.rendered, one2.missing
      FROM pgbell.render_v2(%(t)s::text[], %(d)s::jsonb[]) AS v2
     CROSS JOIN LATERAL pgbell.render_v1((%(t)s::text[])[v2.field],
                                         (%(d)s::jsonb[])[v2.event]) AS v1
     CROSS JOIN LATERAL pgbell.render_one_v1((%(t)s::text[])[v2.field],
                                             (%(d)s::jsonb[])[v2.event]) AS one
     CROSS JOIN LATERAL pgbell.render_one_v2((%(t)s::text[])[v2.field],
                                             (%(d)s::jsonb[])[v2.event]) AS one2
     ORDER BY v2.event, v2.field
"""


def test_render_v2_is_render_v1_on_any_template_and_data(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:

        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(
            tpls=st.lists(templates, min_size=1, max_size=4),
            docs=st.lists(documents, min_size=1, max_size=4),
        )
        @example(tpls=["New deal: {title}", "{title}, {amount:money}"], docs=['{"title": "A"}'])
        @example(tpls=["{a:money}{a}{b}{a}", None, ""], docs=['{"a": "x"}', '{"a": null}', None])
        @example(tpls=["{a:money}"], docs=['{"a": 1e300}', '{"a": -0.005}', '{"a": true}'])
        @example(tpls=["{a}"], docs=['{"a": {"b": [1, "c"]}}', '["a"]', '"a"'])
        @example(tpls=["\x01{a}\x02{b:money}", "{a}\x01"], docs=['{"a": "\\u0001", "b": 2}'])
        @example(tpls=["{a}}{", "{{a:money}", "{a:money:money}", "x{a"], docs=['{"a": 12.5}'])
        def renders_alike(tpls: list[str | None], docs: list[str | None]) -> None:
            rows = conn.execute(COMPARE, {"t": tpls, "d": docs}).fetchall()
            assert [(r[0], r[1]) for r in rows] == [
                (e, f) for e in range(1, len(docs) + 1) for f in range(1, len(tpls) + 1)
            ], "render_v2 must give one row per data document and template, in order"
            for row in rows:
                event, field, text2, missing2, text1, missing1, text_one, missing_one = row[:8]
                text_one2, missing_one2 = row[8:]
                where = f"template {tpls[field - 1]!r} with data {docs[event - 1]!r}"
                assert text2 == text1, f"rendered text differs for {where}"
                assert missing2 == missing1, f"missing keys differ for {where}"
                assert text_one == text1, f"render_one_v1's text differs for {where}"
                assert missing_one == missing1, f"render_one_v1's missing keys differ for {where}"
                assert text_one2 == text1, f"render_one_v2's text differs for {where}"
                assert missing_one2 == missing1, f"render_one_v2's missing keys differ for {where}"

        renders_alike()


def test_render_v2_of_no_data_is_no_rows(database_url):
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT * FROM pgbell.render_v2('{\"{a}\"}', '{}')").fetchall()
    assert rows == []
