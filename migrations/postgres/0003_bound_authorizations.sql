-- Authorizations bound to the person who started them. The callback no
-- longer activates tokens: it keeps them here, sealed like active ones, under
-- the SHA-256 hex of a one-time handle that the customer's backend confirms
-- for the user_ref of its logged-in user. Unconfirmed results expire and are
-- purged with the expired states.
CREATE TABLE astra_pending_authorizations (
    handle_hash        TEXT    NOT NULL PRIMARY KEY CHECK (length(handle_hash) = 64),
    user_ref           TEXT    NOT NULL,
    access_key_id      TEXT    NOT NULL,
    access_token       BYTEA   NOT NULL,
    access_expires_at  BIGINT  NOT NULL,
    refresh_key_id     TEXT    NOT NULL,
    refresh_token      BYTEA   NOT NULL,
    refresh_issued_at  BIGINT  NOT NULL,
    refresh_expires_at BIGINT  NOT NULL,
    next_refresh_at    BIGINT  NOT NULL,
    astra_request_id   TEXT,
    expires_at         BIGINT  NOT NULL,
    created_at         BIGINT  NOT NULL
);

CREATE INDEX astra_pending_authorizations_expires ON astra_pending_authorizations (expires_at);
CREATE INDEX astra_pending_authorizations_user ON astra_pending_authorizations (user_ref);

