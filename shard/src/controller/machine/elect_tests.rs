//! Elections driven without I/O: the preferred replica leading again,
//! elections an operator asks for, and unclean elections a topic allows.

use super::tests::{b, cluster, ids, run, shrink_to_leader, spec};
use super::*;

/// A partition's preferred replica (its first) that was away leads again
/// once its leader adds it back to the ISR, under the next leader epoch.
#[test]
fn the_preferred_replica_leads_again_once_back_in_the_isr() {
    use super::isr::IsrChange;
    let mut image = cluster(&[(1, 1), (2, 1), (3, 1)]);
    let mut t = spec("t", 1);
    t.replication_factor = 3;
    run(&mut image, Command::CreateTopics { topics: vec![t], validate_only: false }, &mut ids());
    let p = image.partition("t", 0).unwrap().clone();
    let preferred = p.replicas[0];
    assert_eq!(p.leader, Some(preferred));
    run(&mut image, Command::FenceNode(preferred.node()), &mut ids());
    run(&mut image, Command::UnfenceNode(preferred.node()), &mut ids());
    let away = image.partition("t", 0).unwrap().clone();
    let stand_in = away.leader.unwrap();
    assert_ne!(stand_in, preferred, "back, but not caught up: not in the ISR");
    assert!(!away.isr.contains(&preferred));
    let mut isr = away.isr.clone();
    isr.push(preferred);
    let change = IsrChange {
        topic: "t".into(),
        partition: 0,
        leader: stand_in,
        leader_epoch: away.leader_epoch,
        partition_epoch: away.partition_epoch,
        isr,
    };
    let Answer::Partitions(out) =
        run(&mut image, Command::AlterPartitions { changes: vec![change] }, &mut ids())
    else {
        panic!()
    };
    let after = out[0].as_ref().unwrap();
    assert_eq!(after.leader, Some(preferred));
    assert_eq!(after.leader_epoch, away.leader_epoch.next());
    assert_eq!(image.partition("t", 0), Some(after));
}

/// ElectLeaders: a preferred election gives the partition back to its
/// first replica when that one is live and in the ISR; an unclean one
/// gives a partition without a leader to a live replica, outside the ISR
/// if it must; each says why when it does nothing.
#[test]
fn operators_elect_preferred_and_unclean_leaders() {
    let mut image = cluster(&[(1, 1), (2, 1), (3, 1)]);
    let mut t = spec("t", 1);
    t.replication_factor = 3;
    run(&mut image, Command::CreateTopics { topics: vec![t], validate_only: false }, &mut ids());
    let p = image.partition("t", 0).unwrap().clone();
    let (preferred, second, third) = (p.replicas[0], p.replicas[1], p.replicas[2]);
    let elect = |image: &mut MetadataImage, unclean: bool, partitions: &[(&str, i32)]| {
        let partitions = partitions.iter().map(|(t, p)| (t.to_string(), *p)).collect();
        let Answer::Outcomes(out) =
            run(image, Command::ElectLeaders { unclean, partitions }, &mut ids())
        else {
            panic!()
        };
        out.into_iter().map(|o| o.map_err(|r| r.error)).collect::<Vec<_>>()
    };
    assert_eq!(
        elect(&mut image, false, &[("t", 0), ("t", 5)]),
        [Err(ResponseError::ElectionNotNeeded), Err(ResponseError::UnknownTopicOrPartition)]
    );

    // Another ISR member leads: the preferred election moves it back.
    let elsewhere = PartitionMeta { leader: Some(second), ..p.clone() };
    image = image.apply(&MetadataRecord::Partition {
        topic: "t".into(),
        partition: 0,
        state: elsewhere.clone(),
    });
    assert_eq!(
        elect(&mut image, false, &[("t", 0), ("t", 0)]),
        [Ok(()), Err(ResponseError::ElectionNotNeeded)]
    );
    let back = image.partition("t", 0).unwrap();
    assert_eq!(back.leader, Some(preferred));
    assert_eq!(back.leader_epoch, elsewhere.leader_epoch.next());
    assert_eq!(back.partition_epoch, elsewhere.partition_epoch.next());

    // The preferred replica away: not available; the unclean election is
    // not needed while a leader is live.
    run(&mut image, Command::FenceNode(preferred.node()), &mut ids());
    assert_eq!(
        elect(&mut image, false, &[("t", 0)]),
        [Err(ResponseError::PreferredLeaderNotAvailable)]
    );
    assert_eq!(elect(&mut image, true, &[("t", 0)]), [Err(ResponseError::ElectionNotNeeded)]);

    // Every ISR member gone, the preferred replica back but outside the
    // ISR: offline until an unclean election gives it the partition alone.
    run(&mut image, Command::FenceNode(second.node()), &mut ids());
    run(&mut image, Command::FenceNode(third.node()), &mut ids());
    run(&mut image, Command::UnfenceNode(preferred.node()), &mut ids());
    let offline = image.partition("t", 0).unwrap().clone();
    assert_eq!((offline.leader, offline.isr.clone()), (None, vec![third]));
    assert_eq!(
        elect(&mut image, false, &[("t", 0)]),
        [Err(ResponseError::PreferredLeaderNotAvailable)]
    );
    assert_eq!(elect(&mut image, true, &[("t", 0)]), [Ok(())]);
    let unclean = image.partition("t", 0).unwrap();
    assert_eq!((unclean.leader, unclean.isr.clone()), (Some(preferred), vec![preferred]));
    assert_eq!(unclean.leader_epoch, offline.leader_epoch.next());

    // No replica live at all: nobody to elect.
    run(&mut image, Command::FenceNode(preferred.node()), &mut ids());
    assert_eq!(
        elect(&mut image, true, &[("t", 0)]),
        [Err(ResponseError::EligibleLeadersNotAvailable)]
    );
}

