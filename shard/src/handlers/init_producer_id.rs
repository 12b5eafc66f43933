//! InitProducerId v0-v4. For idempotent producers: a fresh producer id
//! with epoch 0. Ids come in blocks from the controller, whose metadata log
//! records every block handed out, so no id is given twice, even across
//! restarts. A request with a previous id and epoch (v3+, after a fatal
//! sequence error) gets a fresh id too, as Kafka answers producers without
//! a transactional id. With a transactional id, the id's coordinator
//! answers ([`super::txn::init_producer_id`]): the id's producer id with
//! its epoch bumped, fencing older instances.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use net::codec::Request;
use net::kafka_protocol;
use std::rc::Rc;

use super::{respond, HandlerResult};
use crate::context::ConnContext;
use crate::shard::Shard;
use auth::acl::{Operation, ResourceType};

/// A transactional producer needs WRITE on its id; an idempotent one
/// IDEMPOTENT_WRITE on the cluster or WRITE on some topic (KIP-679).
pub async fn handle(shard: &Rc<Shard>, request: &Request, context: &ConnContext) -> HandlerResult {
    let req: InitProducerIdRequest = request.decode_body()?;
    let mut response =
        InitProducerIdResponse::default().with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
    let image = shard.metadata.image();
    let config = &shard.config;
    let transactional = req.transactional_id.as_ref().filter(|t| !t.is_empty());
    let denied = match transactional {
        Some(id) => {
            (!context.may(config, &image, Operation::Write, ResourceType::TransactionalId, id))
                .then_some(ResponseError::TransactionalIdAuthorizationFailed)
        }
        None => {
            let allowed = context.may_on_cluster(config, &image, Operation::IdempotentWrite)
                || !config.authorizer
                || config.super_users.contains(&context.principal)
                || auth::acl::allows_any(
                    &image.acls,
                    &context.principal,
                    &context.host,
                    Operation::Write,
                    ResourceType::Topic,
                );
            (!allowed).then_some(ResponseError::ClusterAuthorizationFailed)
        }
    };
    drop(image);
    if let Some(e) = denied {
        return respond(request, &response.with_error_code(e.code()));
    }
    if let Some(id) = transactional {
        let expected = (req.producer_id.0, req.producer_epoch);
        match super::txn::init_producer_id(shard, id, req.transaction_timeout_ms, expected).await {
            Ok((pid, epoch)) => {
                response.producer_id = ProducerId(pid);
                response.producer_epoch = epoch;
            }
            Err(c) if c == ResponseError::ProducerFenced.code() && request.version < 4 => {
                response.error_code = ResponseError::InvalidProducerEpoch.code();
            }
            Err(c) => response.error_code = c,
        }
        return respond(request, &response);
    }
    match shard.controller.next_producer_id().await {
        Ok(id) => {
            response.producer_id = ProducerId(id);
            response.producer_epoch = 0;
        }
        Err(e) => {
            log::warn!("shard {}: cannot allocate producer ids: {e}", shard.id);
            response.error_code = ResponseError::CoordinatorNotAvailable.code();
        }
    }
    respond(request, &response)
}
