//! [`StoreError`]: what went wrong with the store, in words safe to log.
//!
//! Database error messages can quote the values of a failing row (Postgres
//! `DETAIL`, type-conversion errors), and connection errors can echo the
//! connection URL. So a driver error is reduced to its category plus the
//! SQLSTATE or the driver's own short description, never the raw message
//! of a database error.

/// Why a store operation failed. Messages carry no token, state, bound
/// value or URL.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Connection refused or lost, pool exhausted, lock or statement timeout:
    /// worth retrying, and the reason readiness should fail.
    #[error("the user token store is unavailable: {reason}")]
    Unavailable { reason: String },
    /// The database refused a statement for another reason.
    #[error("the user token store refused a statement (SQLSTATE {code})")]
    Rejected { code: String },
    /// A stored row does not decode (bad status, missing column, wrong type).
    #[error("the user token store holds a corrupt row: {what}")]
    Corrupt { what: String },
    #[error("migrating the user token store schema failed: {reason}")]
    Migration { reason: String },
    #[error(
        "the user token store URL is not valid ({reason}); expected sqlite:PATH or postgres://USER@HOST/DB"
    )]
    InvalidUrl { reason: String },
    #[error(
        "the user token store URL has an unsupported scheme; expected sqlite:PATH or postgres://USER@HOST/DB"
    )]
    UnsupportedUrl,
    #[error("invalid input to the user token store: {0}")]
    InvalidInput(&'static str),
}

/// SQLSTATE classes and codes that mean "try again later" rather than "wrong".
fn transient_sqlstate(code: &str) -> bool {
    code.starts_with("08") // connection exception
        || code.starts_with("53") // insufficient resources
        || code.starts_with("57") // operator intervention: shutdown, statement timeout
        || matches!(code, "40001" | "40P01" | "55P03") // serialization, deadlock, lock timeout
        // SQLite result codes (sqlx reports them as the code): BUSY, LOCKED and their extended forms.
        || matches!(code, "5" | "6" | "261" | "517" | "262")
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match err {
            E::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                if transient_sqlstate(&code) {
                    StoreError::Unavailable {
                        reason: format!("database busy or unreachable (code {code})"),
                    }
                } else {
                    StoreError::Rejected { code }
                }
            }
            E::Configuration(e) => StoreError::InvalidUrl {
                reason: e.to_string(),
            },
            E::ColumnDecode { index, .. } => StoreError::Corrupt {
                what: format!("column {index} does not decode"),
            },
            E::ColumnNotFound(name) => StoreError::Corrupt {
                what: format!("column {name} is missing"),
            },
            E::Decode(_) | E::RowNotFound | E::TypeNotFound { .. } => StoreError::Corrupt {
                what: "a value does not decode".into(),
            },
            // Through the same scrubbing as a migration's own error.
            E::Migrate(e) => StoreError::from(*e),
            E::PoolTimedOut => StoreError::Unavailable {
                reason: "no pooled connection became free in time".into(),
            },
            E::PoolClosed => StoreError::Unavailable {
                reason: "the connection pool is closed".into(),
            },
            E::Io(e) => StoreError::Unavailable {
                reason: format!("I/O error: {}", e.kind()),
            },
            E::Tls(_) => StoreError::Unavailable {
                reason: "TLS handshake or session failed".into(),
            },
            E::Protocol(_) => StoreError::Unavailable {
                reason: "protocol error talking to the database".into(),
            },
            E::WorkerCrashed => StoreError::Unavailable {
                reason: "the SQLite worker thread stopped".into(),
            },
            _ => StoreError::Unavailable {
                reason: "database driver error".into(),
            },
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        use sqlx::migrate::MigrateError as M;
        let reason = match err {
            // The wrapped driver error goes through the same scrubbing as any other.
            M::Execute(e) => StoreError::from(e).to_string(),
            M::ExecuteMigration(e, version) => {
                format!("migration {version}: {}", StoreError::from(e))
            }
            other => other.to_string(),
        };
        StoreError::Migration { reason }
    }
}
