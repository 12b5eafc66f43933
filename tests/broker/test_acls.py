"""ACLs with `--authorizer on`, through librdkafka's admin API and real
producers and consumers logged in with SCRAM: CreateAcls, DescribeAcls
and DeleteAcls with Kafka's semantics (super users, no ACL means no,
DENY wins, prefixed patterns); the data path's and the admin APIs'
checks as Kafka makes them (TOPIC_, GROUP_, CLUSTER_ and
TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
Metadata hides what a principal may not describe; the ACLs live in the
metadata log and survive a restart. With the authorizer off (the
default) the ACL APIs answer SECURITY_DISABLED, as Kafka's do."""

import socket
import struct

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient,
                                   NewTopic, ResourcePatternType, ResourceType)

from conftest import wait_until
from test_bad_input import recv_frame, request

TIMEOUT_S = 30
USERS = ["admin", "alice", "bob"]
LISTENERS = ("PLAINTEXT", "SASL_PLAINTEXT")


def seeds():
    return [a for u in USERS for a in ("--scram-credential", f"{u}:SCRAM-SHA-512:{u}-secret")]


@pytest.fixture
def secured(make_broker):
    return make_broker(listeners=LISTENERS, extra_args=seeds() + [
        "--authorizer", "on", "--super-users", "User:admin", "--auto-create-topics", "false"]).start()


