-- Per-user Astra tokens. Tokens are AES-256-GCM ciphertexts (nonce || ct || tag)
-- with the id of the key that sealed them; times are unix seconds.
-- user_ref sorts bytewise (COLLATE "C") so keyset pagination matches SQLite's order.

CREATE TABLE astra_users (
    user_ref                TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    status                  TEXT    NOT NULL CHECK (status IN ('active', 'reauthorization_required')),
    -- Bumped on every token change; 1 after the first authorization.
    generation              BIGINT  NOT NULL CHECK (generation >= 1),
    access_key_id           TEXT    NOT NULL,
    access_token            BYTEA   NOT NULL,
    access_expires_at       BIGINT  NOT NULL,
    refresh_key_id          TEXT    NOT NULL,
    refresh_token           BYTEA   NOT NULL,
    refresh_issued_at       BIGINT  NOT NULL,
    refresh_expires_at      BIGINT  NOT NULL,
    -- The refresh token that was current before the last refresh (still valid at Astra).
    prev_refresh_key_id     TEXT,
    prev_refresh_token      BYTEA,
    prev_refresh_expires_at BIGINT,
    next_refresh_at         BIGINT  NOT NULL,
    last_refresh_at         BIGINT,
    last_astra_request_id   TEXT,
    -- A short machine-readable code, never a token or a response body.
    last_error              TEXT,
    -- Fencing counter: bumped whenever a lease is granted, ended or invalidated.
    lease_epoch             BIGINT  NOT NULL DEFAULT 0,
    lease_holder            TEXT,
    lease_expires_at        BIGINT,
    created_at              BIGINT  NOT NULL,
    -- Last change to tokens or status (lease bookkeeping does not count).
    updated_at              BIGINT  NOT NULL,
    CHECK ((prev_refresh_token IS NULL) = (prev_refresh_key_id IS NULL)
       AND (prev_refresh_token IS NULL) = (prev_refresh_expires_at IS NULL))
);

CREATE INDEX astra_users_status_user_ref ON astra_users (status, user_ref);
CREATE INDEX astra_users_due ON astra_users (next_refresh_at) WHERE status = 'active';
CREATE INDEX astra_users_refresh_expires ON astra_users (refresh_expires_at);
CREATE INDEX astra_users_access_key ON astra_users (access_key_id);
CREATE INDEX astra_users_refresh_key ON astra_users (refresh_key_id);
CREATE INDEX astra_users_prev_refresh_key ON astra_users (prev_refresh_key_id)
    WHERE prev_refresh_key_id IS NOT NULL;

-- Pending authorizations, keyed by the SHA-256 hex of the OAuth `state`
-- (the raw state is a bearer secret until used, so it is never stored).
CREATE TABLE astra_authorization_states (
    state_hash     TEXT    NOT NULL PRIMARY KEY CHECK (length(state_hash) = 64),
    user_ref       TEXT    NOT NULL,
    user_intent_id TEXT,
    expires_at     BIGINT  NOT NULL,
    created_at     BIGINT  NOT NULL
);

CREATE INDEX astra_authorization_states_expires ON astra_authorization_states (expires_at);
CREATE INDEX astra_authorization_states_user ON astra_authorization_states (user_ref);