/// `unclean.leader.election.enable=true` on a topic: once no ISR member is
/// live, its first live replica leads alone, when the leader is fenced or
/// at once when the config is set on an offline partition. Without it the
/// partition stays offline.
#[test]
fn unclean_elections_happen_only_where_the_topic_allows_them() {
    let mut image = cluster(&[(1, 1), (2, 1), (3, 1)]);
    let mut careful = spec("careful", -1);
    careful.assignments = vec![(0, vec![1000, 2000])];
    let mut eager = spec("eager", -1);
    eager.assignments = vec![(0, vec![1000, 3000])];
    eager.configs.insert("unclean.leader.election.enable".into(), "true".into());
    let create = Command::CreateTopics { topics: vec![careful, eager], validate_only: false };
    run(&mut image, create, &mut ids());
    for t in ["careful", "eager"] {
        shrink_to_leader(&mut image, t, 0);
        assert_eq!(image.partition(t, 0).unwrap().isr, vec![b(1000)]);
    }
    let careful_before = image.partition("careful", 0).unwrap().clone();
    run(&mut image, Command::FenceNode(NodeId(1)), &mut ids());
    let eager_now = image.partition("eager", 0).unwrap();
    assert_eq!((eager_now.leader, eager_now.isr.clone()), (Some(b(3000)), vec![b(3000)]));
    let offline = image.partition("careful", 0).unwrap().clone();
    assert_eq!((offline.leader, offline.isr.clone()), (None, vec![b(1000)]), "no unclean election");
    // Setting the config elects at once.
    let alter = Command::AlterConfigs {
        topics: vec![(
            "careful".into(),
            vec![ConfigChange {
                name: "unclean.leader.election.enable".into(),
                op: ConfigOp::Set,
                value: Some("true".into()),
            }],
        )],
        validate_only: false,
    };
    run(&mut image, alter, &mut ids());
    let careful_now = image.partition("careful", 0).unwrap();
    assert_eq!((careful_now.leader, careful_now.isr.clone()), (Some(b(2000)), vec![b(2000)]));
    assert_eq!(careful_now.leader_epoch, careful_before.leader_epoch.next().next());
}
