//! Crashes in the middle of a parallel stage: `kill -9` with branches running and others not
//! yet created, and an abort right after a branch's create call, before its prediction id
//! reaches the journal. After a restart on the same data dir the task succeeds and the
//! simulator holds exactly one prediction per step.

use super::*;

/// Whether a prediction (as the simulator shows it) has finished.
fn terminal(prediction: &Value) -> bool {
    ["succeeded", "failed", "canceled"].contains(&prediction["status"].as_str().unwrap_or(""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_parallel_stage_creates_no_branch_twice() {
    let env = Env::start_with(Load::Light, 100, lookbook_models(1500)).await;
    let config = pipeline_config(&env);
    let mut app = env.spawn(&config);
    // At most two branches at once: at the kill, some run and some are not created yet.
    let id = app.start_ok(&lookbook_body("narrow", "kill", 4, 300)).await;
    let variants_at_kill = eventually("a branch running", WITHIN, || {
        let variants = predictions_of(&env.sim, "test/variant");
        let running = variants.iter().any(|p| !terminal(p));
        async move { running.then_some(variants.len()) }
    })
    .await;
    app.kill9();
    assert!(
        variants_at_kill < 4,
        "killed before every branch was created"
    );

    let app = env.spawn(&config);
    let task = app.wait_until_finished(&id, WITHIN).await;
    assert_one_prediction_per_step(&env.sim, &task);
    assert_eq!(predictions_of(&env.sim, "test/variant").len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_between_a_branch_create_and_its_journal_write_creates_no_branch_twice() {
    let env = Env::start_with(Load::Light, 100, lookbook_models(1500)).await;
    let config = pipeline_config(&env);
    // Creates 1 to 4 are the cutout and the three try-ons; 5 to 7 the three branches, sent
    // at once: the process aborts as the second branch's create answers.
    let mut app = env.spawn_with_env(&config, &[("STEPWISE_FAULT_CRASH_AFTER_CREATE", "6")]);
    let id = app
        .start_ok(&lookbook_body("lookbook", "abort", 3, 400))
        .await;
    let status = app.wait_for_exit(WITHIN).await;
    assert!(!status.success(), "the fault hook aborts the process");
    let variants = predictions_of(&env.sim, "test/variant").len();
    assert!(
        (2..=3).contains(&variants),
        "the abort came in the parallel stage: {variants} branches created"
    );

    let app = env.spawn(&config);
    let task = app.wait_until_finished(&id, WITHIN).await;
    assert_one_prediction_per_step(&env.sim, &task);
    let adopted = app
        .log()
        .lines()
        .filter(|l| l.contains("Prediction created.") && l.contains("found=true"))
        .count();
    assert!(
        adopted >= 1,
        "the restart found the branch created before the abort ({adopted})"
    );
}
