//! The fake's in-memory model of Astra's authorization lifecycle, free of
//! HTTP so its rules can be read (and tested) on their own:
//!
//! - a code is single use and expires after `code_lifetime`;
//! - every grant mints a new access token and a new refresh token, and the
//!   user's previous access token stops working at once (one valid at a time);
//! - refresh tokens are not consumed by use: each stays valid until its own
//!   expiry (or until a test revokes it).
//!
//! Time is the real monotonic clock plus an offset that tests can advance, so
//! expiry is exercised without waiting hours.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::{FakeAstraFault, SeededTokens};

/// Tokens minted by a successful grant.
pub(super) struct Minted {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: Duration,
}

/// A grant the fake refuses; Astra answers all of these with a bare 400.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Refused;

struct Code {
    user: String,
    expires_at: Instant,
    used: bool,
    /// The PKCE `code_challenge` (S256) the authorization request carried.
    challenge: Option<String>,
}

struct Grant {
    user: String,
    expires_at: Instant,
}

pub(super) struct Lifetimes {
    pub access: Duration,
    pub refresh: Duration,
    pub code: Duration,
}

pub(super) struct Store {
    lifetimes: Lifetimes,
    clock_offset: Duration,
    pub fault: FakeAstraFault,
    pub latency: Duration,
    serial: u64,
    intents: HashMap<String, String>,
    codes: HashMap<String, Code>,
    refresh_tokens: HashMap<String, Grant>,
    /// Only each user's current access token is kept, so "is it here" is
    /// "is it the one valid token".
    access_tokens: HashMap<String, Grant>,
    current_access: HashMap<String, String>,
    pub token_requests: u64,
    /// Arrival times of the token requests of the last second (real clock:
    /// it measures callers' pacing, not token lifetimes).
    recent_token_requests: VecDeque<Instant>,
    /// The most token requests that arrived within any one second.
    pub token_requests_peak_1s: u64,
    pub code_exchanges: u64,
    pub refreshes: u64,
    pub refreshes_by_user: BTreeMap<String, u64>,
    pub seeded_users: u64,
}

impl Store {
    pub fn new(lifetimes: Lifetimes, latency: Duration) -> Self {
        Self {
            lifetimes,
            clock_offset: Duration::ZERO,
            fault: FakeAstraFault::None,
            latency,
            serial: 0,
            intents: HashMap::new(),
            codes: HashMap::new(),
            refresh_tokens: HashMap::new(),
            access_tokens: HashMap::new(),
            current_access: HashMap::new(),
            token_requests: 0,
            recent_token_requests: VecDeque::new(),
            token_requests_peak_1s: 0,
            code_exchanges: 0,
            refreshes: 0,
            refreshes_by_user: BTreeMap::new(),
            seeded_users: 0,
        }
    }

    /// Counts one token request arriving at `at`, and the busiest second
    /// so far: a sliding window, so a burst straddling two clock seconds
    /// is seen whole.
    pub fn record_token_request(&mut self, at: Instant) {
        self.token_requests += 1;
        self.recent_token_requests.push_back(at);
        while self
            .recent_token_requests
            .front()
            .is_some_and(|first| at.duration_since(*first) >= Duration::from_secs(1))
        {
            self.recent_token_requests.pop_front();
        }
        let in_window = self.recent_token_requests.len() as u64;
        self.token_requests_peak_1s = self.token_requests_peak_1s.max(in_window);
    }

    /// Starts a new peak measurement (a drill phase), from nothing.
    pub fn reset_peak(&mut self) {
        self.recent_token_requests.clear();
        self.token_requests_peak_1s = 0;
    }

    fn now(&self) -> Instant {
        Instant::now() + self.clock_offset
    }

    pub fn advance_clock(&mut self, by: Duration) {
        self.clock_offset = self.clock_offset.saturating_add(by);
    }

    /// Opaque, distinct per issue: the serial guarantees uniqueness, the
    /// random part keeps tokens unguessable-looking like real ones.
    fn opaque(&mut self, prefix: &str) -> String {
        self.serial += 1;
        format!(
            "{prefix}_{:016x}{:016x}{:x}",
            fastrand::u64(..),
            fastrand::u64(..),
            self.serial
        )
    }

    /// A fresh fake user id.
    pub fn new_user(&mut self) -> String {
        self.opaque("user")
    }

    /// The user a user intent stands for, created on first sight so repeated
    /// authorizations of one intent land on one user.
    pub fn user_for_intent(&mut self, intent: &str) -> String {
        if let Some(user) = self.intents.get(intent) {
            return user.clone();
        }
        let user = self.new_user();
        self.intents.insert(intent.to_owned(), user.clone());
        user
    }

