//! The SQL both backends share, written once.
//!
//! SQLite and PostgreSQL agree on everything this store needs (`$N`
//! parameters, `ON CONFLICT … DO UPDATE`, `UPDATE … RETURNING`, partial
//! indexes) except how to read the clock, so each backend instantiates
//! [`user_store_impl!`] with its "now" expression spliced in by `concat!`.
//! One text for both keeps the fencing rules from drifting apart; the
//! backends differ only in connection setup and in `claim_due`, whose
//! statement and transaction each passes in.

/// An `UPDATE` of `astra_users` that ends the lease of user `$1` if its
/// epoch is still `$2` (the fencing rule every release shares), and also sets
/// the columns given as `"column = value, "` pieces.
macro_rules! end_lease_sql {
    ($($set:tt),* $(,)?) => {
        concat!(
            "UPDATE astra_users SET ",
            $($set,)*
            "lease_epoch = lease_epoch + 1, lease_holder = NULL, lease_expires_at = NULL ",
            "WHERE user_ref = $1 AND lease_epoch = $2"
        )
    };
}

/// Implements [`super::UserStore`] and `Debug` for `$store` (a struct with a
/// `pool: sqlx::Pool<$db>` field), where `$now` is an SQL expression for the
/// database's clock in unix seconds, and `claim_due` runs `$claim` (binding
/// holder, ttl and limit as `$1`..`$3`) in a transaction opened by `$begin`.
macro_rules! user_store_impl {
    ($store:ty, $db:ty, now = $now:literal, claim_due = ($begin:expr, $claim:expr)) => {
        user_row_decoding!($db);

        type Query<'q> = sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments>;

        // The two statements that write new tokens: each takes its own key
        // parameters first, then the tokens as bound by `bind_tokens`.

        /// A new authorization replaces everything stored for `$1`.
        const STORE_AUTHORIZATION: &str = concat!(
            "INSERT INTO astra_users (user_ref, status, generation, ",
            "access_key_id, access_token, access_expires_at, ",
            "refresh_key_id, refresh_token, refresh_issued_at, refresh_expires_at, ",
            "next_refresh_at, last_astra_request_id, lease_epoch, created_at, updated_at) ",
            "VALUES ($1, 'active', 1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, ",
            $now, ", ", $now, ") ",
            "ON CONFLICT (user_ref) DO UPDATE SET ",
            "status = 'active', generation = astra_users.generation + 1, ",
            "access_key_id = excluded.access_key_id, access_token = excluded.access_token, ",
            "access_expires_at = excluded.access_expires_at, ",
            "refresh_key_id = excluded.refresh_key_id, refresh_token = excluded.refresh_token, ",
            "refresh_issued_at = excluded.refresh_issued_at, ",
            "refresh_expires_at = excluded.refresh_expires_at, ",
            "prev_refresh_key_id = NULL, prev_refresh_token = NULL, prev_refresh_expires_at = NULL, ",
            "next_refresh_at = excluded.next_refresh_at, last_refresh_at = NULL, ",
            "last_astra_request_id = excluded.last_astra_request_id, last_error = NULL, ",
            "lease_epoch = astra_users.lease_epoch + 1, lease_holder = NULL, lease_expires_at = NULL, ",
            "updated_at = excluded.updated_at ",
            "RETURNING *"
        );

        /// Refreshed tokens for `$1`, if its lease epoch is still `$2`.
        const COMMIT_REFRESH: &str = concat!(
            "UPDATE astra_users SET ",
            "prev_refresh_key_id = refresh_key_id, prev_refresh_token = refresh_token, ",
            "prev_refresh_expires_at = refresh_expires_at, ",
            "access_key_id = $3, access_token = $4, access_expires_at = $5, ",
            "refresh_key_id = $6, refresh_token = $7, refresh_issued_at = $8, ",
            "refresh_expires_at = $9, next_refresh_at = $10, last_astra_request_id = $11, ",
            "status = 'active', generation = generation + 1, last_refresh_at = ", $now, ", ",
            "last_error = NULL, lease_epoch = lease_epoch + 1, lease_holder = NULL, ",
            "lease_expires_at = NULL, updated_at = ", $now, " ",
            "WHERE user_ref = $1 AND lease_epoch = $2 ",
            "RETURNING *"
        );

        /// Binds `tokens` as the next nine parameters, in field order: both
        /// statements above list their columns that way.
        fn bind_tokens(query: Query<'_>, tokens: NewTokens) -> Result<Query<'_>, StoreError> {
            Ok(query
                .bind(tokens.access_token.key_id)
                .bind(tokens.access_token.blob)
                .bind(tokens.access_expires_at)
                .bind(tokens.refresh_token.key_id)
                .bind(tokens.refresh_token.blob)
                .bind(tokens.refresh_issued_at)
                .bind(tokens.refresh_expires_at)
                .bind(tokens.next_refresh_at)
                .bind(tokens.astra_request_id.filter(|id| super::is_label(id))))
        }

        /// The number a `SELECT COUNT(*)` statement answers.
        async fn count(
            query: sqlx::query::QueryAs<'_, $db, (i64,), <$db as sqlx::Database>::Arguments>,
            pool: &sqlx::Pool<$db>,
        ) -> Result<u64, StoreError> {
            let (n,) = query.fetch_one(pool).await?;
            Ok(u64::try_from(n).unwrap_or(0))
        }

        impl fmt::Debug for $store {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($store)).finish_non_exhaustive()
            }
        }

        #[async_trait::async_trait]
        impl UserStore for $store {
            async fn get(&self, user: &UserRef) -> Result<Option<UserRow>, StoreError> {
                let row = sqlx::query("SELECT * FROM astra_users WHERE user_ref = $1")
                    .bind(user.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(decode_user).transpose()
            }

            async fn store_authorization(
                &self,
                user: &UserRef,
                tokens: NewTokens,
            ) -> Result<UserRow, StoreError> {
                let insert = sqlx::query(STORE_AUTHORIZATION).bind(user.as_str());
                let row = bind_tokens(insert, tokens)?.fetch_one(&self.pool).await?;
                decode_user(&row)
            }

            async fn try_lease(
                &self,
                user: &UserRef,
                holder: &str,
                ttl_secs: i64,
                only_if_generation: Option<i64>,
            ) -> Result<LeaseOutcome, StoreError> {
                super::check_lease_args(holder, ttl_secs)?;
                let granted = sqlx::query(concat!(
                    "UPDATE astra_users SET lease_epoch = lease_epoch + 1, lease_holder = $2, ",
                    "lease_expires_at = ", $now, " + $3 ",
                    "WHERE user_ref = $1 ",
                    "AND (lease_expires_at IS NULL OR lease_expires_at <= ", $now, ") ",
                    "AND ($4 IS NULL OR generation = $4) ",
                    "RETURNING *"
                ))
                .bind(user.as_str())
                .bind(holder)
                .bind(ttl_secs)
                .bind(only_if_generation)
                .fetch_optional(&self.pool)
                .await?;
                if let Some(row) = granted {
                    let row = decode_user(&row)?;
                    let lease = lease_from(&row, holder)?;
                    return Ok(LeaseOutcome::Acquired { lease, row });
                }
                // Not granted: say why. The row may have moved on since the
                // UPDATE; the answer is still a fair "not now" for the caller.
                Ok(match self.get(user).await? {
                    None => LeaseOutcome::NotFound,
                    Some(row) if only_if_generation.is_some_and(|g| g != row.generation) => {
                        LeaseOutcome::GenerationMoved { row }
                    }
                    Some(row) => LeaseOutcome::Busy { row },
                })
            }

            async fn commit_refresh(
                &self,
                lease: &Lease,
                tokens: RefreshedTokens,
            ) -> Result<CommitOutcome, StoreError> {
                let update = sqlx::query(COMMIT_REFRESH).bind(lease.user_ref.as_str()).bind(lease.epoch);
                let row = bind_tokens(update, tokens)?.fetch_optional(&self.pool).await?;
                match row {
                    Some(row) => Ok(CommitOutcome::Committed(decode_user(&row)?)),
                    None => Ok(CommitOutcome::FencedOut),
                }
            }

            async fn release_lease(
                &self,
                lease: &Lease,
                outcome: LeaseRelease<'_>,
            ) -> Result<bool, StoreError> {
                let ending = |sql| sqlx::query(sql).bind(lease.user_ref.as_str()).bind(lease.epoch);
                let query = match outcome {
                    LeaseRelease::Unused => ending(end_lease_sql!()),
                    LeaseRelease::Failed { error_code, retry_at, astra_request_id } => {
                        super::check_failure(error_code)?;
                        ending(end_lease_sql!(
                            "last_error = $3, next_refresh_at = $4, ",
                            "last_astra_request_id = COALESCE($5, last_astra_request_id), ",
                            "updated_at = ", $now, ", "
                        ))
                        .bind(error_code).bind(retry_at).bind(super::request_id(astra_request_id))
                    }
                    LeaseRelease::ReauthorizationRequired { error_code, astra_request_id } => {
                        super::check_failure(error_code)?;
                        ending(end_lease_sql!(
                            "status = 'reauthorization_required', last_error = $3, ",
                            "last_astra_request_id = COALESCE($4, last_astra_request_id), ",
                            "updated_at = ", $now, ", "
                        ))
                        .bind(error_code).bind(super::request_id(astra_request_id))
                    }
                };
                Ok(query.execute(&self.pool).await?.rows_affected() == 1)
            }

            async fn claim_due(
                &self,
                holder: &str,
                limit: u32,
                ttl_secs: i64,
            ) -> Result<Vec<(Lease, UserRow)>, StoreError> {
                super::check_lease_args(holder, ttl_secs)?;
                let mut tx = self.pool.begin_with($begin).await?;
                let rows = sqlx::query($claim)
                    .bind(holder)
                    .bind(ttl_secs)
                    .bind(super::check_limit(limit))
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                rows.iter()
                    .map(|r| {
                        let row = decode_user(r)?;
                        Ok((lease_from(&row, holder)?, row))
                    })
                    .collect()
            }

            async fn list(
                &self,
                status: Option<UserStatus>,
                after: Option<&UserRef>,
                limit: u32,
            ) -> Result<Vec<UserRow>, StoreError> {
                let rows = sqlx::query(concat!(
                    "SELECT * FROM astra_users ",
                    "WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR user_ref > $2) ",
                    "ORDER BY user_ref LIMIT $3"
                ))
                .bind(status.map(UserStatus::as_str))
                .bind(after.map(UserRef::as_str))
                .bind(super::check_limit(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(decode_user).collect()
            }

            async fn delete(&self, user: &UserRef) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin().await?;
                for sql in [
                    "DELETE FROM astra_authorization_states WHERE user_ref = $1",
                    "DELETE FROM astra_pending_authorizations WHERE user_ref = $1",
                ] {
                    sqlx::query(sql).bind(user.as_str()).execute(&mut *tx).await?;
                }
                let deleted = sqlx::query("DELETE FROM astra_users WHERE user_ref = $1")
                    .bind(user.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok(deleted == 1)
            }

            async fn count_by_status(&self) -> Result<Vec<(UserStatus, u64)>, StoreError> {
                let rows: Vec<(String, i64)> =
                    sqlx::query_as("SELECT status, COUNT(*) FROM astra_users GROUP BY status")
                        .fetch_all(&self.pool)
                        .await?;
                let mut counts: Vec<(UserStatus, u64)> =
                    UserStatus::ALL.iter().map(|s| (*s, 0)).collect();
                for (status, n) in rows {
                    let status: UserStatus = status.parse().map_err(|_| StoreError::Corrupt {
                        what: "status is not a known status".into(),
                    })?;
                    if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == status) {
                        slot.1 = u64::try_from(n).unwrap_or(0);
                    }
                }
                Ok(counts)
            }

            async fn count_refresh_expiring_before(&self, ts: i64) -> Result<u64, StoreError> {
                let query = sqlx::query_as(concat!(
                    "SELECT COUNT(*) FROM astra_users ",
                    "WHERE status = 'active' AND refresh_expires_at < $1"
                ));
                count(query.bind(ts), &self.pool).await
            }

            async fn count_rows_using_key(&self, key_id: &str) -> Result<u64, StoreError> {
                let query = sqlx::query_as(concat!(
                    "SELECT (SELECT COUNT(*) FROM astra_users ",
                    "WHERE access_key_id = $1 OR refresh_key_id = $1 OR prev_refresh_key_id = $1) ",
                    "+ (SELECT COUNT(*) FROM astra_pending_authorizations ",
                    "WHERE access_key_id = $1 OR refresh_key_id = $1) ",
                    "+ (SELECT COUNT(*) FROM astra_authorization_states WHERE verifier_key_id = $1)"
                ));
                count(query.bind(key_id), &self.pool).await
            }

            async fn put_state(
                &self,
                state_hash: &str,
                user: &UserRef,
                user_intent_id: Option<&str>,
                code_verifier: Option<&Sealed>,
                expires_at: i64,
            ) -> Result<(), StoreError> {
                super::check_state_hash(state_hash)?;
                if let Some(id) = user_intent_id {
                    super::check_label(id, "user intent id must be 1-128 characters of A-Z a-z 0-9 . _ : -")?;
                }
                sqlx::query(concat!(
                    "INSERT INTO astra_authorization_states ",
                    "(state_hash, user_ref, user_intent_id, verifier_key_id, code_verifier, expires_at, created_at) ",
                    "VALUES ($1, $2, $3, $4, $5, $6, ", $now, ")"
                ))
                .bind(state_hash)
                .bind(user.as_str())
                .bind(user_intent_id)
                .bind(code_verifier.map(|v| v.key_id.as_str()))
                .bind(code_verifier.map(|v| v.blob.as_slice()))
                .bind(expires_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn take_state(
                &self,
                state_hash: &str,
            ) -> Result<Option<PendingAuthorization>, StoreError> {
                super::check_state_hash(state_hash)?;
                type Taken = (String, Option<String>, Option<String>, Option<Vec<u8>>);
                let row: Option<Taken> = sqlx::query_as(concat!(
                    "DELETE FROM astra_authorization_states ",
                    "WHERE state_hash = $1 AND expires_at > ", $now, " ",
                    "RETURNING user_ref, user_intent_id, verifier_key_id, code_verifier"
                ))
                .bind(state_hash)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|(user_ref, user_intent_id, key_id, blob)| {
                    let user_ref = UserRef::try_from(user_ref).map_err(|_| StoreError::Corrupt {
                        what: "a pending authorization has an invalid user reference".into(),
                    })?;
                    let code_verifier = match (key_id, blob) {
                        (Some(key_id), Some(blob)) => Some(Sealed { key_id, blob }),
                        _ => None,
                    };
                    Ok(PendingAuthorization { user_ref, user_intent_id, code_verifier })
                })
                .transpose()
            }

            async fn put_unconfirmed(
                &self,
                handle_hash: &str,
                user: &UserRef,
                tokens: NewTokens,
                expires_at: i64,
            ) -> Result<(), StoreError> {
                super::check_state_hash(handle_hash)?;
                let insert = sqlx::query(concat!(
                    "INSERT INTO astra_pending_authorizations (handle_hash, user_ref, ",
                    "access_key_id, access_token, access_expires_at, ",
                    "refresh_key_id, refresh_token, refresh_issued_at, refresh_expires_at, ",
                    "next_refresh_at, astra_request_id, expires_at, created_at) ",
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, ", $now, ")"
                ))
                .bind(handle_hash)
                .bind(user.as_str());
                bind_tokens(insert, tokens)?.bind(expires_at).execute(&self.pool).await?;
                Ok(())
            }

            async fn take_unconfirmed(
                &self,
                handle_hash: &str,
            ) -> Result<Option<UnconfirmedAuthorization>, StoreError> {
                use sqlx::Row;
                super::check_state_hash(handle_hash)?;
                let row = sqlx::query(concat!(
                    "DELETE FROM astra_pending_authorizations ",
                    "WHERE handle_hash = $1 AND expires_at > ", $now, " RETURNING *"
                ))
                .bind(handle_hash)
                .fetch_optional(&self.pool)
                .await?;
                let Some(r) = row else { return Ok(None) };
                let user_ref: String = r.try_get("user_ref")?;
                let user_ref = UserRef::try_from(user_ref).map_err(|_| StoreError::Corrupt {
                    what: "unconfirmed tokens have an invalid user reference".into(),
                })?;
                let tokens = NewTokens {
                    access_token: sealed(&r, "access_key_id", "access_token")?,
                    access_expires_at: r.try_get("access_expires_at")?,
                    refresh_token: sealed(&r, "refresh_key_id", "refresh_token")?,
                    refresh_issued_at: r.try_get("refresh_issued_at")?,
                    refresh_expires_at: r.try_get("refresh_expires_at")?,
                    next_refresh_at: r.try_get("next_refresh_at")?,
                    astra_request_id: r.try_get("astra_request_id")?,
                };
                Ok(Some(UnconfirmedAuthorization { user_ref, tokens }))
            }

            async fn purge_expired_states(&self) -> Result<u64, StoreError> {
                let mut tx = self.pool.begin().await?;
                let mut purged = 0;
                for sql in [
                    concat!("DELETE FROM astra_authorization_states WHERE expires_at <= ", $now),
                    concat!("DELETE FROM astra_pending_authorizations WHERE expires_at <= ", $now),
                ] {
                    purged += sqlx::query(sql).execute(&mut *tx).await?.rows_affected();
                }
                tx.commit().await?;
                Ok(purged)
            }

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn heartbeat(
                &self,
                holder: &str,
                host: &str,
                live_secs: i64,
            ) -> Result<Vec<Replica>, StoreError> {
                super::check_label(holder, "holder must be 1-128 characters of A-Z a-z 0-9 . _ : -")?;
                super::check_label(host, "host must be 1-128 characters of A-Z a-z 0-9 . _ : -")?;
                sqlx::query(concat!(
                    "INSERT INTO astra_replicas (holder, host, started_at, seen_at) ",
                    "VALUES ($1, $2, ", $now, ", ", $now, ") ",
                    "ON CONFLICT (holder) DO UPDATE SET host = $2, seen_at = ", $now
                ))
                .bind(holder)
                .bind(host)
                .execute(&self.pool)
                .await?;
                sqlx::query(concat!(
                    "DELETE FROM astra_replicas WHERE seen_at < ", $now, " - 3600"
                ))
                .execute(&self.pool)
                .await?;
                let rows: Vec<(String, String, i64)> = sqlx::query_as(concat!(
                    "SELECT holder, host, ", $now, " - seen_at FROM astra_replicas ",
                    "WHERE seen_at >= ", $now, " - $1 ORDER BY holder"
                ))
                .bind(live_secs)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(holder, host, seen_secs_ago)| Replica { holder, host, seen_secs_ago })
                    .collect())
            }

            async fn leave(&self, holder: &str) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM astra_replicas WHERE holder = $1")
                    .bind(holder)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            fn change_feed(
                &self,
                sink: std::sync::Arc<dyn ChangeSink>,
            ) -> Option<futures::future::BoxFuture<'static, ()>> {
                self.follow_changes(sink)
            }

            fn single_host(&self) -> bool {
                Self::SINGLE_HOST
            }
        }
    };
}
