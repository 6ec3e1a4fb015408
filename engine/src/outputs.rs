//! Keeping output files: finding the URLs in a prediction's output, downloading each (with a
//! size limit) into `<data>/files/<task>/<step>/<name>` durably (write, fsync, rename, fsync
//! the directory), and the output with those URLs replaced by the kept copies' URLs.

use crate::model::TaskId;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where kept files live and how clients reach them.
#[derive(Clone)]
pub struct Keeper {
    pub dir: PathBuf,
    pub public_base: String,
    pub max_file_bytes: u64,
    http: reqwest::Client,
}

/// Why a download should be tried again later.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Transient(pub String);

impl Keeper {
    pub fn new(
        dir: PathBuf,
        public_base: &str,
        max_file_bytes: u64,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .build()?;
        Ok(Keeper {
            dir,
            public_base: public_base.trim_end_matches('/').to_owned(),
            max_file_bytes,
            http,
        })
    }

    /// The folder of one step's files.
    pub fn step_dir(&self, task: &TaskId, step: u32) -> PathBuf {
        self.dir.join(task.to_string()).join(step.to_string())
    }

    /// The path of a kept file, if `name` is one this keeper could have written.
    pub fn file_path(&self, task: &TaskId, step: u32, name: &str) -> Option<PathBuf> {
        (safe_name(name) == name).then(|| self.step_dir(task, step).join(name))
    }

    /// Downloads every file `output` links to; returns `output` with the URLs of the files
    /// kept replaced. A file that is gone (4xx) or too large keeps its original URL.
    pub async fn keep(&self, task: &TaskId, step: u32, output: &Value) -> Result<Value, Transient> {
        let mut urls = vec![];
        collect_urls(output, &mut urls);
        let dir = self.step_dir(task, step);
        let mut kept = std::collections::HashMap::new();
        for (i, url) in urls.iter().enumerate() {
            let name = file_name(url, i);
            if let Some(bytes) = self.download(url).await? {
                let path = dir.join(&name);
                let written =
                    tokio::task::spawn_blocking(move || write_durably(&path, &bytes)).await;
                written
                    .map_err(|e| Transient(e.to_string()))?
                    .map_err(|e| Transient(format!("writing {name}: {e}")))?;
                kept.insert(
                    url.clone(),
                    format!("{}/v1/files/{task}/{step}/{name}", self.public_base),
                );
            }
        }
        Ok(replace_urls(output, &kept))
    }

    async fn download(&self, url: &str) -> Result<Option<Vec<u8>>, Transient> {
        let mut response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| Transient(format!("{url}: {e}")))?;
        let status = response.status();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(Transient(format!("{url}: HTTP {status}")));
        }
        if !status.is_success() {
            tracing::warn!(%url, %status, "Output file not kept: the server refused it.");
            return Ok(None);
        }
        let mut bytes = vec![];
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| Transient(format!("{url}: {e}")))?
        {
            if (bytes.len() + chunk.len()) as u64 > self.max_file_bytes {
                tracing::warn!(%url, max = self.max_file_bytes, "Output file not kept: too large.");
                return Ok(None);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Some(bytes))
    }
}

/// Every http(s) URL among the strings of `value`, once each, in order.
pub fn collect_urls(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s)
            if (s.starts_with("https://") || s.starts_with("http://")) && !out.contains(s) =>
        {
            out.push(s.clone())
        }
        Value::Array(items) => items.iter().for_each(|v| collect_urls(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_urls(v, out)),
        _ => {}
    }
}

fn replace_urls(value: &Value, kept: &std::collections::HashMap<String, String>) -> Value {
    match value {
        Value::String(s) => kept
            .get(s)
            .map_or_else(|| value.clone(), |url| Value::String(url.clone())),
        Value::Array(items) => Value::Array(items.iter().map(|v| replace_urls(v, kept)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), replace_urls(v, kept)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A file name from the URL's last path segment, made safe; `file-<i>` when there is none.
/// The index prefix keeps two outputs with the same name apart.
fn file_name(url: &str, index: usize) -> String {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let last = path.rsplit('/').next().unwrap_or("");
    let safe = safe_name(last);
    if safe.is_empty() {
        format!("{index}-file")
    } else {
        format!("{index}-{safe}")
    }
}

fn safe_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(100)
        .collect();
    cleaned.trim_start_matches('.').to_owned()
}

fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("no parent directory"))?;
    std::fs::create_dir_all(dir)?;
    let temp = path.with_extension("partial");
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_are_found_anywhere_and_replaced_in_place() {
        let output = json!({"images": ["https://a/x.png", "https://a/y.png?sig=1"], "meta": {"u": "http://b/z"}, "n": 3, "t": "not a url"});
        let mut urls = vec![];
        collect_urls(&output, &mut urls);
        assert_eq!(
            urls,
            vec!["https://a/x.png", "https://a/y.png?sig=1", "http://b/z"]
        );
        let kept = [("https://a/x.png".to_owned(), "K1".to_owned())]
            .into_iter()
            .collect();
        assert_eq!(
            replace_urls(&output, &kept)["images"],
            json!(["K1", "https://a/y.png?sig=1"])
        );
    }

    #[test]
    fn file_names_are_safe_and_distinct() {
        assert_eq!(
            file_name("https://r.delivery/abc/out-0.png?x=1", 0),
            "0-out-0.png"
        );
        assert_eq!(file_name("https://r/../../etc/passwd", 1), "1-passwd");
        assert_eq!(file_name("https://r/", 2), "2-file");
        assert_eq!(file_name("https://r/..%2f..", 3), "3-2f..");
        assert_eq!(safe_name("../x"), "x");
    }
}
