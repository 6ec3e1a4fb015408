//! Output files: every output URL answers a real PNG drawn from the prediction's input, the
//! same bytes for the same input, different pictures for different inputs, and 404 for a hash
//! no prediction has.

use replicate_sim::{output_hash, SimConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

/// GETs an output URL and returns its PNG bytes, checking the status and content type.
pub async fn fetch_png(http: &reqwest::Client, url: &str) -> Vec<u8> {
    let response = http.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "GET {url}");
    assert_eq!(response.headers()["content-type"], "image/png");
    response.bytes().await.unwrap().to_vec()
}

/// Width and height from a PNG's IHDR, after checking the signature and the IHDR's CRC.
pub fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(
        png[..8],
        [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A],
        "signature"
    );
    assert_eq!(png[8..12], 13u32.to_be_bytes(), "IHDR length");
    assert_eq!(&png[12..16], b"IHDR");
    let crc = u32::from_be_bytes(png[29..33].try_into().unwrap());
    assert_eq!(replicate_sim::png::crc32(&png[12..29]), crc, "IHDR CRC");
    let number = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (number(16), number(20))
}

async fn output_url(app: &TestSim, input: Value) -> String {
    let created = app.create_for_model("acme/tryon", input).await;
    let done = app
        .wait_until_finished(created["id"].as_str().unwrap())
        .await;
    assert_eq!(done["status"], "succeeded");
    done["output"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn outputs_are_pngs_that_differ_by_input_and_repeat_for_the_same_input() {
    let app = spawn_sim(SimConfig {
        default_model: behavior(0, 20),
        ..SimConfig::default()
    })
    .await;
    let shirt = json!({"garm_img": "https://g/shirt.jpg", "garment_des": "blue oxford shirt"});
    let jacket = json!({"garm_img": "https://g/jacket.jpg", "garment_des": "denim jacket"});
    let shirt_url = output_url(&app, shirt.clone()).await;
    let jacket_url = output_url(&app, jacket).await;
    assert_ne!(shirt_url, jacket_url);

    let shirt_png = fetch_png(&app.http, &shirt_url).await;
    let jacket_png = fetch_png(&app.http, &jacket_url).await;
    assert_eq!(png_size(&shirt_png), (320, 400));
    assert_eq!(png_size(&jacket_png), (320, 400));
    assert_ne!(
        shirt_png, jacket_png,
        "different inputs, different pictures"
    );
    // The PLTE chunk (right after IHDR) holds the background colour, drawn from the hash.
    assert_ne!(shirt_png[33..53], jacket_png[33..53], "different colours");

    let again = output_url(&app, shirt).await;
    assert_eq!(again, shirt_url);
    assert_eq!(
        fetch_png(&app.http, &again).await,
        shirt_png,
        "the same bytes"
    );
}

#[tokio::test]
async fn a_hash_no_prediction_has_is_not_found() {
    let app = spawn_sim(SimConfig::default()).await;
    let unknown = output_hash("acme/tryon", &json!({"never": "created"}));
    for path in [
        format!("/files/{unknown}/out-0.png"),
        "/files/not-a-hash/out-0.png".to_string(),
    ] {
        let response = app.http.get(app.url(&path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    // Known as soon as the prediction is created (its output URL is fixed by its input).
    let input = json!({"prompt": "soon"});
    app.create_for_model("acme/tryon", input.clone()).await;
    let hash = output_hash("acme/tryon", &input);
    let url = app.url(&format!("/files/{hash}/out-0.png"));
    png_size(&fetch_png(&app.http, &url).await);
}