    pub fn mint_code(&mut self, user: &str) -> String {
        self.mint_code_for(user, None)
    }

    /// A code bound to a PKCE S256 `challenge` when one is given (RFC 7636).
    pub fn mint_code_for(&mut self, user: &str, challenge: Option<&str>) -> String {
        let code = self.opaque("code");
        let expires_at = self.now() + self.lifetimes.code;
        self.codes.insert(
            code.clone(),
            Code {
                user: user.to_owned(),
                expires_at,
                used: false,
                challenge: challenge.map(str::to_owned),
            },
        );
        code
    }

    /// Redeems `code`; a code bound to a PKCE challenge needs the
    /// `verifier` that hashes to it. A refused attempt uses the code up, as
    /// OAuth servers do when a code is presented wrongly.
    pub fn exchange_code(&mut self, code: &str, verifier: Option<&str>) -> Result<Minted, Refused> {
        let now = self.now();
        let entry = self.codes.get_mut(code).ok_or(Refused)?;
        if entry.used || now >= entry.expires_at {
            return Err(Refused);
        }
        if let Some(challenge) = &entry.challenge
            && verifier.map(s256) != Some(challenge.clone())
        {
            entry.used = true;
            return Err(Refused);
        }
        entry.used = true;
        let user = entry.user.clone();
        self.code_exchanges += 1;
        Ok(self.mint_tokens(&user))
    }

    pub fn refresh(&mut self, refresh_token: &str) -> Result<Minted, Refused> {
        let now = self.now();
        let grant = self.refresh_tokens.get(refresh_token).ok_or(Refused)?;
        if now >= grant.expires_at {
            return Err(Refused);
        }
        let user = grant.user.clone();
        self.refreshes += 1;
        *self.refreshes_by_user.entry(user.clone()).or_default() += 1;
        Ok(self.mint_tokens(&user))
    }

    /// Gives every user a new access token, killing the current one, without
    /// counting a refresh: someone else's refresh, as far as the service can tell.
    pub fn replace_access_tokens(&mut self) {
        let users: Vec<String> = self.current_access.keys().cloned().collect();
        for user in users {
            let access_token = self.opaque("at");
            let expires_at = self.now() + self.lifetimes.access;
            if let Some(previous) = self
                .current_access
                .insert(user.clone(), access_token.clone())
            {
                self.access_tokens.remove(&previous);
            }
            self.access_tokens
                .insert(access_token, Grant { user, expires_at });
        }
    }

    fn mint_tokens(&mut self, user: &str) -> Minted {
        let now = self.now();
        let access_token = self.opaque("at");
        let refresh_token = self.opaque("rt");
        if let Some(previous) = self
            .current_access
            .insert(user.to_owned(), access_token.clone())
        {
            self.access_tokens.remove(&previous);
        }
        self.access_tokens.insert(
            access_token.clone(),
            Grant {
                user: user.to_owned(),
                expires_at: now + self.lifetimes.access,
            },
        );
        self.refresh_tokens.insert(
            refresh_token.clone(),
            Grant {
                user: user.to_owned(),
                expires_at: now + self.lifetimes.refresh,
            },
        );
        Minted {
            access_token,
            refresh_token,
            expires_in: self.lifetimes.access,
        }
    }

    /// The user whose current, unexpired access token this is.
    pub fn user_for_access_token(&self, token: &str) -> Option<&str> {
        let grant = self.access_tokens.get(token)?;
        (self.now() < grant.expires_at).then_some(grant.user.as_str())
    }

    pub fn current_access_token(&self, user: &str) -> Option<String> {
        self.current_access.get(user).cloned()
    }

    /// Makes `user` known as if authorized through its own user intent
    /// (same name), holding exactly `tokens`: the access token freshly
    /// issued, the refresh token issued `refresh_issued_ago` before now.
    /// Like any grant it replaces the user's access token and leaves older
    /// refresh tokens valid.
    pub fn seed_user(&mut self, user: &str, tokens: SeededTokens, refresh_issued_ago: Duration) {
        let now = self.now();
        self.intents.insert(user.to_owned(), user.to_owned());
        if let Some(previous) = self
            .current_access
            .insert(user.to_owned(), tokens.access_token.clone())
        {
            self.access_tokens.remove(&previous);
        }
        self.access_tokens.insert(
            tokens.access_token,
            Grant {
                user: user.to_owned(),
                expires_at: now + self.lifetimes.access,
            },
        );
        // Issued longer ago than it lives: already expired, as Astra would see it.
        let refresh_left = self.lifetimes.refresh.saturating_sub(refresh_issued_ago);
        self.refresh_tokens.insert(
            tokens.refresh_token,
            Grant {
                user: user.to_owned(),
                expires_at: now + refresh_left,
            },
        );
        self.seeded_users += 1;
    }

