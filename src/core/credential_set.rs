//! The two Astrada credential sets, and a value kept for each of them.

super::named_enum! {
    /// The two credential sets every Astrada customer receives; named in
    /// lower case in configuration keys, logs and metric labels.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum CredentialSet {
        /// Full backend access; its tokens never leave the internal listener.
        Api = "api",
        /// Card enrollment only; its tokens are handed to browsers.
        Sdk = "sdk",
    }
}

/// One `T` per credential set. The only place that matches on the set to pick
/// a value, so adding a per-set value never means another `match`.
#[derive(Debug, Clone, Default)]
pub struct PerSet<T> {
    pub api: T,
    pub sdk: T,
}

impl<T> PerSet<T> {
    /// Builds both values from the set they belong to.
    pub fn from_fn(mut f: impl FnMut(CredentialSet) -> T) -> Self {
        Self {
            api: f(CredentialSet::Api),
            sdk: f(CredentialSet::Sdk),
        }
    }

    /// Like [`PerSet::from_fn`] for constructors that can fail.
    pub fn try_from_fn<E>(mut f: impl FnMut(CredentialSet) -> Result<T, E>) -> Result<Self, E> {
        Ok(Self {
            api: f(CredentialSet::Api)?,
            sdk: f(CredentialSet::Sdk)?,
        })
    }

    /// The value for `set`.
    pub fn get(&self, set: CredentialSet) -> &T {
        match set {
            CredentialSet::Api => &self.api,
            CredentialSet::Sdk => &self.sdk,
        }
    }

    /// Both values with their set, in [`CredentialSet::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (CredentialSet, &T)> {
        CredentialSet::ALL
            .into_iter()
            .map(|set| (set, self.get(set)))
    }
}
