//! Reading a stored row back, for either backend (see `sql.rs`).

/// Defines `decode_user` (a row of `astra_users` as a [`super::UserRow`],
/// refusing rows that break the schema's rules), `sealed` and `lease_from`
/// for the backend `$db`.
macro_rules! user_row_decoding {
    ($db:ty) => {
        /// A sealed token from its key id and ciphertext columns.
        fn sealed(
            r: &<$db as sqlx::Database>::Row,
            key_id: &str,
            blob: &str,
        ) -> Result<Sealed, StoreError> {
            use sqlx::Row;
            Ok(Sealed {
                key_id: r.try_get(key_id)?,
                blob: r.try_get(blob)?,
            })
        }

        fn decode_user(r: &<$db as sqlx::Database>::Row) -> Result<UserRow, StoreError> {
            use sqlx::Row;
            let corrupt = |what: &str| StoreError::Corrupt { what: what.into() };
            let user_ref: String = r.try_get("user_ref")?;
            let user_ref = UserRef::try_from(user_ref)
                .map_err(|_| corrupt("user_ref is not a valid user reference"))?;
            let status: String = r.try_get("status")?;
            let status = status
                .parse()
                .map_err(|_| corrupt("status is not a known status"))?;
            let previous_refresh = match (
                r.try_get::<Option<String>, _>("prev_refresh_key_id")?,
                r.try_get::<Option<Vec<u8>>, _>("prev_refresh_token")?,
                r.try_get::<Option<i64>, _>("prev_refresh_expires_at")?,
            ) {
                (Some(key_id), Some(blob), Some(expires_at)) => Some(PreviousRefresh {
                    token: Sealed { key_id, blob },
                    expires_at,
                }),
                (None, None, None) => None,
                _ => return Err(corrupt("previous refresh token columns are partly null")),
            };
            Ok(UserRow {
                user_ref,
                status,
                generation: r.try_get("generation")?,
                access_token: sealed(r, "access_key_id", "access_token")?,
                access_expires_at: r.try_get("access_expires_at")?,
                refresh_token: sealed(r, "refresh_key_id", "refresh_token")?,
                refresh_issued_at: r.try_get("refresh_issued_at")?,
                refresh_expires_at: r.try_get("refresh_expires_at")?,
                previous_refresh,
                next_refresh_at: r.try_get("next_refresh_at")?,
                last_refresh_at: r.try_get("last_refresh_at")?,
                last_astra_request_id: r.try_get("last_astra_request_id")?,
                last_error: r.try_get("last_error")?,
                lease_epoch: r.try_get("lease_epoch")?,
                lease_holder: r.try_get("lease_holder")?,
                lease_expires_at: r.try_get("lease_expires_at")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        }

        /// The lease a just-updated row grants to `holder`.
        fn lease_from(row: &UserRow, holder: &str) -> Result<Lease, StoreError> {
            let expires_at = row.lease_expires_at.ok_or_else(|| StoreError::Corrupt {
                what: "a granted lease has no expiry".into(),
            })?;
            Ok(Lease {
                user_ref: row.user_ref.clone(),
                epoch: row.lease_epoch,
                holder: holder.to_owned(),
                expires_at,
            })
        }
    };
}
