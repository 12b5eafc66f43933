//! A connection's context: who is at the other end, and on which
//! listener. Handlers that answer differently per client take it
//! (JoinGroup records the member's host; Metadata and FindCoordinator
//! answer endpoints of the listener the request came in on), and ask it
//! whether its principal may do what a request asks ([`ConnContext::may`]).
//!
//! Built by [`crate::conn`] once per connection on its shard; the
//! principal changes when the client authenticates.

use std::net::{IpAddr, SocketAddr};

use auth::acl::{Operation, ResourceType};

use crate::config::NodeConfig;
use crate::listener::SecurityProtocol;
use crate::metadata::MetadataImage;

#[derive(Debug, Clone)]
pub struct ConnContext {
    /// The client's address, if the socket still knows it.
    pub peer: Option<SocketAddr>,
    /// The client's address as ACL bindings name hosts (Java's
    /// `InetAddress.getHostAddress()`: `0:0:0:0:0:0:0:1`, not `::1`).
    pub host: String,
    /// The protocol of the listener the connection came in on.
    pub protocol: SecurityProtocol,
    /// Kafka's principal: `User:NAME` once SASL authenticated the client,
    /// the subject of its certificate on an SSL listener (`User:CN=..`),
    /// `User:ANONYMOUS` on a PLAINTEXT listener or without a certificate.
    pub principal: String,
    /// Cold fetch data may be spliced to this connection's socket: off
    /// under TLS in user space, where every byte passes the encryption.
    pub zero_copy: bool,
    /// Until when the connection reads no request: a client over its
    /// quota is muted (KIP-219). Shared with the connection's reader.
    pub mute: Mute,
}

/// When a muted connection reads again, shared between the handlers that
/// throttle it and its reader.
#[derive(Debug, Clone, Default)]
pub struct Mute(std::rc::Rc<std::cell::Cell<Option<std::time::Instant>>>);

impl Mute {
    /// Mutes until `when` (at most [`crate::quotas::MUTE_MAX`] from now),
    /// unless already muted longer.
    pub fn until(&self, when: std::time::Instant) {
        let cap = std::time::Instant::now() + crate::quotas::MUTE_MAX;
        let when = when.min(cap);
        if self.0.get().is_none_or(|t| t < when) {
            self.0.set(Some(when));
        }
    }

    /// The end of the mute, if it is still on at `now`.
    pub fn muted_at(&self, now: std::time::Instant) -> Option<std::time::Instant> {
        self.0.get().filter(|t| *t > now)
    }
}

/// Kafka's principal of an unauthenticated connection.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

impl ConnContext {
    pub fn new(peer: Option<SocketAddr>, protocol: SecurityProtocol) -> ConnContext {
        ConnContext {
            peer,
            host: peer.map_or_else(String::new, |a| java_host(a.ip())),
            protocol,
            principal: ANONYMOUS.to_string(),
            zero_copy: true,
            mute: Mute::default(),
        }
    }

    /// The user quotas name: the principal's name (`ANONYMOUS` without a
    /// login, a certificate's subject under mTLS).
    pub fn quota_user(&self) -> &str {
        self.principal.strip_prefix("User:").unwrap_or(&self.principal)
    }

    /// `ip:port` of the client, or `?`.
    pub fn peer_name(&self) -> String {
        self.peer.map_or_else(|| "?".to_string(), |a| a.to_string())
    }

    /// Whether this connection's principal may do `operation` to the
    /// resource `name` of `resource_type`: always with the authorizer off,
    /// always for a super user, else as the image's ACLs decide (Kafka's
    /// StandardAuthorizer; no ACL means no).
    pub fn may(
        &self,
        config: &NodeConfig,
        image: &MetadataImage,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        !config.authorizer
            || config.super_users.contains(&self.principal)
            || auth::acl::decide(
                &image.acls,
                &self.principal,
                &self.host,
                operation,
                resource_type,
                name,
            )
    }

    /// Kafka's `authorized_operations` of a resource: a bit per operation
    /// code this principal may do of those the resource type has (all of
    /// them with the authorizer off, as Kafka without one answers).
    pub fn authorized_operations(
        &self,
        config: &NodeConfig,
        image: &MetadataImage,
        resource_type: ResourceType,
        name: &str,
    ) -> i32 {
        Operation::supported(resource_type)
            .iter()
            .filter(|&&op| self.may(config, image, op, resource_type, name))
            .fold(0, |bits, op| bits | 1 << op.code())
    }

    /// [`ConnContext::may`] on the cluster resource.
    pub fn may_on_cluster(
        &self,
        config: &NodeConfig,
        image: &MetadataImage,
        operation: Operation,
    ) -> bool {
        self.may(config, image, operation, ResourceType::Cluster, auth::acl::CLUSTER_NAME)
    }
}

/// An address as Java prints it: IPv4 dotted (also when mapped into
/// IPv6), IPv6 as eight hex groups without `::` compression.
pub fn java_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let groups: Vec<String> = v6.segments().iter().map(|g| format!("{g:x}")).collect();
                groups.join(":")
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_spelled_as_java_spells_them() {
        assert_eq!(java_host("10.1.2.3".parse().unwrap()), "10.1.2.3");
        assert_eq!(java_host("::1".parse().unwrap()), "0:0:0:0:0:0:0:1");
        assert_eq!(java_host("fe80::1:AB".parse().unwrap()), "fe80:0:0:0:0:0:1:ab");
        assert_eq!(java_host("::ffff:10.0.0.7".parse().unwrap()), "10.0.0.7");
    }
}
