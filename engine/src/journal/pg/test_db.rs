//! Test databases: each test gets a schema of its own (a random name, set as the
//! connections' `search_path`) in the database at `STEPWISE_TEST_POSTGRES_URL`, dropped when
//! the test ends, so tests run in parallel. Without the variable a test's PostgreSQL part
//! prints `SKIPPED: …` and is skipped, unless `CI` is set: then it fails (CI never passes
//! by skipping).

use super::PgStore;
use std::io::Write;

pub(crate) const URL_VAR: &str = "STEPWISE_TEST_POSTGRES_URL";

/// A fresh, empty schema; dropped with everything in it when this is.
pub(crate) struct TestSchema {
    config: postgres::Config,
    name: String,
}

impl TestSchema {
    /// A new schema, or `None` (after printing why) when no database is configured.
    pub(crate) fn create() -> Option<TestSchema> {
        let Some(url) = std::env::var_os(URL_VAR) else {
            let test = std::thread::current().name().unwrap_or("a test").to_owned();
            let message = format!("PostgreSQL tests need {URL_VAR} ({test})");
            if std::env::var_os("CI").is_some() {
                panic!("{message}; CI is set, so this is a failure");
            }
            // Straight to stderr: the harness captures eprintln!, which would hide the skip.
            let _ = writeln!(std::io::stderr(), "SKIPPED: {message}");
            return None;
        };
        let url = url.into_string().expect("a UTF-8 URL");
        let config: postgres::Config = url.parse().expect("a valid PostgreSQL URL");
        let name = format!("stepwise_test_{:016x}", rand::random::<u64>());
        let mut admin = config
            .connect(postgres::NoTls)
            .unwrap_or_else(|e| panic!("connecting to {URL_VAR}: {e}"));
        admin
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .expect("creating a test schema");
        Some(TestSchema { config, name })
    }

    /// The connection settings of this schema: its name as the `search_path`.
    pub(crate) fn config(&self) -> postgres::Config {
        let mut config = self.config.clone();
        config.options(&format!("-c search_path={}", self.name));
        config
    }

    pub(crate) fn open(&self) -> PgStore {
        PgStore::connect(self.config(), 2).expect("opening a PgStore on the test schema")
    }

    /// A plain connection to the schema, to look at or damage its rows.
    pub(crate) fn client(&self) -> postgres::Client {
        self.config()
            .connect(postgres::NoTls)
            .expect("connecting to the test schema")
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        if let Ok(mut admin) = self.config.connect(postgres::NoTls) {
            let _ = admin.batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name));
        }
    }
}
