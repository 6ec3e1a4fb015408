//! A fixed-size pool of synchronous PostgreSQL connections for `PgStore`: a commit and the
//! reads of other threads each take their own connection instead of queueing behind one.
//! A connection the server closed is dropped on return and reopened on the next checkout.
//! Nothing else: no SQL here beyond the session settings every connection gets.

use super::super::StoreError;
use postgres::{Client, Config, NoTls};
use std::sync::{Condvar, Mutex};

/// Set on every new connection. `synchronous_commit` is the default, set anyway because a
/// commit must be on disk when it returns (`Store::commit`), whatever the server's default.
const SESSION_SETUP: &str = "SET synchronous_commit = on";

pub(super) struct Pool {
    config: Config,
    size: usize,
    /// Idle connections, and how many are open in all (idle or checked out).
    state: Mutex<(Vec<Client>, usize)>,
    /// Signalled when a connection goes back idle or closes, for a checkout waiting at `size`.
    returned: Condvar,
}

/// A checked-out connection; it goes back to the pool when dropped.
pub(super) struct Conn<'a> {
    pool: &'a Pool,
    client: Option<Client>,
}

impl Pool {
    pub(super) fn new(config: Config, size: usize) -> Self {
        Pool {
            config,
            size: size.max(1),
            state: Mutex::new((Vec::new(), 0)),
            returned: Condvar::new(),
        }
    }

    /// An idle connection, or a new one while fewer than `size` are open, or else the first
    /// one returned.
    pub(super) fn get(&self) -> Result<Conn<'_>, StoreError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            while let Some(client) = state.0.pop() {
                if !client.is_closed() {
                    return Ok(Conn {
                        pool: self,
                        client: Some(client),
                    });
                }
                state.1 -= 1;
            }
            if state.1 < self.size {
                state.1 += 1;
                drop(state);
                return match self.connect() {
                    Ok(client) => Ok(Conn {
                        pool: self,
                        client: Some(client),
                    }),
                    Err(e) => {
                        self.closed();
                        Err(e)
                    }
                };
            }
            state = self.returned.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn connect(&self) -> Result<Client, StoreError> {
        let mut client = self
            .config
            .connect(NoTls)
            .map_err(|e| StoreError::io("connecting to PostgreSQL", e))?;
        client
            .batch_execute(SESSION_SETUP)
            .map_err(|e| StoreError::io("setting up a PostgreSQL session", e))?;
        Ok(client)
    }

    fn closed(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.1 -= 1;
        self.returned.notify_one();
    }
}

impl std::ops::Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("present until dropped")
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("present until dropped")
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        if client.is_closed() {
            return self.pool.closed();
        }
        let mut state = self.pool.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0.push(client);
        self.pool.returned.notify_one();
    }
}
