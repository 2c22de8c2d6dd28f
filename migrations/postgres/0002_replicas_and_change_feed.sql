-- Live replicas: each one upserts its row every few seconds (database clock),
-- so replicas can split the cap on calls to Astra between them.
CREATE TABLE astra_replicas (
    holder     TEXT   NOT NULL PRIMARY KEY,
    host       TEXT   NOT NULL,
    started_at BIGINT NOT NULL,
    seen_at    BIGINT NOT NULL
);

-- Change feed for the replicas' in-process token caches: any change to what a
-- token request hands out (tokens, status, expiry, next planned refresh) or a
-- deletion notifies channel atv_astra_users with the user_ref, delivered at
-- commit. Lease bookkeeping alone does not notify.
CREATE FUNCTION atv_astra_users_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('atv_astra_users', OLD.user_ref);
    RETURN NULL;
END
$$;

CREATE TRIGGER astra_users_changed AFTER UPDATE ON astra_users FOR EACH ROW
    WHEN ((OLD.generation, OLD.status, OLD.access_expires_at, OLD.next_refresh_at)
          IS DISTINCT FROM
          (NEW.generation, NEW.status, NEW.access_expires_at, NEW.next_refresh_at))
    EXECUTE FUNCTION atv_astra_users_changed();

CREATE TRIGGER astra_users_deleted AFTER DELETE ON astra_users FOR EACH ROW
    EXECUTE FUNCTION atv_astra_users_changed();
