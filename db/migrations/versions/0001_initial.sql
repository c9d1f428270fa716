-- Migration 0001: pgbell's own schema, and nothing outside it. Never edited
-- after release; later changes are new migrations (db/schema.sql shows the
-- sum). The demo domain (public.deals, public.payments) is a separate
-- branch, demo_0001, installed by `pgbell migrate --demo` only.

-- env.py creates the schema first: alembic keeps its version table in it.
CREATE SCHEMA IF NOT EXISTS pgbell;
COMMENT ON SCHEMA pgbell IS 'pgbell: notifications with PostgreSQL as the bus. Public SQL API: pgbell.notify() and pgbell.role_members(); see docs/sql-api.md for what else is public.';
REVOKE ALL ON SCHEMA pgbell FROM PUBLIC;

CREATE TYPE pgbell.priority AS ENUM ('low', 'normal', 'high', 'urgent');
COMMENT ON TYPE pgbell.priority IS 'Ordered: low < normal < high < urgent. urgent bypasses every mute.';

-- pgbell's own users: standalone mode and the demo. An application with
-- its own users needs none: recipients are its ids, as text.
CREATE TABLE pgbell.users (
    id            bigserial PRIMARY KEY,
    username      text NOT NULL UNIQUE CHECK (length(username) BETWEEN 1 AND 150),
    password_hash text NOT NULL,
    roles         text[] NOT NULL DEFAULT '{}',
    -- Carried in every token pgbell's login issues; a password change bumps
    -- it, which refuses every token issued before.
    token_version integer NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_roles_idx ON pgbell.users USING gin (roles);
COMMENT ON TABLE pgbell.users IS 'pgbell''s own users (standalone mode and the demo): recipient id::text. roles feed the installed pgbell.role_members().';

CREATE TABLE pgbell.templates (
    kind        text PRIMARY KEY CHECK (kind ~ '^[a-z][a-z0-9_]{0,63}$'),
    title       text NOT NULL,
    body        text NOT NULL DEFAULT '',
    action_url  text,
    priority    pgbell.priority NOT NULL DEFAULT 'normal',
    description text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pgbell.templates IS 'One row per notification kind. {name} and {name:money} placeholders are filled from the event data; edit with UPDATE, no deploy.';

CREATE TABLE pgbell.template_problems (
    kind       text NOT NULL,
    field      text NOT NULL,
    problem    text NOT NULL CHECK (problem IN ('missing_data', 'invalid_action_url')),
    missing    text[] NOT NULL DEFAULT '{}',
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now(),
    seen       bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (kind, field, problem, missing)
);
COMMENT ON TABLE pgbell.template_problems IS 'What pgbell.notify() had to work around: placeholders without data (left visible in the text) and action URLs that were neither a relative path nor http(s) (stored as NULL).';

CREATE TABLE pgbell.global_preferences (
    user_id      text COLLATE "C" PRIMARY KEY CHECK (length(user_id) BETWEEN 1 AND 255),
    muted        boolean NOT NULL DEFAULT false,
    min_priority pgbell.priority NOT NULL DEFAULT 'low'
);
COMMENT ON TABLE pgbell.global_preferences IS 'Per recipient, for every kind: mute all, or a minimum priority. urgent is always delivered.';

CREATE TABLE pgbell.preferences (
    user_id      text COLLATE "C" NOT NULL CHECK (length(user_id) BETWEEN 1 AND 255),
    kind         text NOT NULL REFERENCES pgbell.templates (kind) ON DELETE CASCADE ON UPDATE CASCADE,
    muted        boolean NOT NULL DEFAULT false,
    min_priority pgbell.priority,  -- NULL: the recipient's global min_priority
    PRIMARY KEY (user_id, kind)
);
COMMENT ON TABLE pgbell.preferences IS 'Per recipient and kind: mute, or a minimum priority (NULL inherits pgbell.global_preferences.min_priority). urgent is always delivered.';

CREATE TABLE pgbell.notifications (
    id          bigserial PRIMARY KEY,
    -- The application's user id, as text ('42', a UUID, ...); no foreign
    -- key: the users live in the application's own tables.
    user_id     text COLLATE "C" NOT NULL CHECK (length(user_id) BETWEEN 1 AND 255),
    kind        text NOT NULL,
    title       text NOT NULL,
    body        text NOT NULL DEFAULT '',
    priority    pgbell.priority NOT NULL DEFAULT 'normal',
    action_url  text,
    data        jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    read_at     timestamptz,
    archived_at timestamptz,
    -- The writing transaction: the servers' commit-safe cursor (ids are not
    -- commit order, see docs/architecture.md).
    xid         xid8 NOT NULL DEFAULT pg_current_xact_id(),
    -- Oldest transaction still running when the row was written: any row
    -- with a lower id that commits later has an xid >= this, which is how
    -- a resume with ?since=<id> finds it.
    horizon     xid8 NOT NULL DEFAULT pg_snapshot_xmin(pg_current_snapshot())
);
CREATE INDEX notifications_user_idx ON pgbell.notifications (user_id, id DESC);
CREATE INDEX notifications_unread_idx ON pgbell.notifications (user_id, id DESC)
    WHERE read_at IS NULL AND archived_at IS NULL;
CREATE INDEX notifications_xid_idx ON pgbell.notifications (xid);
COMMENT ON TABLE pgbell.notifications IS 'One row per recipient. Written by pgbell.notify() only; mark read with UPDATE ... SET read_at = now(), which every connected tab hears.';

CREATE TABLE pgbell.state_changes (
    id         bigserial PRIMARY KEY,
    user_id    text COLLATE "C" NOT NULL,
    change     text NOT NULL CHECK (change IN ('read', 'unread', 'archived', 'revoked')),
    ids        bigint[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    xid        xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX state_changes_xid_idx ON pgbell.state_changes (xid);
CREATE INDEX state_changes_created_idx ON pgbell.state_changes (created_at);
COMMENT ON TABLE pgbell.state_changes IS 'Short-lived log of read/unread/archived changes and revoked tokens, written by triggers whatever the writer; the servers turn it into frames (or close sockets) and prune it.';
