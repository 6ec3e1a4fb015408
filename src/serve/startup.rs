//! What `stepwise serve` claims and checks before it opens the journal, in this order: the
//! listen port, the Replicate token, the data dir's lock. Each refusal is one line naming what
//! is wrong, so a second server, a busy port or a bad token never touch a task.

use anyhow::anyhow;
use fs2::FileExt;
use std::fs::File;
use std::path::Path;
use std::time::Duration;
use stepwise_engine::config::ReplicateConfig;
use stepwise_engine::replicate::{ClientError, ReplicateClient};

/// How long the token check may take before the start goes on without it.
const TOKEN_CHECK_WITHIN: Duration = Duration::from_secs(5);

/// The lock file inside the data dir, held for as long as the server runs.
const LOCK_FILE: &str = "stepwise.lock";

/// Binds the API's port: the first thing a server claims, so a busy port fails before
/// anything else happens.
pub async fn listen(address: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::AddrInUse => anyhow!("cannot listen on {address}: address in use"),
            _ => anyhow!("cannot listen on {address}: {error}"),
        })
}

/// Asks Replicate who the token belongs to. A token Replicate rejects (401) stops the start;
/// any other failure (unreachable, 5xx, slow) is a warning: Replicate may be having a bad
/// minute, and the engine retries its calls anyway.
pub async fn check_token(config: &ReplicateConfig) -> anyhow::Result<()> {
    let client = ReplicateClient::new(config)?;
    match tokio::time::timeout(TOKEN_CHECK_WITHIN, client.account()).await {
        Ok(Ok(account)) => {
            tracing::info!(username = %account.username, kind = %account.kind, "Replicate token accepted.");
        }
        Ok(Err(ClientError::Final { status: 401, .. })) => {
            return Err(anyhow!(
                "Replicate rejected the API token (401 from {}/v1/account): check \
                 REPLICATE_API_TOKEN (https://replicate.com/account/api-tokens)",
                config.api_base.trim_end_matches('/')
            ));
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "Could not check the Replicate API token; starting anyway.");
        }
        Err(_) => {
            tracing::warn!(
                within = ?TOKEN_CHECK_WITHIN,
                "Replicate did not answer the token check in time; starting anyway."
            );
        }
    }
    Ok(())
}

/// An exclusive lock on the data dir, released when dropped or when the process dies.
///
/// It fails at once rather than waiting: the kernel releases the lock when its holder exits,
/// even on `kill -9`, so a held lock always means a live process, and waiting would only
/// delay the same refusal. (sled's own lock, taken after this one, still waits briefly for a
/// previous `Db` of the same process to let go: `open_locked` in the engine.)
pub struct DataDirLock {
    _file: File,
}

/// Why [`DataDirLock::try_take`] got no lock.
pub enum LockError {
    /// A live process holds the data dir.
    InUse,
    Io(std::io::Error),
}

impl DataDirLock {
    /// Creates the data dir if needed and locks it.
    pub fn take(dir: &Path) -> anyhow::Result<DataDirLock> {
        let cannot =
            |error: std::io::Error| anyhow!("cannot use the data dir {}: {error}", dir.display());
        std::fs::create_dir_all(dir).map_err(cannot)?;
        DataDirLock::try_take(dir).map_err(|error| match error {
            LockError::InUse => anyhow!(
                "the data dir {} is in use by another stepwise process",
                dir.display()
            ),
            LockError::Io(error) => cannot(error),
        })
    }

    /// Locks an existing data dir, without waiting.
    pub fn try_take(dir: &Path) -> Result<DataDirLock, LockError> {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(LockError::Io)?;
        match file.try_lock_exclusive() {
            Ok(()) => Ok(DataDirLock { _file: file }),
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => Err(LockError::InUse),
            Err(error) => Err(LockError::Io(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_dir_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let data = dir.path().join("data");
        let first = DataDirLock::take(&data).expect("the first lock");
        let error = DataDirLock::take(&data).err().expect("the dir is locked");
        assert_eq!(
            error.to_string(),
            format!(
                "the data dir {} is in use by another stepwise process",
                data.display()
            )
        );
        drop(first);
        DataDirLock::take(&data).expect("free again");
    }

    #[tokio::test]
    async fn a_busy_port_is_one_line_naming_the_address() {
        let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = taken.local_addr().unwrap().to_string();
        let error = listen(&address).await.expect_err("the port is taken");
        assert_eq!(
            error.to_string(),
            format!("cannot listen on {address}: address in use")
        );
    }
}
