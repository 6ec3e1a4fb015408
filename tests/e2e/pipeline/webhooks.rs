//! Pipelines driven by Replicate's webhooks: the simulator's own deliveries (duplicated,
//! delayed, reordered, some dropped and sent again) move chained and parallel steps on, with
//! the safety poll ten minutes away.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_drive_every_step_of_a_pipeline_parallel_branches_included() {
    let env = Env::start_with(Load::Light, 150, |config| config.webhook_retry_scale = 0.1).await;
    env.sim.set_faults(replicate_sim::Faults {
        webhook_duplicate_rate: 0.5,
        webhook_delay_ms: (0, 30),
        webhook_reorder: true,
        webhook_drop_rate: 0.2,
        ..Default::default()
    });
    let config = format!(
        "{}{}",
        crate::webhooks::self_webhook_config(&env),
        lookbook_toml("lookbook", 4)
    );
    let app = env.spawn(&config);
    let mut ids = vec![];
    for i in 0..3 {
        let body = lookbook_body("lookbook", &format!("hook{i}"), 3, 10 * i);
        ids.push(app.start_ok(&body).await);
    }
    let mut steps = 0;
    for id in &ids {
        // A step past `starting` is checked again only by the ten-minute safety poll: only
        // the `completed` deliveries can finish these tasks in time.
        let task = app.wait_until_finished(id, WITHIN).await;
        assert_eq!(task["status"], "succeeded", "{task:#}");
        for step in task["steps"].as_array().unwrap() {
            let prediction = env
                .sim
                .prediction(step["prediction_id"].as_str().unwrap())
                .expect("the step's prediction");
            assert_eq!(prediction["input"], step["input"]);
            assert_eq!(prediction["output"], step["output"]);
            steps += 1;
        }
    }
    assert_eq!(steps, 3 * 8);
    let duplicated: Vec<_> = predictions_per_call(&env.sim)
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .collect();
    assert!(duplicated.is_empty(), "paid twice: {duplicated:#?}");
    assert_eq!(
        env.sim.create_calls() as usize,
        steps,
        "one create per step"
    );
    let stats = env.sim.stats();
    assert!(stats.webhooks_delivered >= steps as u64, "{stats:?}");
}
