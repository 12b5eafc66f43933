//! `corelog bench transactions`: what a transaction costs the broker,
//! measured with the built-in generator so that no client's own costs are
//! in the figures. For groups of about 100 and 10,000 records per
//! connection: an idempotent producer that waits for every acknowledgment
//! after each group (the reference, a flush) and a transactional producer
//! that commits each group (AddPartitionsToTxn, the produces, EndTxn),
//! each run on a new topic, alternating which of the two goes first. Then the last topic
//! of small transactions (a marker per partition every group) is read
//! from the start with read_uncommitted (the reference) and read_committed,
//! alternating which goes first. Every ratio is against the reference of the same run.

use anyhow::Result;
use serde_json::json;

use crate::broker_bench::{produce_phase, summarize, CpuMeter, LoadArgs, Rank, Target};
use crate::load::client::{self, Leaders};
use crate::load::consume::{self, ConsumeSpec};
use crate::load::produce::{ProduceSpec, ProducerKind};
use crate::load::progress::Progress;
use crate::load::Outcome;
use crate::{report, Common};

/// Records per group and connection, as `bench/clients/txn_perf.py` runs
/// librdkafka's producer (rounded down to whole batches here).
pub const GROUPS: [u64; 2] = [100, 10_000];

/// Records per run for each group size: enough groups that the figures
/// are not a handful of transactions.
fn records(group: u64, quick: bool) -> u64 {
    group * if group < 1000 { 600 } else { 200 } * if quick { 1 } else { 5 }
}

/// The largest batch a request carries (the generator's default).
const BATCH_RECORDS_MAX: u64 = 1000;

/// Reads of the whole topic per measured consume run: one read of the
/// small-transaction topic takes a fraction of a second.
const READS: usize = 50;

pub fn run(args: &LoadArgs, common: &Common) -> Result<()> {
    let target = Target::open(args, &common.dir)?;
    let runs = args.runs.max(1);
    let mut sizes = Vec::new();
    let mut small_topic = None;
    for group in GROUPS {
        let mut outcomes = [Vec::new(), Vec::new()];
        let mut ratios = Vec::new();
        let (mut group_records, mut batch) = (0, 0);
        for run in 0..runs {
            let mut rates = [0.0; 2];
            let order = if run % 2 == 0 { [0, 1] } else { [1, 0] };
            for k in order {
                let kind = [ProducerKind::Idempotent, ProducerKind::Transactional][k];
                let topic = format!("{}-txn-{}-{group}-{run}", args.topic, kind.name());
                let leaders = target.topic(&topic, args.partitions)?;
                // Every connection writes each partition its broker leads,
                // one batch each per request: a group is whole requests.
                let per_lane = leaders.by_broker().values().map(Vec::len).max().unwrap_or(1) as u64;
                let requests = group.div_ceil(per_lane * BATCH_RECORDS_MAX);
                batch = (group / (per_lane * requests)).max(1);
                group_records = batch * per_lane * requests;
                let spec = ProduceSpec {
                    topic: topic.clone(),
                    acks: -1,
                    records: records(group, common.quick),
                    batch_records: batch as usize,
                    producer: kind,
                    group_records,
                    rate: None,
                    keys: 0,
                    ..args.produce_spec()
                };
                let label = format!("{}, groups of {group_records}, run {}", kind.name(), run + 1);
                let r = produce_phase(&target, &leaders, &spec, &label, 1)?;
                rates[k] = r.median.records_per_sec();
                outcomes[k].push((r.median, r.json));
                let keep =
                    kind == ProducerKind::Transactional && group == GROUPS[0] && run + 1 == runs;
                if keep {
                    small_topic = Some((topic, leaders));
                } else {
                    target.delete_topic(&topic)?;
                }
            }
            ratios.push(report::round2(rates[1] / rates[0]));
        }
        let [idempotent, transactional] = outcomes.map(|o| summarize(o, Rank::Throughput));
        println!(
            "groups of {group_records}: transactional / idempotent records/s, per run: {ratios:?}"
        );
        sizes.push(json!({
            "group_records": group_records,
            "batch_records": batch,
            "records_per_run": records(group, common.quick),
            "idempotent": idempotent.json,
            "transactional": transactional.json,
            "ratio_per_run": ratios,
        }));
    }

    let (topic, leaders) = small_topic.expect("the small groups ran");
    let spec = ConsumeSpec {
        topic: topic.clone(),
        connections: 0,
        from: client::offsets(&leaders, &topic, -2)?,
        to: client::offsets(&leaders, &topic, -1)?,
        record_size: args.record_size,
        stamped: false,
        read_committed: false,
    };
    let mut reads = [Vec::new(), Vec::new()];
    let mut read_ratios = Vec::new();
    for run in 0..runs {
        let mut rates = [0.0; 2];
        // Each goes first in every other run.
        let order = if run % 2 == 0 { [false, true] } else { [true, false] };
        for read_committed in order {
            let k = usize::from(read_committed);
            let isolation = if read_committed { "read_committed" } else { "read_uncommitted" };
            let label = format!("{isolation} of the small transactions, run {}", run + 1);
            let spec = ConsumeSpec { read_committed, ..spec.clone() };
            let (outcome, cpu) = read_repeatedly(&target, &leaders, &spec, READS, &label)?;
            println!("{}", outcome.summary(&label));
            rates[k] = outcome.records_per_sec();
            reads[k].push((outcome, cpu));
        }
        read_ratios.push(report::round2(rates[1] / rates[0]));
    }
    target.delete_topic(&topic)?;
    let [uncommitted, committed] = reads.map(|o| summarize(o, Rank::Throughput));
    println!("read_committed / read_uncommitted records/s, per run: {read_ratios:?}");
    let broker = target.json();
    target.stop()?;
    let v = json!({
        "name": "transactions",
        "commit": report::commit(),
        "machine": report::machine(),
        // The broker's flags; each case's own producer, records and
        // batches are in its entry.
        "config": args.json(),
        "broker": broker,
        "produce": sizes,
        "consume": {
            "read_uncommitted": uncommitted.json,
            "read_committed": committed.json,
            "ratio_per_run": read_ratios,
        },
    });
    report::write(&common.results_dir, "transactions", &v)
}

/// Reads the topic `times` times as `spec` says: one outcome for them all
/// (records and time added up), with the broker's CPU over them.
fn read_repeatedly(
    target: &Target,
    leaders: &Leaders,
    spec: &ConsumeSpec,
    times: usize,
    label: &str,
) -> Result<(Outcome, serde_json::Value)> {
    let cpu = CpuMeter::start(target);
    let progress = Progress::new(label);
    let mut total: Option<Outcome> = None;
    for _ in 0..times {
        let o = consume::run(leaders, spec, std::time::Instant::now(), &progress)?;
        total = Some(match total {
            None => o,
            Some(mut t) => {
                t.records += o.records;
                t.payload_bytes += o.payload_bytes;
                t.batch_bytes += o.batch_bytes;
                t.elapsed += o.elapsed;
                t
            }
        });
    }
    let total = total.expect("at least one read");
    let cpu_json = cpu.json(target, &total);
    Ok((total, cpu_json))
}
