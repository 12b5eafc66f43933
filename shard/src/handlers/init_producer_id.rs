//! InitProducerId v0-v4 for idempotent producers: a fresh producer id with
//! epoch 0. Ids come in blocks from the controller, whose metadata log
//! records every block handed out, so no id is given twice, even across
//! restarts. A request with a previous id and epoch (v3+, after a fatal
//! sequence error) gets a fresh id too, as Kafka answers producers without
//! a transactional id. Transactional ids are refused until transactions
//! exist (`COORDINATOR_NOT_AVAILABLE`, as FindCoordinator says for them).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use net::codec::Request;
use net::kafka_protocol;

use super::{respond, HandlerResult};
use crate::shard::Shard;

pub async fn handle(shard: &Shard, request: &Request) -> HandlerResult {
    let req: InitProducerIdRequest = request.decode_body()?;
    let mut response =
        InitProducerIdResponse::default().with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
    if req.transactional_id.as_ref().is_some_and(|t| !t.is_empty()) {
        response.error_code = ResponseError::CoordinatorNotAvailable.code();
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
