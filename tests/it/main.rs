//! Integration tests: one binary (`tests/it`), a module per area. Nodes run in-process on
//! port 0, or as real `cairn` processes where a test must kill one; every wait has a deadline.

mod admission;
mod cli;
mod crash;
mod devnet;
mod events;
mod explorer;
mod farm;
mod hostile;
mod intake;
mod p2p;
mod relay;
mod restart;
mod rpc;
mod support;
mod sync;
