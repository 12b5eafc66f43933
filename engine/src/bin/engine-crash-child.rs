//! Child process of the engine's crash test (`engine/tests/crash.rs`): opens
//! a log on real files with `Flush::Fsync`, appends deterministic batches
//! from several concurrent producers, and prints `ACK <tag> <base_offset>`
//! on stdout after each acknowledgment, until it is killed.
//!
//! Usage: `engine-crash-child <dir> <first_tag> <producers>`.

use std::io::Write;
use std::rc::Rc;

use bytes::BytesMut;
use engine::disk::DmaDisk;
use engine::testkit::make_batch;
use engine::{Flush, Flusher, LogConfig, PartitionLog, SystemClock};

/// Batch shape for tag `t`: shared with the test, which rebuilds the bytes.
pub fn batch_for(tag: u64) -> Vec<u8> {
    make_batch(
        tag,
        1 + (tag % 7) as usize,
        10 + (tag % 300) as usize,
        1_700_000_000_000 + tag as i64,
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(&args[1]);
    let first_tag: u64 = args[2].parse().expect("first tag");
    let producers: u64 = args[3].parse().expect("producers");
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(move || async move {
            std::fs::create_dir_all(&dir).expect("create dir");
            let disk = Rc::new(DmaDisk::new(&dir).await.expect("direct I/O"));
            let flusher = Flusher::new(Flush::Fsync);
            let config = LogConfig { segment_bytes: 256 * 1024, ..LogConfig::default() };
            let clock = Rc::new(SystemClock);
            let log = PartitionLog::open(disk, &dir, config, &flusher, clock).await.expect("open");
            let runner = flusher.clone();
            glommio::spawn_local(async move { runner.run().await }).detach();
            println!("READY {}", log.log_end_offset());
            let mut tasks = Vec::new();
            for p in 0..producers {
                let log = log.clone();
                tasks.push(glommio::spawn_local(async move {
                    let mut tag = first_tag + p;
                    loop {
                        let b = BytesMut::from(&batch_for(tag)[..]);
                        let info = log.append(b, 0).await.expect("append");
                        log.wait_acked(info.end_offset).await.expect("acked");
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "ACK {tag} {}", info.base_offset).expect("stdout");
                        out.flush().expect("stdout");
                        tag += producers;
                    }
                }));
            }
            for t in tasks {
                t.await;
            }
        })
        .expect("executor")
        .join()
        .expect("executor thread");
}
