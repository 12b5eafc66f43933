"""SCRAM credentials through librdkafka's admin client (what
`kafka-configs --entity-type users --alter --add-config SCRAM-...` does):
`--scram-credential` seeds a new metadata log, and only a new one;
DescribeUserScramCredentials lists mechanisms and iterations, never a
secret; AlterUserScramCredentials sets and deletes them with Kafka's
checks; everything survives a SIGKILL (the metadata log holds them)."""

import signal
import subprocess

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialDeletion, UserScramCredentialUpsertion)

from conftest import BINARY, error_codes
from test_transactions import TIMEOUT_S

SHA256, SHA512 = ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512


def described(admin):
    """Every user's credentials: {user: {(mechanism, iterations)}}."""
    got = admin.describe_user_scram_credentials().result(TIMEOUT_S)
    return {u: {(i.mechanism, i.iterations) for i in d.scram_credential_infos} for u, d in got.items()}


def alter(admin, alterations):
    """{user: None, or the Kafka error code of its alteration}."""
    return error_codes(admin.alter_user_scram_credentials(alterations), TIMEOUT_S)


def test_credentials_are_seeded_listed_altered_and_kept(make_broker):
    b = make_broker(extra_args=[
        "--scram-credential", "alice:SCRAM-SHA-256:alice-secret",
        "--scram-credential", "alice:SCRAM-SHA-512:alice-secret",
        "--scram-credential", "bob:SCRAM-SHA-512:a:password:with:colons",
    ]).start()
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    assert described(admin) == {"alice": {(SHA256, 4096), (SHA512, 4096)}, "bob": {(SHA512, 4096)}}

    # Set, with the admin client salting the password: 8192 iterations.
    assert alter(admin, [UserScramCredentialUpsertion(
        "carol", ScramCredentialInfo(SHA256, 8192), b"carol-secret")]) == {"carol": None}
    got = admin.describe_user_scram_credentials(["carol", "nobody"])
    assert {(i.mechanism, i.iterations) for i in got["carol"].result(TIMEOUT_S).scram_credential_infos} \
        == {(SHA256, 8192)}
    with pytest.raises(KafkaException) as e:
        got["nobody"].result(TIMEOUT_S)
    assert e.value.args[0].code() == KafkaError.RESOURCE_NOT_FOUND

    # Kafka's refusals: a credential that does not exist, too few
    # iterations, one user altered twice in one request (the controller
    # keys a request's changes by user, whatever the mechanism), and a
    # user's first refusal sticking (frank: the missing credential, not
    # the duplicate).
    assert alter(admin, [
        UserScramCredentialDeletion("bob", SHA256),
        UserScramCredentialDeletion("frank", SHA512),
        UserScramCredentialUpsertion("dave", ScramCredentialInfo(SHA256, 100), b"pw"),
        UserScramCredentialUpsertion("erin", ScramCredentialInfo(SHA256, 4096), b"pw"),
        UserScramCredentialUpsertion("erin", ScramCredentialInfo(SHA512, 4096), b"pw"),
        UserScramCredentialUpsertion("frank", ScramCredentialInfo(SHA256, 4096), b"pw"),
    ]) == {"bob": KafkaError.RESOURCE_NOT_FOUND, "dave": KafkaError.UNACCEPTABLE_CREDENTIAL,
           "erin": KafkaError.DUPLICATE_RESOURCE, "frank": KafkaError.RESOURCE_NOT_FOUND}
    assert alter(admin, [UserScramCredentialDeletion("alice", SHA512)]) == {"alice": None}
    expected = {"alice": {(SHA256, 4096)}, "bob": {(SHA512, 4096)}, "carol": {(SHA256, 8192)}}
    assert described(admin) == expected

    # The metadata log keeps them; a seed given to a node whose log
    # exists is ignored, as kafka-storage format's are.
    b.stop(signal.SIGKILL)
    b.extra_args = ["--scram-credential", "zed:SCRAM-SHA-256:zed-secret"]
    b.start()
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    assert described(admin) == expected


def test_a_malformed_seed_is_refused_at_startup_without_its_password(tmp_path):
    for bad, says in [("alice:SCRAM-SHA-1:s3cret-pw", "mechanism"), ("alice:s3cret-pw:SCRAM-SHA-256", "mechanism"),
                      ("alice:SCRAM-SHA-256", "USER:MECHANISM:PASSWORD"),
                      (":SCRAM-SHA-256:s3cret-pw", "USER:MECHANISM:PASSWORD")]:
        done = subprocess.run([BINARY, "serve", "--data-dir", str(tmp_path / "data"), "--port", "0",
                               "--scram-credential", bad],
                              capture_output=True, text=True, timeout=TIMEOUT_S)
        assert done.returncode == 2 and says in done.stderr, done
        assert "s3cret-pw" not in done.stderr + done.stdout, "a password in the output"


def test_a_cluster_seeds_once_and_every_node_serves_what_any_node_altered(tmp_path):
    """Three nodes, each given its own seed: the log is bootstrapped once,
    by one controller, with that node's seed alone; a change asked of a
    node that is not the active controller is forwarded to it, and every
    node's image then lists it."""
    from cluster import Cluster
    from conftest import wait_until

    c = Cluster(tmp_path, nodes=3)
    for n, node in c.nodes.items():
        node.extra_args += ["--scram-credential", f"seed{n}:SCRAM-SHA-512:secret"]
    try:
        c.start()
        admins = {n: AdminClient({"bootstrap.servers": node.bootstrap}) for n, node in c.nodes.items()}
        wait_until(lambda: all(described(a) for a in admins.values()), TIMEOUT_S, "a seed everywhere")
        seeded = described(admins[1])
        assert len(seeded) == 1 and next(iter(seeded)) in {"seed1", "seed2", "seed3"}, seeded
        wait_until(lambda: all(described(a) == seeded for a in admins.values()), TIMEOUT_S, "the seed everywhere")
        for n, admin in admins.items():
            assert alter(admin, [UserScramCredentialUpsertion(
                f"user{n}", ScramCredentialInfo(SHA256, 4096), b"pw")]) == {f"user{n}": None}
        everyone = {**seeded, **{f"user{n}": {(SHA256, 4096)} for n in c.nodes}}
        wait_until(lambda: all(described(a) == everyone for a in admins.values()), TIMEOUT_S,
                   "every change on every node")
    finally:
        print("---- cluster log ----\n" + c.log())
        c.kill_all()