def conf(broker, user):
    return {"bootstrap.servers": broker.bootstrap_of("SASL_PLAINTEXT"), "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user, "sasl.password": f"{user}-secret"}


def admin(broker, user):
    return AdminClient(conf(broker, user))


def allow(principal, resource_type, name, operation, pattern=ResourcePatternType.LITERAL,
          permission=AclPermissionType.ALLOW):
    return AclBinding(resource_type, name, pattern, principal, "*", operation, permission)


def create_acls(client, bindings):
    for f in client.create_acls(bindings, request_timeout=TIMEOUT_S).values():
        f.result(TIMEOUT_S)


def error_code(future):
    try:
        future.result(TIMEOUT_S)
        return None
    except KafkaException as e:
        return e.args[0].code()


def produce(broker, user, topic, values, extra=None):
    """Delivery errors (codes) of producing `values` as `user`."""
    errors = []
    p = Producer({**conf(broker, user), "acks": "all", "message.timeout.ms": 10000, **(extra or {})})
    for v in values:
        p.produce(topic, v, on_delivery=lambda e, m: errors.append(e.code()) if e else None)
    assert p.flush(TIMEOUT_S) == 0
    return errors


def topics_seen(broker, user):
    return set(admin(broker, user).list_topics(timeout=TIMEOUT_S).topics)


def test_without_the_authorizer_the_acl_apis_answer_security_disabled(make_broker):
    b = make_broker().start()
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    binding = allow("User:alice", ResourceType.TOPIC, "t", AclOperation.READ)
    [f] = a.create_acls([binding], request_timeout=TIMEOUT_S).values()
    assert error_code(f) == KafkaError.SECURITY_DISABLED
    # DescribeAcls v1 by hand (librdkafka does not raise its top-level
    # error): every filter field ANY (1) or null.
    s = socket.create_connection(("127.0.0.1", b.port), timeout=TIMEOUT_S)
    any_filter = struct.pack(">bhbhhbb", 1, -1, 1, -1, -1, 1, 1)
    s.sendall(request(29, 1, 7, any_filter))
    correlation, _throttle, code = struct.unpack(">iih", recv_frame(s)[:10])
    s.close()
    assert (correlation, code) == (7, KafkaError.SECURITY_DISABLED)


def test_producers_and_consumers_get_what_their_acls_give(secured):
    root = admin(secured, "admin")
    for name in ["orders-eu", "secret"]:
        root.create_topics([NewTopic(name, 2, 1)])[name].result(TIMEOUT_S)
    create_acls(root, [
        allow("User:alice", ResourceType.TOPIC, "orders-", AclOperation.WRITE, ResourcePatternType.PREFIXED),
        allow("User:bob", ResourceType.TOPIC, "orders-eu", AclOperation.READ),
        allow("User:bob", ResourceType.GROUP, "bob-", AclOperation.READ, ResourcePatternType.PREFIXED),
    ])
    # WRITE implies DESCRIBE: alice sees orders-eu, not secret; bob too
    # (READ implies DESCRIBE); anyone on PLAINTEXT (User:ANONYMOUS) nothing.
    assert topics_seen(secured, "alice") == {"orders-eu"}
    assert topics_seen(secured, "bob") == {"orders-eu"}
    anonymous = AdminClient({"bootstrap.servers": secured.bootstrap_of("PLAINTEXT")})
    assert set(anonymous.list_topics(timeout=TIMEOUT_S).topics) == set()

    values = [f"v{i}".encode() for i in range(20)]
    assert produce(secured, "alice", "orders-eu", values) == []
    assert set(produce(secured, "alice", "secret", [b"x"])) == {KafkaError.TOPIC_AUTHORIZATION_FAILED}
    assert set(produce(secured, "bob", "orders-eu", [b"x"])) == {KafkaError.TOPIC_AUTHORIZATION_FAILED}

    # bob reads every record in his group; alice may not read at all.
    c = Consumer({**conf(secured, "bob"), "group.id": "bob-readers", "auto.offset.reset": "earliest"})
    c.subscribe(["orders-eu"])
    got = []
    wait_until(lambda: got.extend(m.value() for m in c.consume(10, 0.5) if not m.error()) or len(got) >= 20,
               TIMEOUT_S, "bob's records")
    c.close()
    assert sorted(got) == sorted(values)
    errors = []
    c = Consumer({**conf(secured, "alice"), "group.id": "alice-readers", "auto.offset.reset": "earliest",
                  "error_cb": errors.append})
    c.subscribe(["orders-eu"])

    def refused():
        for m in c.consume(10, 0.5):
            if m.error():
                errors.append(m.error())
        return any(e.code() == KafkaError.GROUP_AUTHORIZATION_FAILED for e in errors)

    wait_until(refused, TIMEOUT_S, "alice's group refused")
    c.close()

    # A consumer that assigns itself a partition it may describe but not
    # read: the fetch answers TOPIC_AUTHORIZATION_FAILED.
    create_acls(root, [allow("User:alice", ResourceType.TOPIC, "secret", AclOperation.DESCRIBE)])
    c = Consumer({**conf(secured, "alice"), "group.id": "alice-assigned", "enable.auto.commit": False})
    c.assign([TopicPartition("secret", 0, 0)])
    fetch_errors = []

    def fetch_refused():
        fetch_errors.extend(m.error().code() for m in c.consume(10, 0.5) if m.error())
        return KafkaError.TOPIC_AUTHORIZATION_FAILED in fetch_errors

    wait_until(fetch_refused, TIMEOUT_S, "alice's fetch refused")
    c.close()

    # An idempotent producer needs WRITE on some topic (KIP-679): bob has none.
    fatal = []
    p = Producer({**conf(secured, "bob"), "enable.idempotence": True, "error_cb": fatal.append})
    p.produce("orders-eu", b"x")

    def idempotence_refused():
        try:
            p.poll(0.1)
        except KafkaException as e:  # librdkafka raises the fatal error
            fatal.append(e.args[0])
        return any(e.code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED for e in fatal)

    wait_until(idempotence_refused, TIMEOUT_S, "bob's producer id refused")
    assert produce(secured, "alice", "orders-eu", [b"idempotent"], {"enable.idempotence": True}) == []

    # Admin APIs: creating topics needs CREATE; changing ACLs, the
    # cluster's ALTER (nothing changed: still four bindings).
    alice = admin(secured, "alice")
    assert error_code(alice.create_topics([NewTopic("orders-new", 1, 1)])["orders-new"]) \
        == KafkaError.TOPIC_AUTHORIZATION_FAILED
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    [f] = alice.delete_acls([everything], request_timeout=TIMEOUT_S).values()
    assert error_code(f) == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    [f] = alice.create_acls([allow("User:alice", ResourceType.TOPIC, "*", AclOperation.ALL)],
                            request_timeout=TIMEOUT_S).values()
    assert error_code(f) == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    assert len(root.describe_acls(everything, request_timeout=TIMEOUT_S).result(TIMEOUT_S)) == 4


def test_deny_wins_and_deleted_acls_stop_applying_and_acls_survive_a_restart(secured):
    root = admin(secured, "admin")
    root.create_topics([NewTopic("events", 1, 1)])["events"].result(TIMEOUT_S)
    write = allow("User:alice", ResourceType.TOPIC, "*", AclOperation.WRITE)
    deny = allow("User:alice", ResourceType.TOPIC, "events", AclOperation.WRITE,
                 permission=AclPermissionType.DENY)
    create_acls(root, [write, deny])
    assert set(produce(secured, "alice", "events", [b"x"])) == {KafkaError.TOPIC_AUTHORIZATION_FAILED}

    denies = AclBindingFilter(ResourceType.TOPIC, "events", ResourcePatternType.LITERAL, None, None,
                              AclOperation.ANY, AclPermissionType.DENY)
    [f] = root.delete_acls([denies], request_timeout=TIMEOUT_S).values()
    assert f.result(TIMEOUT_S) == [deny]
    assert produce(secured, "alice", "events", [b"y"]) == []

    secured.restart()
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    assert admin(secured, "admin").describe_acls(everything, request_timeout=TIMEOUT_S).result(TIMEOUT_S) \
        == [write]
    assert produce(secured, "alice", "events", [b"z"]) == []


def test_transactions_need_the_transactional_id(secured):
    root = admin(secured, "admin")
    root.create_topics([NewTopic("txn-out", 1, 1)])["txn-out"].result(TIMEOUT_S)
    create_acls(root, [allow("User:alice", ResourceType.TOPIC, "txn-out", AclOperation.WRITE)])
    # Refused at FindCoordinator (DESCRIBE), then with DESCRIBE only at
    # InitProducerId (WRITE).
    for grant in [None, AclOperation.DESCRIBE]:
        if grant is not None:
            create_acls(root, [allow("User:alice", ResourceType.TRANSACTIONAL_ID, "alice-txn", grant)])
        p = Producer({**conf(secured, "alice"), "transactional.id": "alice-txn"})
        with pytest.raises(KafkaException) as e:
            p.init_transactions(TIMEOUT_S)
        assert e.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, grant
    create_acls(root, [allow("User:alice", ResourceType.TRANSACTIONAL_ID, "alice-", AclOperation.WRITE,
                             ResourcePatternType.PREFIXED)])
    p = Producer({**conf(secured, "alice"), "transactional.id": "alice-txn"})
    p.init_transactions(TIMEOUT_S)
    p.begin_transaction()
    p.produce("txn-out", b"committed")
    p.commit_transaction(TIMEOUT_S)


def test_authorized_operations_are_what_the_acls_allow(secured):
    """Metadata, DescribeCluster and DescribeGroups answer the operations
    asked for: alice's READ on the topic implies DESCRIBE, so does her
    ALTER on the cluster and her READ on the group;
    the super user has every operation of each resource type."""
    from confluent_kafka import TopicCollection
    root = admin(secured, "admin")
    root.create_topics([NewTopic("ops", 1, 1)])["ops"].result(TIMEOUT_S)
    create_acls(root, [allow("User:alice", ResourceType.TOPIC, "ops", AclOperation.READ),
                       allow("User:alice", ResourceType.BROKER, "kafka-cluster", AclOperation.ALTER),
                       allow("User:alice", ResourceType.GROUP, "ops-g", AclOperation.READ)])

    def ops(client):
        topic = client.describe_topics(TopicCollection(["ops"]), include_authorized_operations=True,
                                       request_timeout=TIMEOUT_S)["ops"].result(TIMEOUT_S)
        cluster = client.describe_cluster(include_authorized_operations=True,
                                          request_timeout=TIMEOUT_S).result(TIMEOUT_S)
        group = client.describe_consumer_groups(["ops-g"], include_authorized_operations=True,
                                                request_timeout=TIMEOUT_S)["ops-g"].result(TIMEOUT_S)
        return [sorted(o.name for o in x.authorized_operations) for x in (topic, cluster, group)]

    assert ops(admin(secured, "alice")) == [["DESCRIBE", "READ"], ["ALTER", "DESCRIBE"], ["DESCRIBE", "READ"]]
    assert ops(root) == [
        sorted(["READ", "WRITE", "CREATE", "DESCRIBE", "DELETE", "ALTER", "DESCRIBE_CONFIGS", "ALTER_CONFIGS"]),
        sorted(["CREATE", "CLUSTER_ACTION", "DESCRIBE_CONFIGS", "ALTER_CONFIGS", "IDEMPOTENT_WRITE", "ALTER",
                "DESCRIBE"]),
        ["DELETE", "DESCRIBE", "READ"],
    ]
