//! Block production: the nonce search ([`miner`]) and the node's built-in farmer
//! ([`farmer`]), used by `--farm` and `POST /farm/blocks`.

pub mod farmer;
pub mod miner;
