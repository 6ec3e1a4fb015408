//! Black-box tests of the simulator over real HTTP: each test starts its own simulator on a
//! port-0 listener and talks to it with reqwest, as a Replicate client would.

mod errors;
mod faults;
mod files;
mod helpers;
mod lifecycle;
mod listing;
mod persistence;
mod receiver;
mod retention;
mod sync;
mod throttling;
mod webhooks;
