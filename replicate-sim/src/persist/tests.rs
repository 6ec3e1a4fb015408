//! Unit tests of the state file: the log format, torn and corrupt files, and the writer.

use super::*;
use crate::prediction::Plan;
use serde_json::json;
use time::macros::datetime;

const SECRET: &str = "whsec_c2VjcmV0";

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        let dir =
            std::env::temp_dir().join(format!("sim-persist-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn prediction(id: &str, webhook: Option<&str>) -> StoredPrediction {
    let created_at = datetime!(2025-01-01 00:00:00.123456789 UTC);
    StoredPrediction {
        id: id.into(),
        model: "o/n".into(),
        version: "hidden".into(),
        deployment: Some("o/d".into()),
        model_key: "o/n".into(),
        input: json!({"a": [1, 2.5, "x"], "b": null}),
        created_at,
        deadline: Some(created_at + Duration::from_millis(1500)),
        webhook: webhook.map(String::from),
        webhook_events_filter: Some(vec!["completed".into()]),
        plan: Plan {
            starting: Duration::from_millis(50),
            processing: Duration::from_nanos(200_000_001),
            failure: Some("boom".into()),
            output: OutputShape::UrlList,
        },
        canceled_at: None,
    }
}

fn header() -> Vec<u8> {
    let line = Line::Header {
        format: FORMAT.into(),
        addr: Some("127.0.0.1:4567".parse().expect("an address")),
        webhook_secret: SECRET.into(),
    };
    to_line(&line)
}

fn log(lines: &[Vec<u8>]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| l.iter().copied().chain([b'\n']))
        .collect()
}

fn created(p: &StoredPrediction) -> Vec<u8> {
    to_line(&Line::Created(Box::new(Record::new(p, false))))
}

/// The fields that matter, compared through their Debug text (no PartialEq on the store type).
fn same(a: &StoredPrediction, b: &StoredPrediction) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

#[test]
fn every_field_round_trips_and_changes_apply_in_order() {
    let p = prediction("p1", Some("http://hook"));
    let canceled_at = p.created_at + Duration::from_millis(70);
    let bytes = log(&[
        header(),
        created(&p),
        created(&prediction("p2", None)),
        to_line(&Line::Canceled {
            id: "p1".into(),
            at: rfc3339(canceled_at),
        }),
        to_line(&Line::WebhookDone { id: "p2".into() }),
    ]);
    let (loaded, torn) = parse(&bytes).expect("a valid log");
    assert!(!torn);
    assert_eq!(
        loaded.addr,
        Some("127.0.0.1:4567".parse().expect("an address"))
    );
    assert_eq!(loaded.webhook_secret.as_deref(), Some(SECRET));
    assert_eq!(loaded.predictions.len(), 2);
    let mut expected = p.clone();
    expected.canceled_at = Some(canceled_at);
    assert!(
        same(&loaded.predictions[0], &expected),
        "{:?}",
        loaded.predictions[0]
    );
    assert_eq!(loaded.predictions[1].id, "p2");
    assert_eq!(loaded.webhooks_done, HashSet::from(["p2".to_string()]));
}

#[test]
fn a_torn_last_line_is_skipped() {
    let mut bytes = log(&[header(), created(&prediction("p1", None))]);
    let second = created(&prediction("p2", None));
    bytes.extend_from_slice(&second[..second.len() / 2]);
    let (loaded, torn) = parse(&bytes).expect("a log with a torn tail");
    assert!(torn);
    assert_eq!(loaded.predictions.len(), 1);
}

#[test]
fn an_empty_file_is_an_empty_state() {
    let (loaded, torn) = parse(b"").expect("empty is fine");
    assert!(loaded.predictions.is_empty() && loaded.webhook_secret.is_none() && !torn);
}

#[test]
fn corrupt_files_are_errors_that_name_the_line() {
    let p = created(&prediction("p1", None));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"garbage".to_vec(), "no complete line"),
        (b"{\"not\": \"ours\"}\n".to_vec(), "line 1"),
        (
            log(std::slice::from_ref(&p)),
            "line 1: not a replicate-sim state header",
        ),
        (
            log(&[header(), b"{\"created\": {".to_vec(), p.clone()]),
            "line 2",
        ),
        (
            log(&[header(), p.clone(), p.clone()]),
            "line 3: prediction p1 created twice",
        ),
        (log(&[header(), header()]), "line 2: a second header"),
        (
            log(&[
                header(),
                to_line(&Line::Canceled {
                    id: "x".into(),
                    at: "now".into(),
                }),
            ]),
            "line 2: cancel of unknown prediction x",
        ),
        (log(&[header().replace_format()]), "format"),
    ];
    for (bytes, expected) in cases {
        let error = parse(&bytes).expect_err("a corrupt log");
        assert!(
            error.contains(expected),
            "{error:?} should mention {expected:?}"
        );
    }
}

trait ReplaceFormat {
    fn replace_format(self) -> Vec<u8>;
}

impl ReplaceFormat for Vec<u8> {
    fn replace_format(self) -> Vec<u8> {
        String::from_utf8_lossy(&self)
            .replace(FORMAT, "replicate-sim-state/99")
            .into_bytes()
    }
}

#[test]
fn load_names_the_path_and_a_missing_file_is_empty() {
    let dir = TempDir::new("load");
    let path = dir.path().join("state.jsonl");
    assert!(load(&path).expect("missing is fine").predictions.is_empty());
    assert_eq!(previous_addr(&path), None);
    std::fs::write(&path, "not json\n").expect("written");
    let error = load(&path).expect_err("corrupt");
    assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
}

#[tokio::test]
async fn the_writer_compacts_appends_and_reads_back() {
    let dir = TempDir::new("writer");
    let path = dir.path().join("sub").join("state.jsonl");
    let addr: SocketAddr = "127.0.0.1:4567".parse().expect("an address");
    let (p1, p2) = (
        prediction("p1", Some("http://hook")),
        prediction("p2", None),
    );
    let done = HashSet::from(["p1".to_string()]);
    let persister = open(&path, addr, SECRET, std::slice::from_ref(&p1), &done).expect("opened");
    assert_eq!(previous_addr(&path), Some(addr));
    persister.created(&p2).wait().await.expect("durable");
    let at = p2.created_at + Duration::from_millis(10);
    persister.canceled("p2", at).wait().await.expect("durable");
    persister.webhook_done("p2");
    drop(persister); // Writes what is queued and joins the writer.

    let loaded = load(&path).expect("readable");
    assert_eq!(loaded.predictions.len(), 2);
    assert!(same(&loaded.predictions[0], &p1));
    assert_eq!(loaded.predictions[1].canceled_at, Some(at));
    assert_eq!(loaded.webhooks_done.len(), 2);
    let tmp_left = std::fs::read_dir(path.parent().expect("a parent"))
        .expect("listable")
        .count();
    assert_eq!(tmp_left, 1, "only the state file, no temp file left");
}
