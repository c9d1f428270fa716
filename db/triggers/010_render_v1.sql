-- pgbell.render_v1(template, data) -> (rendered, missing)
--
-- Fills {name} placeholders from the keys of `data`; {name:money} formats a
-- number as 12,000.00. A placeholder whose key is missing stays in the text
-- as written (visible to whoever reads it) and is returned in `missing`, so
-- the caller can report it; rendering never raises, because it runs inside
-- the writer's transaction.
-- Pure function: reads nothing, writes nothing, sends nothing. Private:
-- only pgbell.notify calls it.

CREATE FUNCTION pgbell.render_v1(template text, data jsonb, OUT rendered text, OUT missing text[])
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rest  text := coalesce(template, '');
    m     text[];
    token text;
    val   jsonb;
    pos   int;
BEGIN
    rendered := '';
    missing := '{}';
    LOOP
        m := regexp_match(rest, '\{([A-Za-z_][A-Za-z0-9_]*)(?::(money))?\}');
        EXIT WHEN m IS NULL;
        token := '{' || m[1] || coalesce(':' || m[2], '') || '}';
        -- the first literal occurrence of the token is the regex's first match
        pos := strpos(rest, token);
        rendered := rendered || left(rest, pos - 1);
        rest := substr(rest, pos + length(token));
        val := data -> m[1];
        IF val IS NULL OR jsonb_typeof(val) = 'null' THEN
            rendered := rendered || token;
            IF NOT m[1] = ANY (missing) THEN
                missing := missing || m[1];
            END IF;
        ELSIF m[2] = 'money' AND jsonb_typeof(val) = 'number' THEN
            rendered := rendered || to_char((val #>> '{}')::numeric, 'FM999,999,999,999,990.00');
        ELSE
            rendered := rendered || (val #>> '{}');
        END IF;
    END LOOP;
    rendered := rendered || rest;
END;
$$;

COMMENT ON FUNCTION pgbell.render_v1(text, jsonb) IS
    'Fills {name} / {name:money} placeholders from data; a missing key stays visible in the text and is listed in missing. Never raises.';
REVOKE ALL ON FUNCTION pgbell.render_v1(text, jsonb) FROM PUBLIC;
