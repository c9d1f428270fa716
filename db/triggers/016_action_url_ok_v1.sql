-- pgbell.action_url_ok_v1(url) -> boolean
--
-- Whether a rendered action_url is safe to put behind a click: a relative
-- path ('/deals/42', not '//host' or '/\host', which browsers read as
-- another host) or an absolute http(s) URL without credentials
-- ('https://host/...'), and no control characters anywhere. javascript:,
-- data: and every other scheme are refused. pgbell.notify stores a refused
-- URL as NULL and reports it. Pure function; private.

CREATE FUNCTION pgbell.action_url_ok_v1(url text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT url !~ '[[:cntrl:]]'
       AND (url ~ '^/([^/\\]|$)' OR url ~* '^https?://[^/\\?#@[:space:]]+([/?#]|$)')
$$;

COMMENT ON FUNCTION pgbell.action_url_ok_v1(text) IS
    'True for a relative path (/...) or an http(s) URL without credentials or control characters: what pgbell.notify stores as action_url.';
REVOKE ALL ON FUNCTION pgbell.action_url_ok_v1(text) FROM PUBLIC;
