//! Black-box tests: the real `stepwise` binary against the simulated Replicate.

mod support;

mod api;
mod cli;
mod control;
mod crash;
mod dashboard;
mod faults;
mod frontend;
mod http_fuzz;
mod journal_failure;
mod live;
mod outputs;
mod restart_backlog;
mod retention;
mod simulate_restart;
mod webhooks;
