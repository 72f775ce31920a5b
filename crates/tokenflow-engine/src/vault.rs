//! The token vault (docs/connectors.md): grants kept encrypted in the store under a name, and handed out as
//! valid access tokens — refreshed before expiry, with the rotated refresh token committed to the
//! store **before** the new access token leaves.
//!
//! Concurrency: callers for one entry in this process queue on one async mutex (single-flight),
//! re-read the entry once they hold it, and so find the token the first caller refreshed. Writes
//! are a compare-and-swap on the entry's version, so a stale writer can never overwrite a rotated
//! refresh token; across several instances the PostgreSQL backend adds a row lock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokenflow_connectors::oauth::{ConnectorStatus, OAuthConnectors, RevokeStatus, TokenOutputs};
use tokenflow_connectors::status::{VaultGetStatus, VaultStoreStatus};
use tokenflow_core::token_life::still_fresh;
use tokenflow_core::{Clock, Input, SecretString, VaultEntryState};
use tokenflow_store::{RefreshClaim, Store, VaultEntryRow};

use crate::servers::ServerDirectory;

/// What `vault_store` was given.
#[derive(Debug, Clone, Default)]
pub struct StoreInput {
    pub name: String,
    pub server_id: Option<String>,
    pub access_token: Option<SecretString>,
    pub refresh_token: Option<SecretString>,
    pub expires_in: Option<u64>,
    pub granted_scopes: Option<String>,
}

/// The vault, backed by the store.
#[derive(Debug)]
pub struct StoreVault {
    store: Arc<dyn Store>,
    oauth: OAuthConnectors,
    servers: Arc<dyn ServerDirectory>,
    clock: Arc<dyn Clock>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// This vault's name in refresh leases (one per process).
    owner: String,
}

/// When [`StoreVault::token`] refreshes an entry whose access token has not expired.
#[derive(Clone, Copy)]
enum Force<'a> {
    No,
    /// Keep-alive.
    Always,
    /// While the entry still holds this token (an API refused it).
    IfStill(&'a SecretString),
}

/// The outcome of trying to become the one refresher of an entry.
enum Fenced {
    /// This vault holds the lease; the entry as it is now still needs a refresh. `Interrupted`
    /// when the lease was taken over from a refresher that never finished.
    Refresh(VaultEntryRow, Interrupted),
    /// Somebody else refreshed (or an error): here is the answer.
    Done(TokenOutputs<VaultGetStatus>),
}

/// Whether an earlier refresh of the entry was interrupted (its lease expired unreleased): a
/// refresh token it sent may have been rotated at the provider and the answer lost with it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Interrupted(bool);

/// How long a refresh lease lasts; a refresher that dies is replaced after this.
const LEASE: time::Duration = time::Duration::seconds(30);

/// The last refresh outcome of an entry whose refresh token was refused after an earlier refresh
/// never finished (docs/operations.md, "What happens when …").
pub const INTERRUPTED_OUTCOME: &str = "invalid_grant_after_interrupted_refresh";

/// What deleting a vault entry did to its grant at the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// The revocation endpoint accepted the refresh token (RFC 7009 §2.2).
    Revoked,
    /// The entry held no refresh token: nothing to revoke.
    NoRefreshToken,
    /// The server has no revocation endpoint (configured or discovered), or is gone.
    NoEndpoint,
    /// The revocation failed (the provider's error, or a connection problem); the entry is
    /// deleted all the same.
    Failed(String),
}

/// `vault_store`'s outcome.
#[derive(Debug, Clone)]
pub struct StoreOutcome {
    pub status: VaultStoreStatus,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

impl StoreVault {
    pub fn new(
        store: Arc<dyn Store>,
        oauth: OAuthConnectors,
        servers: Arc<dyn ServerDirectory>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            oauth,
            servers,
            clock,
            locks: Mutex::new(HashMap::new()),
            owner: uuid::Uuid::now_v7().to_string(),
        }
    }

