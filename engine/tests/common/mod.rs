//! Shared setup of the engine's black-box tests: a simulator on loopback.

/// A simulator whose every prediction spends `starting_ms` starting and `processing_ms`
/// processing; with its API token.
pub async fn simulator(starting_ms: u64, processing_ms: u64) -> (replicate_sim::SimHandle, String) {
    let config = replicate_sim::SimConfig {
        default_model: replicate_sim::ModelBehavior {
            starting_ms,
            processing_ms,
            ..Default::default()
        },
        ..Default::default()
    };
    let token = config.token.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let sim = replicate_sim::start(config, listener)
        .await
        .expect("the simulator starts");
    (sim, token)
}
