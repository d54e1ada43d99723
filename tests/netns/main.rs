//! Multi-host tests: real `cairn node` processes, one per Linux network namespace, on one
//! bridged LAN with real multicast. They need root and iproute2 (CI has both; `scripts/setup.sh`
//! installs the tools) and are skipped with a printed reason elsewhere. Every wait has a
//! deadline; namespaces and processes are removed even when a test fails.

mod harness;
mod mdns;