    fn lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        match self.locks.lock() {
            Ok(mut locks) => {
                locks.retain(|_, lock| Arc::strong_count(lock) > 1);
                locks.entry(name.to_owned()).or_default().clone()
            }
            Err(_) => Arc::default(),
        }
    }

    /// `vault_store`: a fresh grant replaces the entry (state `ok`).
    pub async fn store_tokens(&self, input: StoreInput) -> StoreOutcome {
        let fail = |status, error: &str, description: String| StoreOutcome {
            status,
            error: Some(error.to_owned()),
            error_description: Some(description),
        };
        let server_id = input.server_id.clone().unwrap_or_default();
        if self.servers.get(&server_id).is_none() {
            return fail(
                VaultStoreStatus::NoServer,
                "no_configuration",
                format!("OAuth server `{server_id}` is not configured"),
            );
        }
        let has_token = |t: &Option<SecretString>| t.as_ref().is_some_and(|t| !t.is_empty());
        if input.name.trim().is_empty()
            || !(has_token(&input.access_token) || has_token(&input.refresh_token))
        {
            return fail(
                VaultStoreStatus::InputMissing,
                "input_missing",
                "`name` and an access or refresh token are required".to_owned(),
            );
        }
        let now = self.clock.now();
        let entry = VaultEntryRow {
            name: input.name.trim().to_owned(),
            server_id,
            access_token: input.access_token.filter(|t| !t.is_empty()),
            refresh_token: input.refresh_token.filter(|t| !t.is_empty()),
            expires_at: input
                .expires_in
                .map(|secs| now + time::Duration::seconds(i64::try_from(secs).unwrap_or(0))),
            granted_scopes: input.granted_scopes,
            state: VaultEntryState::Ok,
            last_refresh_at: None,
            last_refresh_outcome: None,
            version: 0,
            updated_at: now,
        };
        let lock = self.lock(&entry.name);
        let _guard = lock.lock().await;
        match self.store.put_vault_entry(&entry).await {
            Ok(_) => StoreOutcome {
                status: VaultStoreStatus::Successful,
                error: None,
                error_description: None,
            },
            Err(err) => fail(VaultStoreStatus::Unknown, "store_error", err.to_string()),
        }
    }

    /// Deletes the entry `name` after revoking its refresh token at its server's revocation
    /// endpoint (RFC 7009; configured or discovered), so the grant dies with the entry. The entry
    /// is deleted whatever the revocation's outcome. `Ok(None)`: no such entry.
    pub async fn delete_entry(
        &self,
        name: &str,
    ) -> Result<Option<Revocation>, tokenflow_store::StoreError> {
        let lock = self.lock(name);
        let _guard = lock.lock().await;
        let Some(entry) = self.store.get_vault_entry(name).await? else {
            return Ok(None);
        };
        let revocation = match &entry.refresh_token {
            None => Revocation::NoRefreshToken,
            Some(token) => {
                let server = self.servers.get(&entry.server_id);
                let out = self
                    .oauth
                    .revoke_token(
                        &entry.server_id,
                        server.as_ref(),
                        &Input::Assigned(token.clone()),
                        &Input::Assigned("refresh_token".to_owned()),
                    )
                    .await;
                match out.status {
                    RevokeStatus::Successful => Revocation::Revoked,
                    RevokeStatus::NoEndpoint => Revocation::NoEndpoint,
                    RevokeStatus::Unknown | RevokeStatus::InputMissing => Revocation::Failed(
                        [out.error, out.error_description]
                            .into_iter()
                            .flatten()
                            .collect::<Vec<_>>()
                            .join(": "),
                    ),
                }
            }
        };
        if self.store.delete_vault_entry(name).await? {
            Ok(Some(revocation))
        } else {
            Ok(None)
        }
    }

    /// `vault_get_token`: a valid access token for `name`, refreshing when needed.
    pub async fn get_token(&self, name: &str) -> TokenOutputs<VaultGetStatus> {
        self.token(name, Force::No).await
    }

    /// A new access token for `name` after an API refused `rejected` (HTTP 401; docs/connectors.md,
    /// "Authentication"): refreshes even before expiry, but only while the entry still holds
    /// `rejected`. Concurrent callers that saw the same token refused queue on the entry's lock
    /// like `get_token`, and all but the first find the token it refreshed: one refresh for all.
    pub async fn refresh_rejected(
        &self,
        name: &str,
        rejected: &SecretString,
    ) -> TokenOutputs<VaultGetStatus> {
        self.token(name, Force::IfStill(rejected)).await
    }

    /// The OAuth server of entry `name` (for its `reauth_on_status`), if the entry exists.
    pub async fn server_of(&self, name: &str) -> Option<String> {
        match self.store.get_vault_entry(name).await {
            Ok(Some(entry)) => Some(entry.server_id),
            _ => None,
        }
    }

    /// Keep-alive: refreshes every `ok` entry whose server has `vault_keep_alive` and whose last
    /// refresh (or store) is older than that, so idle refresh tokens do not lapse. Outcomes are
    /// recorded on the entries (visible in the UI and `/api/vault`). Returns how many it refreshed.
    pub async fn keep_alive_once(&self) -> usize {
        let Ok(entries) = self.store.list_vault_entries().await else {
            return 0;
        };
        let now = self.clock.now();
        let mut refreshed = 0;
        for entry in entries {
            let Some(every) = self
                .servers
                .get(&entry.server_id)
                .and_then(|s| s.vault_keep_alive)
            else {
                continue;
            };
            let every = time::Duration::try_from(every).unwrap_or(time::Duration::hours(12));
            let last = entry.last_refresh_at.unwrap_or(entry.updated_at);
            if entry.state != VaultEntryState::Ok
                || entry.refresh_token.is_none()
                || last + every > now
            {
                continue;
            }
            let out = self.token(&entry.name, Force::Always).await;
            tracing::info!(entry = %entry.name, status_code = out.status.code(), "vault keep-alive refresh");
            if out.status.is_success() {
                refreshed += 1;
            }
        }
        refreshed
    }

    async fn token(&self, name: &str, force: Force<'_>) -> TokenOutputs<VaultGetStatus> {
        use VaultGetStatus as S;
        let lock = self.lock(name);
        let _guard = lock.lock().await;
        let entry = match self.store.get_vault_entry(name).await {
            Ok(Some(entry)) => entry,
            Ok(None) => {
                return TokenOutputs::failure(
                    S::NoEntry,
                    "no_entry",
                    format!("the vault has no entry `{name}`"),
                );
            }
            Err(err) => return TokenOutputs::failure(S::Unknown, "store_error", err.to_string()),
        };
        if entry.state == VaultEntryState::NeedsLogin {
            return TokenOutputs::failure(
                S::GrantGone,
                "needs_login",
                format!("the grant of `{name}` is gone: a person must sign in again"),
            );
        }
        let Some(server) = self.servers.get(&entry.server_id) else {
            return TokenOutputs::failure(
                S::NoServer,
                "no_configuration",
                format!("OAuth server `{}` is not configured", entry.server_id),
            );
        };
        let now = self.clock.now();
        let skew =
            time::Duration::try_from(server.token_cache_skew).unwrap_or(time::Duration::minutes(1));
        let valid_until = |at: Option<time::OffsetDateTime>| at.is_none_or(|at| at > now);
        let force = match force {
            Force::No => false,
            Force::Always => true,
            Force::IfStill(rejected) => entry.access_token.as_ref() == Some(rejected),
        };
        if !force
            && let Some(token) = &entry.access_token
            && entry
                .expires_at
                .is_none_or(|at| still_fresh(now, skew, entry.updated_at, at))
        {
            return issued(token.clone(), entry.expires_at, now, Vec::new());
        }
        if entry.refresh_token.is_none() {
            if let Some(token) = entry
                .access_token
                .clone()
                .filter(|_| valid_until(entry.expires_at))
            {
                return issued(token, entry.expires_at, now, Vec::new());
            }
            return self
                .grant_gone(
                    entry,
                    now,
                    "invalid_grant",
                    "no refresh token and the access token expired",
                )
                .await;
        }

        let (entry, interrupted) = match self.fence(name, &entry, skew).await {
            Fenced::Done(outputs) => return outputs,
            Fenced::Refresh(latest, interrupted) => (latest, interrupted),
        };
        let outputs = self.refresh(name, entry, &server, now, interrupted).await;
        let _ = self.store.release_vault_refresh(name, &self.owner).await;
        outputs
    }

    /// Becomes the one refresher of `name` across instances (a lease in the store), or waits for
    /// the instance that is, and serves its result.
    async fn fence(&self, name: &str, entry: &VaultEntryRow, skew: time::Duration) -> Fenced {
        use VaultGetStatus as S;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(35);
        loop {
            let now = self.clock.now();
            match self
                .store
                .claim_vault_refresh(name, &self.owner, now + LEASE, now)
                .await
            {
                Err(err) => {
                    return Fenced::Done(TokenOutputs::failure(
                        S::Unknown,
                        "store_error",
                        err.to_string(),
                    ));
                }
                Ok(claim) if claim.is_held() => {
                    let interrupted = Interrupted(claim == RefreshClaim::TakenOver);
                    if interrupted.0 {
                        tracing::warn!(
                            entry = name,
                            "an earlier refresh of the vault entry never finished (its lease expired); refreshing again"
                        );
                    }
                    // Another instance may have refreshed between our read and our claim.
                    return match self.store.get_vault_entry(name).await {
                        Ok(Some(latest)) if latest.version == entry.version => {
                            Fenced::Refresh(latest, interrupted)
                        }
                        Ok(latest) => {
                            let _ = self.store.release_vault_refresh(name, &self.owner).await;
                            Fenced::Done(self.serve(name, latest, skew))
                        }
                        Err(err) => {
                            let _ = self.store.release_vault_refresh(name, &self.owner).await;
                            Fenced::Done(TokenOutputs::failure(
                                S::Unknown,
                                "store_error",
                                err.to_string(),
                            ))
                        }
                    };
                }
                Ok(_) => {}
            }
            if std::time::Instant::now() >= deadline {
                return Fenced::Done(TokenOutputs::failure(
                    S::Unknown,
                    "refresh_timeout",
                    format!("another instance holds the refresh of `{name}` for too long"),
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            if let Ok(latest) = self.store.get_vault_entry(name).await
                && latest
                    .as_ref()
                    .is_none_or(|latest| latest.version != entry.version)
            {
                return Fenced::Done(self.serve(name, latest, skew));
            }
        }
    }

    /// The answer from an entry somebody else just refreshed.
    fn serve(
        &self,
        name: &str,
        latest: Option<VaultEntryRow>,
        _skew: time::Duration,
    ) -> TokenOutputs<VaultGetStatus> {
        use VaultGetStatus as S;
        let now = self.clock.now();
        match latest {
            None => TokenOutputs::failure(
                S::NoEntry,
                "no_entry",
                format!("the vault has no entry `{name}`"),
            ),
            Some(latest) if latest.state == VaultEntryState::NeedsLogin => TokenOutputs::failure(
                S::GrantGone,
                "needs_login",
                format!("the grant of `{name}` is gone: a person must sign in again"),
            ),
            Some(latest) => match latest.access_token {
                Some(token) if latest.expires_at.is_none_or(|at| at > now) => {
                    issued(token, latest.expires_at, now, Vec::new())
                }
                _ => TokenOutputs::failure(
                    S::Unknown,
                    "refresh_failed",
                    format!(
                        "the refresh of `{name}` by another instance did not yield a valid token"
                    ),
                ),
            },
        }
    }

    /// Refreshes `entry` (this vault holds its lease) and commits the result before returning it.
    async fn refresh(
        &self,
        name: &str,
        entry: VaultEntryRow,
        server: &tokenflow_core::OAuthServer,
        now: time::OffsetDateTime,
        interrupted: Interrupted,
    ) -> TokenOutputs<VaultGetStatus> {
        use VaultGetStatus as S;
        let valid_until = |at: Option<time::OffsetDateTime>| at.is_none_or(|at| at > now);
        let Some(refresh_token) = entry.refresh_token.clone() else {
            return TokenOutputs::failure(
                S::Unknown,
                "no_refresh_token",
                "the entry has no refresh token".to_owned(),
            );
        };
        let out = self
            .oauth
            .refresh_token(
                &entry.server_id,
                Some(server),
                &Input::Assigned(refresh_token),
            )
            .await;
        if out.status.is_success() {
            let mut updated = entry.clone();
            updated.access_token = out.access_token.clone();
            // The rotated refresh token, or the same one when the provider does not rotate.
            updated.refresh_token = out.refresh_token.clone().or(entry.refresh_token.clone());
            updated.expires_at = out
                .expires_in
                .map(|secs| now + time::Duration::seconds(i64::try_from(secs).unwrap_or(0)));
            updated.granted_scopes = out.granted_scopes.clone().or(entry.granted_scopes.clone());
            updated.last_refresh_at = Some(now);
            updated.last_refresh_outcome = Some("ok".to_owned());
            updated.updated_at = now;
            // Committed before the token is handed out: a crash after this line loses nothing.
            match self.store.update_vault_entry(&updated, entry.version).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::error!(
                        entry = name,
                        "the vault entry changed during a refresh; the refreshed grant was not stored"
                    );
                    return TokenOutputs::failure(
                        S::Unknown,
                        "conflict",
                        "the vault entry changed during the refresh".to_owned(),
                    );
                }
                Err(err) => {
                    return TokenOutputs::failure(S::Unknown, "store_error", err.to_string());
                }
            }
            tracing::info!(entry = name, server = %entry.server_id, "vault entry refreshed");
            let Some(token) = updated.access_token else {
                return TokenOutputs::failure(
                    S::Unknown,
                    "invalid_response",
                    "the refresh returned no access token".to_owned(),
                );
            };
            let mut outputs = issued(
                token,
                updated.expires_at,
                now,
                out.warnings
                    .iter()
                    .map(|w| format!("{}: {}", w.code, w.message))
                    .collect(),
            );
            outputs.token_type = out.token_type;
            return outputs;
        }
        if out.error.as_deref() == Some("invalid_grant") {
            let provider_said = out.error_description.as_deref().unwrap_or("invalid_grant");
            let mut gone = match interrupted {
                // The provider most likely rotated the refresh token in the refresh that was
                // interrupted, and the new one was lost with it (docs/operations.md).
                Interrupted(true) => {
                    self.grant_gone(
                        entry,
                        now,
                        INTERRUPTED_OUTCOME,
                        &format!(
                            "{provider_said}; an earlier refresh never finished, so the provider probably rotated the refresh token and the new one was lost"
                        ),
                    )
                    .await
                }
                Interrupted(false) => {
                    self.grant_gone(entry, now, "invalid_grant", provider_said)
                        .await
                }
            };
            // E.g. `error_missing`: the provider said so without an error code.
            gone.warnings = out.warnings;
            return gone;
        }
        // Another failure (network, 5xx): record it, and keep serving a token that still works.
        let outcome = out.error.clone().unwrap_or_else(|| "error".to_owned());
        let mut recorded = entry.clone();
        recorded.last_refresh_at = Some(now);
        recorded.last_refresh_outcome = Some(outcome.clone());
        recorded.updated_at = now;
        let _ = self
            .store
            .update_vault_entry(&recorded, entry.version)
            .await;
        if let Some(token) = entry
            .access_token
            .clone()
            .filter(|_| valid_until(entry.expires_at))
        {
            return issued(
                token,
                entry.expires_at,
                now,
                vec![format!(
                    "refresh_failed: {outcome}; the stored access token is still valid"
                )],
            );
        }
        let mut failed = TokenOutputs::failure(
            S::Unknown,
            outcome,
            out.error_description.unwrap_or_default(),
        );
        failed.warnings = out.warnings;
        failed
    }

    /// Marks the entry `needs_login` with `outcome` as its last refresh's outcome.
    async fn grant_gone(
        &self,
        entry: VaultEntryRow,
        now: time::OffsetDateTime,
        outcome: &str,
        why: &str,
    ) -> TokenOutputs<VaultGetStatus> {
        let mut gone = entry.clone();
        gone.state = VaultEntryState::NeedsLogin;
        gone.last_refresh_at = Some(now);
        gone.last_refresh_outcome = Some(outcome.to_owned());
        gone.updated_at = now;
        let _ = self.store.update_vault_entry(&gone, entry.version).await;
        tracing::warn!(entry = %entry.name, outcome, "vault grant is gone; the entry needs a new sign-in");
        TokenOutputs::failure(
            VaultGetStatus::GrantGone,
            "invalid_grant",
            format!(
                "the grant of `{}` is gone ({why}): a person must sign in again",
                entry.name
            ),
        )
    }
}

fn issued(
    token: SecretString,
    expires_at: Option<time::OffsetDateTime>,
    now: time::OffsetDateTime,
    warnings: Vec<String>,
) -> TokenOutputs<VaultGetStatus> {
    let mut outputs = TokenOutputs::with_status(VaultGetStatus::Successful);
    outputs.access_token = Some(token);
    outputs.token_type = Some("Bearer".to_owned());
    outputs.expires_in =
        expires_at.and_then(|at| u64::try_from((at - now).whole_seconds().max(0)).ok());
    outputs.warnings = warnings
        .into_iter()
        .map(|text| tokenflow_connectors::oauth::Warning {
            code: "vault",
            message: text,
        })
        .collect();
    outputs
}
