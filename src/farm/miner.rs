//! The nonce search: vary a header's nonce until its BLAKE3 hash meets the target.

use std::sync::atomic::{AtomicBool, Ordering};

use cairn_chain::{Hash, Header};

/// How many nonces a thread tries between looks at the stop flag.
const CHECK_EVERY: u64 = 4096;

/// Searches nonces on `threads` threads (thread `i` tries `i, i + threads, …`) until one
/// meets the header's target or `stop` is set. Blocking: run it on `spawn_blocking` or a
/// thread of its own.
pub fn mine(header: &Header, threads: usize, stop: &AtomicBool) -> Option<Header> {
    let threads = threads.max(1) as u64;
    let found = AtomicBool::new(false);
    if threads == 1 {
        // No thread to spawn (a spawn and join cost more than a devnet block's whole search).
        return search(header, header.nonce, 1, stop, &found);
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let found = &found;
                s.spawn(move || search(header, header.nonce.wrapping_add(i), threads, stop, found))
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok().flatten()).next()
    })
}

/// Tries the `count` nonces from the header's on the calling thread: enough to find a block
/// at once on an easy target (a devnet's needs ~16 hashes), cheap enough (~0.1 µs a hash) to
/// run before handing a hard one to [`mine`]'s threads.
pub fn try_nonces(header: &Header, count: u64) -> Option<Header> {
    let mut bytes = header.encode();
    let target = header.target;
    (0..count).map(|i| header.nonce.wrapping_add(i)).find_map(|nonce| {
        bytes[Header::NONCE_OFFSET..Header::NONCE_OFFSET + 8].copy_from_slice(&nonce.to_le_bytes());
        target.is_met_by(&Hash(*blake3::hash(&bytes).as_bytes())).then(|| Header { nonce, ..header.clone() })
    })
}

fn search(header: &Header, start: u64, step: u64, stop: &AtomicBool, found: &AtomicBool) -> Option<Header> {
    let mut bytes = header.encode();
    let target = header.target;
    let mut nonce = start;
    loop {
        for _ in 0..CHECK_EVERY {
            bytes[Header::NONCE_OFFSET..Header::NONCE_OFFSET + 8].copy_from_slice(&nonce.to_le_bytes());
            if target.is_met_by(&Hash(*blake3::hash(&bytes).as_bytes())) {
                found.store(true, Ordering::Relaxed);
                return Some(Header { nonce, ..header.clone() });
            }
            nonce = nonce.wrapping_add(step);
        }
        if stop.load(Ordering::Relaxed) || found.load(Ordering::Relaxed) {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_chain::ChainSpec;

    #[test]
    fn mined_header_meets_target() {
        let mut h = ChainSpec::devnet().genesis().header;
        h.height = 1;
        let stop = AtomicBool::new(false);
        let found = mine(&h, 2, &stop).unwrap();
        assert!(found.target.is_met_by(&found.hash()));
        assert_eq!(Header { nonce: h.nonce, ..found.clone() }, h);
        let one = mine(&h, 1, &stop).unwrap();
        assert!(one.target.is_met_by(&one.hash()));
    }

    #[test]
    fn quick_try_finds_the_first_nonce_that_meets_the_target_or_none() {
        let mut h = ChainSpec::devnet().genesis().header;
        h.height = 1;
        let first = (0..).find(|n| h.target.is_met_by(&Header { nonce: *n, ..h.clone() }.hash())).unwrap();
        assert_eq!(try_nonces(&h, first + 1).map(|f| f.nonce), Some(first));
        assert_eq!(try_nonces(&h, first), None, "only the nonces asked for are tried");
        let stop = AtomicBool::new(false);
        assert_eq!(mine(&h, 1, &stop).map(|f| f.nonce), Some(first), "the quick try and the search agree");
    }
}