    pub fn revoke_refresh_tokens(&mut self, user: &str) {
        self.refresh_tokens.retain(|_, grant| grant.user != user);
    }
}

/// `BASE64URL(SHA-256(verifier))`, the S256 method of RFC 7636.
pub fn s256(verifier: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        Store::new(
            Lifetimes {
                access: Duration::from_secs(7200),
                refresh: Duration::from_secs(864_000),
                code: Duration::from_secs(300),
            },
            Duration::ZERO,
        )
    }

    #[test]
    fn codes_are_single_use_and_expire() {
        let mut s = store();
        let code = s.mint_code("u1");
        assert!(s.exchange_code(&code, None).is_ok());
        assert_eq!(s.exchange_code(&code, None).err(), Some(Refused));

        let late = s.mint_code("u1");
        s.advance_clock(Duration::from_secs(301));
        assert_eq!(s.exchange_code(&late, None).err(), Some(Refused));
        assert_eq!(s.code_exchanges, 1);
    }

    #[test]
    fn each_grant_replaces_the_access_token_but_keeps_old_refresh_tokens() {
        let mut s = store();
        let code = s.mint_code("u1");
        let first = s.exchange_code(&code, None).expect("code");
        let second = s.refresh(&first.refresh_token).expect("refresh");
        assert_ne!(first.access_token, second.access_token);
        assert_ne!(first.refresh_token, second.refresh_token);
        assert_eq!(s.user_for_access_token(&first.access_token), None);
        assert_eq!(s.user_for_access_token(&second.access_token), Some("u1"));
        assert!(s.refresh(&first.refresh_token).is_ok());

        s.advance_clock(Duration::from_secs(864_001));
        assert_eq!(s.refresh(&second.refresh_token).err(), Some(Refused));
    }

    #[test]
    fn seeded_users_hold_exactly_their_tokens() {
        let mut s = store();
        let tokens = super::super::seeded_tokens("n1", "u7");
        s.seed_user("u7", tokens.clone(), Duration::from_secs(8 * 86_400));
        assert_eq!(s.user_for_access_token(&tokens.access_token), Some("u7"));
        assert_eq!(s.user_for_intent("u7"), "u7");
        let next = s
            .refresh(&tokens.refresh_token)
            .expect("seeded refresh token");
        assert_eq!(s.user_for_access_token(&tokens.access_token), None);
        assert_eq!(s.refreshes_by_user.get("u7"), Some(&1));

        // Eight days old: two days left, then refused like any other.
        s.advance_clock(Duration::from_secs(2 * 86_400 + 1));
        assert_eq!(s.refresh(&tokens.refresh_token).err(), Some(Refused));
        assert!(s.refresh(&next.refresh_token).is_ok());
    }

    #[test]
    fn the_peak_counts_the_busiest_sliding_second() {
        let mut s = store();
        let t0 = Instant::now();
        for ms in [0, 400, 900, 1300, 1350, 1400, 2500] {
            s.record_token_request(t0 + Duration::from_millis(ms));
        }
        // 900, 1300, 1350, 1400 fall within one second; no clock second holds four.
        assert_eq!(s.token_requests_peak_1s, 4);
        assert_eq!(s.token_requests, 7);
        s.reset_peak();
        s.record_token_request(t0 + Duration::from_millis(2600));
        assert_eq!(s.token_requests_peak_1s, 1);
    }

    #[test]
    fn revoking_refuses_every_refresh_token_of_that_user_only() {
        let mut s = store();
        let a = s.mint_code("a");
        let b = s.mint_code("b");
        let a = s.exchange_code(&a, None).expect("a");
        let b = s.exchange_code(&b, None).expect("b");
        s.revoke_refresh_tokens("a");
        assert_eq!(s.refresh(&a.refresh_token).err(), Some(Refused));
        assert!(s.refresh(&b.refresh_token).is_ok());
    }

    #[test]
    fn a_code_bound_to_a_pkce_challenge_needs_its_verifier() {
        let mut s = store();
        let verifier = "a-verifier-of-forty-three-characters-0123456";
        let code = s.mint_code_for("u1", Some(&s256(verifier)));
        assert_eq!(s.exchange_code(&code, None).err(), Some(Refused));
        assert_eq!(
            s.exchange_code(&code, Some(verifier)).err(),
            Some(Refused),
            "used up"
        );
        let code = s.mint_code_for("u1", Some(&s256(verifier)));
        assert_eq!(
            s.exchange_code(&code, Some("another-verifier")).err(),
            Some(Refused)
        );
        let code = s.mint_code_for("u1", Some(&s256(verifier)));
        assert!(s.exchange_code(&code, Some(verifier)).is_ok());
    }
}
