//! Operator commands: `stepwise tasks …` talks to a running server over its API;
//! `stepwise inspect` reads a stopped engine's data dir offline.

mod inspect;
mod out;
mod sse;
mod stages;
mod table;
mod tasks;
mod watch;

pub use inspect::InspectArgs;
pub use out::is_closed as stdout_closed;
pub use tasks::TasksArgs;

pub fn tasks(args: TasksArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(tasks::run(args))
}

pub fn inspect(args: InspectArgs) -> anyhow::Result<()> {
    inspect::run(args)
}
